"""The per-stack alert table agrees with every alert the real sample captures recorded."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from conftest import SAMPLES

from analyzer.diagnose.alert_semantics import (
    ALERT_CODES,
    ALSO,
    CAUSE_PROBLEMS,
    PROBLEMS,
    STACKS,
    TABLE,
    TLS13,
    Expected,
    candidates,
    consistent,
    expected_alert,
    normalize_alert,
    stack_key,
    stack_keys,
)

CERT_CAUSES = {c for c in CAUSE_PROBLEMS if c.startswith("cert_")}
SERVER_CAUSES = set(CAUSE_PROBLEMS) - CERT_CAUSES
FATAL = re.compile(r"sent fatal alert (\w+) \((\d+)\) (in clear|encrypted)")

# Connections whose alert is not the table's main entry, with the reason (consistent() still accepts them).
# Keyed by (stack string of the side that reacts, TLS version, intended cause).
EXCEPTIONS: dict[tuple[str, str, str], str] = {
    ("GnuTLS 3.7.9", "1.3", "cert_invalid"): (
        "gnutls-cli verifies the chain, then stops on 'Key usage violation' with internal_error "
        "(ALSO['gnutls']['invalid'])"
    ),
    ("GnuTLS 3.7.9", "1.2", "cert_invalid"): ("the same key usage violation over TLS 1.2 (ALSO['gnutls']['invalid'])"),
    ("OpenSSL 3.0.19 (default: TLS 1.2-1.3)", "1.0", "protocol_version"): (
        "a TLS 1.0-only ClientHello against Debian's OpenSSL 3.0 gets internal_error, not protocol_version "
        "(ALSO['openssl']['protocol_version'])"
    ),
}


def _reactions() -> list[dict[str, Any]]:
    """One record per sample connection with a certificate or server-side negotiation cause."""
    out: list[dict[str, Any]] = []
    for sample in json.loads((SAMPLES / "manifest.json").read_text()):
        for conn in sample["connections"]:
            cause = conn.get("intended_cause")
            if cause in CERT_CAUSES:
                side, did = conn["client"], conn["what_client_did"]
            elif cause in SERVER_CAUSES:
                side, did = conn["server"], conn["what_server_did"]
            else:
                continue
            m = FATAL.search(did or "")
            out.append(
                {
                    "file": sample["file"],
                    "stack": side,
                    "version": str(conn.get("tls_version_intended")),
                    "cause": cause,
                    "alert": m.group(1) if m else None,
                    "code": int(m.group(2)) if m else None,
                    "encrypted": (m.group(3) == "encrypted") if m else None,
                }
            )
    return out


def _primary(file: str, stack: str, cause: str, version: str) -> Expected | None:
    if cause == "cert_weak":  # cert-sha1-leaf: SHA-1 signature; cert-weak-rsa1024: small key
        return expected_alert(stack, "weak_signature" if "sha1" in file else "weak_key", version)
    return expected_alert(stack, cause, version)


def test_every_sample_alert_agrees_with_the_table() -> None:
    checked = 0
    exceptions_used: set[tuple[str, str, str]] = set()
    for r in _reactions():
        if stack_key(r["stack"]) is None:
            continue
        if "libldap" in r["stack"]:
            continue  # GnuTLS sends alerts only when the application asks (gnutls_alert_send_appropriate); libldap does not

        where = (r["file"], r["stack"], r["version"], r["cause"], r["alert"])
        assert consistent(r["stack"], r["cause"], r["alert"], r["version"]) is True, where
        exp = _primary(r["file"], r["stack"], r["cause"], r["version"])
        assert exp is not None, where
        key = (r["stack"], r["version"], r["cause"])
        if exp.alert != r["alert"]:
            assert key in EXCEPTIONS, (where, exp)
            exceptions_used.add(key)
            continue
        if r["alert"] is not None:
            assert exp.alert is not None
            assert r["code"] == ALERT_CODES[exp.alert], where
            if r["version"] == "1.3":
                assert exp.encrypted_in_tls13 is r["encrypted"], (where, exp)
        checked += 1
    assert exceptions_used == set(EXCEPTIONS)
    assert checked >= 150


def test_samples_cover_the_stacks_they_name() -> None:
    seen = {stack_key(r["stack"]) for r in _reactions()}
    assert {"openssl", "curl", "node", "go", "java", "gnutls"} <= seen


def test_table_is_complete_and_sourced() -> None:
    assert set(TABLE) == set(STACKS)
    for stack, rows in TABLE.items():
        assert set(rows) == set(PROBLEMS), stack
    every = [e for rows in TABLE.values() for e in rows.values()]
    every += [e for rows in TLS13.values() for e in rows.values()]
    every += [e for rows in ALSO.values() for alts in rows.values() for e in alts]
    for e in every:
        assert e.source.strip()
        assert (e.alert is None) == (e.encrypted_in_tls13 is None), e
        if e.alert is not None:
            assert normalize_alert(e.alert) == e.alert
    for table in (TLS13, ALSO):
        for stack in table:
            assert stack in STACKS and set(table[stack]) <= set(PROBLEMS), stack


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("OpenSSL 3.0", "openssl"),
        ("OpenSSL 3.0-like", "openssl"),
        ("Python ssl 3.11", "openssl"),
        ("Python 3.11.7 ssl", "openssl"),
        ("curl 7.88", "curl"),
        ("curl 7.88.1 (OpenSSL backend)", "curl"),
        ("curl 8.5 (GnuTLS backend)", "gnutls"),
        ("Go crypto/tls 1.19", "go"),
        ("Java JSSE 17.0", "java"),
        ("GnuTLS 3.7", "gnutls"),
        ("node 20.20", "node"),
        ("Node.js v20.20.2", "node"),
        ("Firefox 128 (NSS)", "nss"),
        ("Chrome 126", "boringssl"),
        ("rustls 0.23", "rustls"),
        (".NET 8 SslStream", "schannel"),
        ("Python 3.11.7 socket", None),
        ("OpenSSH 9.2 sshd", None),
        ("curl 7.88 / OpenSSL 3.0-like", None),
        (None, None),
    ],
)
def test_stack_names(name: str | None, key: str | None) -> None:
    assert stack_key(name) == key


def test_versions_and_ambiguity() -> None:
    java12 = expected_alert("Java JSSE 17.0", "expired", "1.2")
    java13 = expected_alert("Java JSSE 17.0", "cert_expired", "TLSv1.3")
    assert java12 is not None and java12.alert == "certificate_expired"
    assert java13 is not None and java13.alert == "certificate_unknown" and java13.encrypted_in_tls13
    missing13 = expected_alert("OpenSSL 3.0", "client_cert_missing", 0x0304)
    assert missing13 is not None and missing13.alert == "certificate_required"
    # 'curl / OpenSSL'-like agree on expiry, not on a hostname mismatch (curl checks it itself).
    assert stack_keys("curl 7.88 / OpenSSL 3.0-like") == ("curl", "openssl")
    both = expected_alert("curl 7.88 / OpenSSL 3.0-like", "expired")
    assert both is not None and both.alert == "certificate_expired"
    assert expected_alert("curl 7.88 / OpenSSL 3.0-like", "hostname_mismatch") is None
    assert consistent("curl 7.88 / OpenSSL 3.0-like", "hostname_mismatch", None) is True
    assert expected_alert("OpenSSL 3.0", "cert_weak") is None  # two rows: ask for weak_key or weak_signature
    assert expected_alert("Lynx", "expired") is None
    assert expected_alert("OpenSSL 3.0", "tcp_refused") is None


def test_consistent() -> None:
    assert consistent("Go crypto/tls 1.19", "cert_untrusted_root", "bad_certificate") is True
    assert consistent("Go crypto/tls 1.19", "cert_untrusted_root", "unknown_ca") is False
    assert consistent("OpenSSL 3.0", "cert_expired", "certificate_expired(45)") is True
    assert consistent("OpenSSL 3.0", "cert_expired", 45) is True
    assert consistent("node 20.20", "cert_expired", None) is True
    assert consistent("node 20.20", "cert_expired", "close_notify") is True
    assert consistent("OpenSSL 3.0", "cert_weak", "bad_certificate") is True
    assert consistent("Java JSSE 17.0", "cert_expired", "certificate_unknown") is True  # TLS 1.3 form
    assert consistent("Java JSSE 17.0", "cert_expired", "certificate_unknown", "1.2") is False
    assert consistent("Go crypto/tls 1.21", "client_cert_missing", "certificate_required", "1.3") is True
    assert consistent(None, "cert_expired", "bad_certificate") is None
    assert consistent("OpenSSL 3.0", "server_reset", None) is None
    # Only uncertain entries on record: a disagreement is not a contradiction.
    assert all(not e.certain for e in candidates("Windows SslStream", "cert_expired"))
    assert consistent("Windows SslStream", "cert_expired", "bad_certificate") is None


def test_normalize_alert() -> None:
    assert normalize_alert("Certificate Expired") == "certificate_expired"
    assert normalize_alert("unknown_ca (48)") == "unknown_ca"
    assert normalize_alert("48") == "unknown_ca"
    assert normalize_alert(0) is None
    assert normalize_alert(None) is None
