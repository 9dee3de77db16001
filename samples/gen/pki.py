"""Generate the small test PKI used by the sample captures.

All validity periods are relative to the moment the script runs, so a
regeneration on any date produces an expired leaf that is expired, a
not-yet-valid leaf that is not yet valid, and good certificates that are good.

Usage: python pki.py OUTDIR          (needs the `cryptography` package)

Writes PEM files (certificates ``*.pem``, private keys ``*.key``; keys are
unencrypted PKCS#8, test material only) and ``pki.json`` describing every
certificate (subject, issuer, validity, SANs, SHA-256 fingerprint, purpose).

``extend(OUTDIR)`` adds the certificates of ``_extra_certs()`` that an
existing PKI lacks, without rewriting any existing file (captures carry those
certificates); ``staples(OUTDIR)`` signs fresh OCSP responses for the stapling
scenario. make_samples.py calls both.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

ORG = "tls-analyzer samples"
AIA_BASE = "http://pki.test/"


def _name(cn: str, ou: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG)]
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _key(kind: str):
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    raise ValueError(kind)


# DER helpers for the SHA-1 signed leaf: `cryptography` refuses to sign certificates with SHA-1, so
# the certificate is built with SHA-256, then its TBSCertificate gets the SHA-1 AlgorithmIdentifier
# and is signed again (raw ECDSA/RSA signature over SHA-1, which `cryptography` still does).
_SHA1_ALGID = {
    "ec": bytes.fromhex("300906072a8648ce3d0401"),  # ecdsa-with-SHA1, no parameters
    "rsa": bytes.fromhex("300d06092a864886f70d0101050500"),  # sha1WithRSAEncryption, NULL
}


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _der_tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(body)) + body


def _der_children(der: bytes) -> list[bytes]:
    """The encoded children of the constructed DER element `der` (single-byte tags only)."""
    i = 1
    first = der[i]
    if first & 0x80:
        n = first & 0x7F
        i += 1 + n
    else:
        i += 1
    out = []
    while i < len(der):
        j = i + 1
        first = der[j]
        if first & 0x80:
            n = first & 0x7F
            length = int.from_bytes(der[j + 1 : j + 1 + n], "big")
            j += 1 + n
        else:
            length = first
            j += 1
        out.append(der[i : j + length])
        i = j + length
    return out


def _resign_sha1(cert: x509.Certificate, issuer_key) -> x509.Certificate:
    """The same certificate, signed by `issuer_key` with SHA-1."""
    is_ec = isinstance(issuer_key, ec.EllipticCurvePrivateKey)
    algid = _SHA1_ALGID["ec" if is_ec else "rsa"]
    parts = _der_children(cert.tbs_certificate_bytes)
    parts[2] = algid  # [0] version, serialNumber, signature AlgorithmIdentifier, issuer, ...
    tbs = _der_tlv(0x30, b"".join(parts))
    if is_ec:
        sig = issuer_key.sign(tbs, ec.ECDSA(hashes.SHA1()))
    else:
        sig = issuer_key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    der = _der_tlv(0x30, tbs + algid + _der_tlv(0x03, b"\x00" + sig))
    return x509.load_der_x509_certificate(der)


_EKU_NAMES = {ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth", ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth"}


class PKI:
    def __init__(self, out: Path, now: dt.datetime):
        self.out = out
        self.now = now
        self.certs: dict[str, x509.Certificate] = {}
        self.keys: dict[str, object] = {}
        self.info: dict[str, dict] = {}
        self.bundles: dict[str, dict] = {}
        self._serial = 0x5A3700

    def days(self, n: float) -> dt.datetime:
        return (self.now + dt.timedelta(days=n)).replace(microsecond=0)

    def serial(self) -> int:
        self._serial += 1
        return self._serial

    def make(
        self,
        name: str,
        cn: str,
        *,
        issuer: str | None,  # None = self-signed
        key: str = "ec",
        ca: bool = False,
        pathlen: int | None = None,
        not_before: float = -30,
        not_after: float = 335,
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        eku: tuple = (),
        aia: str | None = None,
        purpose: str = "",
        ou: str | None = None,
        sig_hash: str = "sha256",
        key_usage: dict | None = None,  # keyUsage bits that replace the defaults (e.g. {"key_cert_sign": True})
    ) -> None:
        priv = _key(key)
        subject = _name(cn, ou)
        if issuer is None:
            issuer_name, issuer_key, issuer_cert = subject, priv, None
        else:
            issuer_cert = self.certs[issuer]
            issuer_name, issuer_key = issuer_cert.subject, self.keys[issuer]
        b = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(priv.public_key())
            .serial_number(self.serial())
            .not_valid_before(self.days(not_before))
            .not_valid_after(self.days(not_after))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen if ca else None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(priv.public_key()), critical=False)
        )
        if issuer_cert is not None:
            ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        else:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(priv.public_key()), critical=False)
        if ca:
            ku = x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            )
        else:
            is_rsa = key.startswith("rsa")
            ku = x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=is_rsa,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            )
        if key_usage is not None:
            bits = dict.fromkeys(
                (
                    "digital_signature",
                    "content_commitment",
                    "key_encipherment",
                    "data_encipherment",
                    "key_agreement",
                    "key_cert_sign",
                    "crl_sign",
                    "encipher_only",
                    "decipher_only",
                ),
                False,
            )
            bits.update(key_usage)
            ku = x509.KeyUsage(**bits)
        b = b.add_extension(ku, critical=True)
        if eku:
            b = b.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if aia:
            b = b.add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(AIA_BASE + aia)
                        )
                    ]
                ),
                critical=False,
            )
        cert = b.sign(issuer_key, hashes.SHA256())
        if sig_hash == "sha1":
            cert = _resign_sha1(cert, issuer_key)
        self.certs[name], self.keys[name] = cert, priv
        self.info[name] = {
            "cert": f"{name}.pem",
            "key": f"{name}.key",
            "subject": cert.subject.rfc4514_string(),
            "issuer": cert.issuer.rfc4514_string(),
            "serial": hex(cert.serial_number),
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "key_type": key,
            "ca": ca,
            "self_signed": issuer is None,
            "san_dns": list(dns),
            "san_ip": list(ips),
            "sha256": cert.fingerprint(hashes.SHA256()).hex(),
            **({"signature_hash": sig_hash} if sig_hash != "sha256" else {}),
            **({"key_usage": sorted(k for k, v in key_usage.items() if v)} if key_usage is not None else {}),
            "eku": [_EKU_NAMES.get(o, o.dotted_string) for o in eku],
            "purpose": purpose,
        }

    def write(self, names: list[str] | None = None) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        for name, cert in self.certs.items():
            if names is not None and name not in names:
                continue
            (self.out / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            (self.out / f"{name}.key").write_bytes(
                self.keys[name].private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )

    def load(self, name: str, info: dict) -> None:
        """Take an existing certificate and key from disk (partial runs keep the PKI)."""
        self.certs[name] = x509.load_pem_x509_certificate((self.out / info["cert"]).read_bytes())
        self.keys[name] = serialization.load_pem_private_key((self.out / info["key"]).read_bytes(), None)
        self.info[name] = info
        self._serial = max(self._serial, self.certs[name].serial_number)

    def ocsp(self, name: str, issuer: str, *, revoked: bool, fname: str | None = None) -> dict:
        """Write a DER OCSP response for certificate `name`, signed by its issuer."""
        status = ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD
        b = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                cert=self.certs[name],
                issuer=self.certs[issuer],
                algorithm=hashes.SHA1(),
                cert_status=status,
                this_update=self.days(-1 / 24),
                next_update=self.days(7),
                revocation_time=self.days(-10) if revoked else None,
                revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, self.certs[issuer])
        )
        resp = b.sign(self.keys[issuer], hashes.SHA256())
        fname = fname or f"{name}-ocsp.der"
        (self.out / fname).write_bytes(resp.public_bytes(serialization.Encoding.DER))
        return {
            "certificate": name,
            "status": "revoked" if revoked else "good",
            "revocation_time": self.days(-10).isoformat() if revoked else None,
            "signed_by": issuer,
            "this_update": self.days(-1 / 24).isoformat(),
            "next_update": self.days(7).isoformat(),
        }

    def bundle(self, fname: str, names: list[str], purpose: str) -> None:
        data = b"".join(self.certs[n].public_bytes(serialization.Encoding.PEM) for n in names)
        (self.out / fname).write_bytes(data)
        self.bundles[fname] = {"certs": names, "purpose": purpose}


def build(out: Path, now: dt.datetime | None = None) -> dict:
    now = now or dt.datetime.now(dt.UTC)
    p = PKI(out, now)
    server_eku = (ExtendedKeyUsageOID.SERVER_AUTH,)
    client_eku = (ExtendedKeyUsageOID.CLIENT_AUTH,)
    good_names = ("server.test", "localhost")
    good_ips = ("127.0.0.1", "::1")

    p.make(
        "root",
        "tls-analyzer Test Root CA",
        issuer=None,
        key="rsa2048",
        ca=True,
        not_before=-700,
        not_after=3650,
        purpose="trust anchor (pass as ca_bundle)",
    )
    p.make(
        "intermediate",
        "tls-analyzer Test Intermediate CA",
        issuer="root",
        key="ec",
        ca=True,
        pathlen=0,
        not_before=-400,
        not_after=1825,
        aia="root.crt",
        purpose="intermediate CA issuing every server leaf under the trusted root",
    )
    p.make(
        "server",
        "server.test",
        issuer="intermediate",
        dns=good_names,
        ips=good_ips,
        eku=server_eku,
        aia="intermediate.crt",
        purpose="good server leaf (EC P-256); also used by the missing-intermediate server, which omits the intermediate",
    )
    p.make(
        "server-rsa",
        "server.test",
        issuer="intermediate",
        key="rsa2048",
        dns=good_names,
        ips=good_ips,
        eku=server_eku,
        aia="intermediate.crt",
        ou="rsa",
        purpose="good server leaf (RSA 2048), for TLS 1.2 RSA cipher suites and variety",
    )
    p.make(
        "expired",
        "server.test",
        issuer="intermediate",
        dns=good_names,
        ips=good_ips,
        eku=server_eku,
        aia="intermediate.crt",
        ou="expired",
        not_before=-150,
        not_after=-57,
        purpose="leaf that expired 57 days before generation",
    )
    p.make(
        "notyetvalid",
        "server.test",
        issuer="intermediate",
        dns=good_names,
        ips=good_ips,
        eku=server_eku,
        aia="intermediate.crt",
        ou="not yet valid",
        not_before=49,
        not_after=400,
        purpose="leaf valid only from 49 days after generation",
    )
    p.make(
        "wronghost",
        "other.test",
        issuer="intermediate",
        dns=("other.test",),
        eku=server_eku,
        aia="intermediate.crt",
        purpose="leaf for other.test only (no IP SAN): hostname mismatch for server.test",
    )
    p.make(
        "selfsigned",
        "server.test",
        issuer=None,
        dns=good_names,
        ips=good_ips,
        eku=server_eku,
        ou="self-signed",
        purpose="self-signed leaf, not a trust anchor",
    )
    p.make(
        "unknown-root",
        "Unknown Root CA",
        issuer=None,
        key="rsa2048",
        ca=True,
        not_before=-700,
        not_after=3650,
        ou="untrusted",
        purpose="a root CA that is NOT in root.pem",
    )
    p.make(
        "untrusted",
        "server.test",
        issuer="unknown-root",
        dns=good_names,
        ips=good_ips,
        eku=server_eku,
        ou="untrusted",
        purpose="leaf issued by the untrusted Unknown Root CA; its server sends leaf + unknown root",
    )
    p.make(
        "weak-rsa1024",
        "server.test",
        issuer="intermediate",
        key="rsa1024",
        dns=good_names,
        ips=good_ips,
        eku=server_eku,
        aia="intermediate.crt",
        ou="weak",
        purpose="leaf with a 1024-bit RSA key (weak)",
    )
    p.make(
        "revoked",
        "server.test",
        issuer="intermediate",
        dns=good_names,
        ips=good_ips,
        eku=server_eku,
        aia="intermediate.crt",
        ou="revoked",
        purpose="leaf revoked by the intermediate; its server staples revoked-ocsp.der",
    )
    p.make(
        "client-ca",
        "tls-analyzer Test Client CA",
        issuer=None,
        key="ec",
        ca=True,
        not_before=-700,
        not_after=3650,
        purpose="CA the mTLS servers require client certificates from",
    )
    p.make(
        "client",
        "alice",
        issuer="client-ca",
        eku=client_eku,
        dns=("alice.client.test",),
        purpose="good client certificate (issued by client-ca)",
    )
    p.make(
        "client-wrongca",
        "mallory",
        issuer="unknown-root",
        eku=client_eku,
        dns=("mallory.client.test",),
        purpose="client certificate from a CA the server does not trust",
    )
    p.write()
    p.bundle("server-chain.pem", ["server", "intermediate"], "good leaf + intermediate (what a correct server sends)")
    p.bundle("server-rsa-chain.pem", ["server-rsa", "intermediate"], "RSA leaf + intermediate")
    p.bundle("expired-chain.pem", ["expired", "intermediate"], "expired leaf + intermediate")
    p.bundle("notyetvalid-chain.pem", ["notyetvalid", "intermediate"], "not-yet-valid leaf + intermediate")
    p.bundle("wronghost-chain.pem", ["wronghost", "intermediate"], "wrong-host leaf + intermediate")
    p.bundle("weak-rsa1024-chain.pem", ["weak-rsa1024", "intermediate"], "RSA-1024 leaf + intermediate")
    p.bundle("revoked-chain.pem", ["revoked", "intermediate"], "revoked leaf + intermediate")
    p.bundle("untrusted-chain.pem", ["untrusted", "unknown-root"], "untrusted leaf + its (untrusted) root")
    p.bundle("client-wrongca-chain.pem", ["client-wrongca", "unknown-root"], "wrong-CA client cert + its root")
    ocsp_files = {
        "revoked-ocsp.der": p.ocsp("revoked", "intermediate", revoked=True),
        "server-ocsp.der": p.ocsp("server", "intermediate", revoked=False),
    }
    add_extras(p)
    meta = {
        "generated_at": now.replace(microsecond=0).isoformat(),
        "certificates": p.info,
        "bundles": p.bundles,
        "ocsp": ocsp_files,
    }
    (out / "pki.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


# --------------------------------------------------------------------------
# Certificates added after the first set. A full run makes them with the rest; a partial run
# (make_samples.py --only) calls extend(), which creates the missing ones next to the existing PKI
# without touching any existing file (the existing captures carry those certificates).
# --------------------------------------------------------------------------
def _extra_certs() -> list[tuple[str, dict]]:
    server_eku = (ExtendedKeyUsageOID.SERVER_AUTH,)
    client_eku = (ExtendedKeyUsageOID.CLIENT_AUTH,)
    return [
        (
            "intermediate-expired",
            dict(
                cn="tls-analyzer Test Intermediate CA E1",
                issuer="root",
                key="ec",
                ca=True,
                pathlen=0,
                not_before=-600,
                not_after=-20,
                aia="root.crt",
                ou="expired",
                purpose="intermediate CA under the trusted root that expired 20 days before generation",
            ),
        ),
        (
            "expired-intermediate-leaf",
            dict(
                cn="server.test",
                issuer="intermediate-expired",
                dns=("server.test", "localhost"),
                ips=("127.0.0.1", "::1"),
                eku=server_eku,
                aia="intermediate-expired.crt",
                ou="expired intermediate",
                not_before=-90,
                not_after=275,
                purpose="valid leaf issued (while it was valid) by intermediate-expired, which has since expired",
            ),
        ),
        (
            "sha1-leaf",
            dict(
                cn="server.test",
                issuer="intermediate",
                dns=("server.test", "localhost"),
                ips=("127.0.0.1", "::1"),
                eku=server_eku,
                aia="intermediate.crt",
                ou="sha1",
                sig_hash="sha1",
                purpose="leaf signed by the intermediate with ecdsa-with-SHA1 (weak signature); key EC P-256",
            ),
        ),
        (
            "nosan",
            dict(
                cn="server.test",
                issuer="intermediate",
                eku=server_eku,
                aia="intermediate.crt",
                ou="no SAN",
                purpose="leaf with CN=server.test and no subjectAltName extension at all",
            ),
        ),
        (
            "wildcard",
            dict(
                cn="*.wild.test",
                issuer="intermediate",
                dns=("*.wild.test",),
                eku=server_eku,
                aia="intermediate.crt",
                purpose="leaf for DNS:*.wild.test only: matches a.wild.test, not a.b.wild.test nor wild.test",
            ),
        ),
        (
            "ip-only",
            dict(
                cn="127.0.0.1",
                issuer="intermediate",
                ips=("127.0.0.1",),
                eku=server_eku,
                aia="intermediate.crt",
                ou="IP SAN only",
                purpose="leaf whose only subjectAltName is IP:127.0.0.1 (for clients connecting by IP, no SNI)",
            ),
        ),
        (
            "dns-only",
            dict(
                cn="server.test",
                issuer="intermediate",
                dns=("server.test",),
                eku=server_eku,
                aia="intermediate.crt",
                ou="no IP SAN",
                purpose="leaf for DNS:server.test only, no IP SAN: mismatch for clients that connect to 127.0.0.1",
            ),
        ),
        (
            "unrelated",
            dict(
                cn="unrelated.test",
                issuer="unknown-root",
                dns=("unrelated.test",),
                eku=server_eku,
                ou="unrelated",
                purpose="a leaf from another PKI that the chain-order server appends to its chain (noise)",
            ),
        ),
        (
            "eku-clientauth",
            dict(
                cn="server.test",
                issuer="intermediate",
                dns=("server.test", "localhost"),
                ips=("127.0.0.1", "::1"),
                eku=client_eku,
                aia="intermediate.crt",
                ou="clientAuth only",
                purpose="leaf for server.test whose extendedKeyUsage is clientAuth only (no serverAuth): "
                "not usable by a TLS server",
            ),
        ),
        (
            "ca-certsign-leaf",
            dict(
                cn="server.test",
                issuer="intermediate",
                key="rsa2048",
                ca=True,
                key_usage={"key_cert_sign": True},
                dns=("server.test", "localhost"),
                ips=("127.0.0.1", "::1"),
                eku=server_eku,
                aia="intermediate.crt",
                ou="CA keyCertSign only",
                purpose="leaf for server.test (EKU serverAuth) with basicConstraints CA:TRUE and keyUsage "
                "keyCertSign only (no digitalSignature/keyEncipherment): its key may not sign a handshake; RSA 2048 "
                "(OpenSSL servers will not use an EC key without digitalSignature in TLS 1.2)",
            ),
        ),
    ]


_EXTRA_BUNDLES = [
    (
        "expired-intermediate-chain.pem",
        ["expired-intermediate-leaf", "intermediate-expired"],
        "valid leaf + its expired intermediate",
    ),
    ("sha1-leaf-chain.pem", ["sha1-leaf", "intermediate"], "SHA-1 signed leaf + intermediate"),
    ("nosan-chain.pem", ["nosan", "intermediate"], "no-SAN leaf + intermediate"),
    ("wildcard-chain.pem", ["wildcard", "intermediate"], "wildcard leaf + intermediate"),
    ("ip-only-chain.pem", ["ip-only", "intermediate"], "IP-SAN-only leaf + intermediate"),
    ("dns-only-chain.pem", ["dns-only", "intermediate"], "DNS-only leaf + intermediate"),
    ("eku-clientauth-chain.pem", ["eku-clientauth", "intermediate"], "clientAuth-only leaf + intermediate"),
    (
        "ca-certsign-leaf-chain.pem",
        ["ca-certsign-leaf", "intermediate"],
        "CA:TRUE keyCertSign-only leaf + intermediate",
    ),
    (
        "disordered-chain.pem",
        ["server", "root", "intermediate", "unrelated"],
        "what the chain-order server sends: the good leaf, the root, then the intermediate (out of order), "
        "then an unrelated certificate",
    ),
]


def add_extras(p: PKI, skip: set[str] = frozenset()) -> list[str]:
    """Make the extra certificates (except those in `skip`) and their bundles; returns the new names."""
    made = []
    for name, kw in _extra_certs():
        if name in skip:
            continue
        kw = dict(kw)
        p.make(name, kw.pop("cn"), **kw)
        made.append(name)
    p.write(made)
    for fname, names, purpose in _EXTRA_BUNDLES:
        if fname not in p.bundles or not (p.out / fname).exists():
            p.bundle(fname, names, purpose)
    return made


def extend(out: Path, now: dt.datetime | None = None) -> list[str]:
    """Add the extra certificates missing from an existing PKI; existing files are left alone."""
    now = now or dt.datetime.now(dt.UTC)
    meta = json.loads((out / "pki.json").read_text())
    p = PKI(out, now)
    for name, info in meta["certificates"].items():
        p.load(name, info)
    p.bundles = dict(meta.get("bundles", {}))
    missing = {n for n, _ in _extra_certs() if not (out / f"{n}.pem").exists() or not (out / f"{n}.key").exists()}
    if not missing and all((out / f).exists() for f, _, _ in _EXTRA_BUNDLES):
        return []
    skip = {n for n, _ in _extra_certs()} - missing
    made = add_extras(p, skip)
    meta["certificates"] = p.info
    meta["bundles"] = p.bundles
    meta.setdefault("extended_at", {})
    for n in made:
        meta["extended_at"][n] = now.replace(microsecond=0).isoformat()
    (out / "pki.json").write_text(json.dumps(meta, indent=2) + "\n")
    return made


def staples(out: Path, now: dt.datetime | None = None) -> dict:
    """Fresh OCSP responses for the stapling scenario (thisUpdate one hour ago, nextUpdate in 7 days), made
    at capture time so that the good one is current whenever the scenario runs: ocsp-good-staple.der for
    `server`, ocsp-revoked-staple.der for `revoked` (revoked 10 days earlier, keyCompromise)."""
    now = now or dt.datetime.now(dt.UTC)
    meta = json.loads((out / "pki.json").read_text())
    p = PKI(out, now)
    for name in ("intermediate", "server", "revoked"):
        p.load(name, meta["certificates"][name])
    made = {
        "ocsp-good-staple.der": p.ocsp("server", "intermediate", revoked=False, fname="ocsp-good-staple.der"),
        "ocsp-revoked-staple.der": p.ocsp("revoked", "intermediate", revoked=True, fname="ocsp-revoked-staple.der"),
    }
    meta.setdefault("ocsp", {}).update(made)
    (out / "pki.json").write_text(json.dumps(meta, indent=2) + "\n")
    return made


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "pki")
    build(out)
    print(f"PKI written to {out}")
