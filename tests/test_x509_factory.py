"""Certificate factory for the x509 tests (root, intermediate, leaf with chosen dates, names, keys, extensions; a
fixed capture time, never the clock), plus checks that the factory's hand-made encodings are what they claim."""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from analyzer.x509 import der
from analyzer.x509.trust import TrustStore

UTC = dt.UTC
T0 = dt.datetime(2026, 6, 1, tzinfo=UTC)  # the capture time of every test
AT_NS = int((T0 - dt.datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 10**9
DAY = dt.timedelta(days=1)

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
OCSP_SIGNING = ExtendedKeyUsageOID.OCSP_SIGNING

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | mldsa.MLDSA44PrivateKey

_ALG_IDS = {  # AlgorithmIdentifier DER for hand-signed certificates
    "sha1": bytes.fromhex("300d06092a864886f70d0101050500"),
    "md5": bytes.fromhex("300d06092a864886f70d0101040500"),
    "sha256": bytes.fromhex("300d06092a864886f70d01010b0500"),
}


@functools.cache
def key(label: str, kind: str = "ec") -> PrivateKey:
    """A private key per (label, kind), generated once per test session ('ec', 'ec192', 'rsa', 'rsa1024', ...)."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec192":
        return ec.generate_private_key(ec.SECP192R1())
    if kind == "rsa":
        return rsa.generate_private_key(65537, 2048)
    if kind == "rsa1024":
        return rsa.generate_private_key(65537, 1024)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "mldsa44":
        return mldsa.MLDSA44PrivateKey.generate()
    raise ValueError(kind)


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: PrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


def name(cn: str | None, org: str | None = None) -> x509.Name:
    attrs = []
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if cn is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _hash_for(signing_key: PrivateKey) -> hashes.HashAlgorithm | None:
    return None if isinstance(signing_key, ed25519.Ed25519PrivateKey | mldsa.MLDSA44PrivateKey) else hashes.SHA256()


_DEFAULT = object()


def build(
    cn: str | None,
    *,
    issuer: Issued | None = None,
    key_label: str | None = None,
    key_kind: str = "ec",
    not_before: dt.datetime = T0 - 365 * DAY,
    not_after: dt.datetime = T0 + 365 * DAY,
    ca: bool | None = False,
    path_length: int | None = None,
    san_dns: Sequence[str] | None = None,
    san_ip: Sequence[str] = (),
    eku: Sequence[x509.ObjectIdentifier] | object | None = _DEFAULT,
    key_usage: Sequence[str] | object | None = _DEFAULT,
    ski: bool = True,
    aki: bool = True,
    serial: int = 0x1234,
    subject: x509.Name | None = None,
    aia: bool = False,
) -> Issued:
    """A certificate signed by `issuer` (self-signed when None). CA defaults: keyCertSign+cRLSign, no EKU, no SAN;
    leaf defaults: SAN DNS:<cn>, digitalSignature+keyEncipherment, EKU serverAuth. ca=None omits basicConstraints."""
    private = key(key_label or f"key:{cn}", key_kind)
    subject_name = subject if subject is not None else name(cn)
    signer = issuer.key if issuer is not None else private
    issuer_name = issuer.cert.subject if issuer is not None else subject_name
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject_name)
        .issuer_name(issuer_name)
        .public_key(private.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    if key_usage is _DEFAULT:
        key_usage = ("key_cert_sign", "crl_sign") if ca else ("digital_signature", "key_encipherment")
    if key_usage is not None:
        flags = {
            f: f in key_usage  # type: ignore[operator]
            for f in (
                "digital_signature",
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "key_cert_sign",
                "crl_sign",
                "encipher_only",
                "decipher_only",
            )
        }
        builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
    if eku is _DEFAULT:
        eku = None if ca else (SERVER_AUTH,)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)  # type: ignore[call-overload]
    if san_dns is None:
        san_dns = () if ca or cn is None else (cn,)
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in san_dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in san_ip]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if ski:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(private.public_key()), critical=False)
    if aki:
        signer_public = signer.public_key()
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_public),  # type: ignore[arg-type]
            critical=False,
        )
    if aia:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        x509.AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier("http://ocsp.example.test"),
                    ),
                    x509.AccessDescription(
                        x509.AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier("http://ca.example.test/issuer.crt"),
                    ),
                ]
            ),
            critical=False,
        )
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier("http://crl.example.test/ca.crl")], None, None, None
                    )
                ]
            ),
            critical=False,
        )
    cert = builder.sign(signer, _hash_for(signer))  # type: ignore[arg-type]
    return Issued(cert, private)


def resign(cert_der: bytes, signer: PrivateKey, algorithm: str = "sha1", serial: bytes | None = None) -> bytes:
    """The certificate re-signed by hand: sha1/md5 (which the builder refuses) and/or with a raw serial INTEGER
    content (e.g. b'\\xff\\x85' for a negative serial, which the builder refuses too). RSA signers only."""
    assert isinstance(signer, rsa.RSAPrivateKey)
    outer, _ = der.read(cert_der)
    parts = der.children(outer.content)
    tbs = der.children(parts[0].content)
    alg_id = _ALG_IDS[algorithm]
    offset = 1 if tbs[0].tag == 0xA0 else 0  # [0] version present
    if serial is not None:
        tbs[offset] = der.Tlv(0x02, serial)
    tbs[offset + 1], _ = der.read(alg_id)
    tbs_der = der.encode(der.SEQUENCE, b"".join(t.encode() for t in tbs))
    chosen = {"sha1": hashes.SHA1(), "md5": hashes.MD5(), "sha256": hashes.SHA256()}[algorithm]
    signature = signer.sign(tbs_der, padding.PKCS1v15(), chosen)
    return der.encode(der.SEQUENCE, tbs_der + alg_id + der.encode(0x03, b"\x00" + signature))


def store(*anchors: Issued | bytes, label: str = "test-store") -> TrustStore:
    return TrustStore.from_certificates([a.der if isinstance(a, Issued) else a for a in anchors], label)


@functools.cache
def pki() -> dict[str, Issued]:
    """The standard three-level PKI: 'root' -> 'inter' -> 'leaf' (api.example.test)."""
    root = build("Test Root", ca=True)
    inter = build("Test Issuing CA", issuer=root, ca=True, path_length=0)
    leaf = build("api.example.test", issuer=inter, san_dns=("api.example.test", "*.api.example.test"))
    return {"root": root, "inter": inter, "leaf": leaf}


# ---------------------------------------------------------------------------------------------------------------------
# The factory's own checks


def test_resigned_sha1_certificate_verifies_and_names_sha1() -> None:
    root = build("RSA Root", ca=True, key_kind="rsa")
    leaf = build("sha1.example.test", issuer=root)
    raw = resign(leaf.der, root.key, "sha1")
    cert = x509.load_der_x509_certificate(raw)
    assert cert.signature_algorithm_oid.dotted_string == "1.2.840.113549.1.1.5"
    root_key = root.cert.public_key()
    assert isinstance(root_key, rsa.RSAPublicKey)
    root_key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA1())


def test_negative_serial_is_encoded_and_refused_by_the_library() -> None:
    root = build("RSA Root", ca=True, key_kind="rsa")
    raw = resign(build("neg.example.test", issuer=root).der, root.key, "sha256", serial=b"\xff\x85")
    outer, _ = der.read(raw)
    tbs, _ = der.read(outer.content)
    version, end = der.read(tbs.content)
    serial, _ = der.read(tbs.content, end)
    assert (version.tag, serial.tag, serial.content) == (0xA0, 0x02, b"\xff\x85")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parsed = x509.load_der_x509_certificate(raw)
        except ValueError:
            return  # cryptography 50 refuses it (analyzer.x509 mends it)
    assert parsed.serial_number == -123


def test_capture_time_is_fixed() -> None:
    assert AT_NS == 1_780_272_000 * 10**9
