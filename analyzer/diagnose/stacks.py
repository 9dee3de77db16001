"""Client stack identification from the JA4 fingerprint (tables in stacks_data.py, learned from samples/)."""

from __future__ import annotations

from analyzer.diagnose.stacks_data import STACKS

_BY_CIPHERS: dict[str, set[str]] = {}
for _key, _name in STACKS.items():
    _BY_CIPHERS.setdefault(_key.split("_")[0], set()).update(_name.split(" / "))


def client_stack(ja4: str | None) -> str | None:
    """'curl 7.88' for a known fingerprint; 'OpenSSL 3.0-like' when only the cipher list is known; else None."""
    if not ja4 or ja4.count("_") != 2:
        return None
    _a, b, c = ja4.split("_")
    exact = STACKS.get(f"{b}_{c}")
    if exact is not None:
        return exact
    family = _BY_CIPHERS.get(b)
    if family:
        return " / ".join(sorted(family)) + "-like"
    return None


# Which weak certificates a stack refuses by default (seen in samples/cert-weak-rsa1024, cert-sha1-leaf):
# Debian's OpenSSL runs at security level 2 (RSA < 2048 refused), node's bundled OpenSSL at level 1; every
# OpenSSL 3 level >= 1 refuses SHA-1 signatures, as do Go >= 1.18 and GnuTLS; Java 17 accepts both.
WEAK_POLICY: dict[str, dict[str, bool]] = {
    "OpenSSL": {"weak_key": True, "weak_signature": True},
    "curl": {"weak_key": True, "weak_signature": True},
    "Python ssl": {"weak_key": True, "weak_signature": True},
    "node": {"weak_key": False, "weak_signature": True},
    "Go crypto/tls": {"weak_key": False, "weak_signature": True},
    "GnuTLS": {"weak_key": False, "weak_signature": True},
    "Java JSSE": {"weak_key": False, "weak_signature": False},
}


def refuses(stack: str | None, defect: str) -> bool | None:
    """Whether this client stack refuses a weak key / weak signature by default; None when unknown."""
    if not stack or stack.endswith("-like") or " / " in stack:
        return None
    for family, policy in WEAK_POLICY.items():
        if stack.startswith(family):
            return policy.get(defect)
    return None


# Stacks that finish the handshake, then verify the certificate and close without a readable alert
# (curl's hostname and OCSP checks, node's TLS 1.2 client): for them a silent close after the handshake
# is a rejection. openssl s_client and health-check probes also close silently but verify nothing.
POST_HANDSHAKE_VERIFIERS = ("curl", "node")


def verifies_after_handshake(stack: str | None) -> bool:
    return bool(stack) and not stack.endswith("-like") and stack.startswith(POST_HANDSHAKE_VERIFIERS)  # type: ignore[union-attr]
