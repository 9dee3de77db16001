"""What one DER certificate says (CertInfo), read defensively: describe() never raises on any input."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from analyzer.x509.der import mend_certificate, tbs_bytes
from analyzer.x509.der import read as der_read

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
NS_PER_DAY = 86_400 * 10**9

# signatureAlgorithm OID -> (RFC name, hash name or None when the algorithm hashes internally / is unknown)
SIGNATURE_ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "1.2.840.113549.1.1.2": ("md2WithRSAEncryption", "md2"),
    "1.2.840.113549.1.1.3": ("md4WithRSAEncryption", "md4"),
    "1.2.840.113549.1.1.4": ("md5WithRSAEncryption", "md5"),
    "1.2.840.113549.1.1.5": ("sha1WithRSAEncryption", "sha1"),
    "1.3.14.3.2.29": ("sha1WithRSASignature", "sha1"),
    "1.2.840.113549.1.1.10": ("rsassaPss", None),  # hash from the parameters
    "1.2.840.113549.1.1.14": ("sha224WithRSAEncryption", "sha224"),
    "1.2.840.113549.1.1.11": ("sha256WithRSAEncryption", "sha256"),
    "1.2.840.113549.1.1.12": ("sha384WithRSAEncryption", "sha384"),
    "1.2.840.113549.1.1.13": ("sha512WithRSAEncryption", "sha512"),
    "1.2.840.10040.4.3": ("dsa-with-sha1", "sha1"),
    "2.16.840.1.101.3.4.3.1": ("dsa-with-sha224", "sha224"),
    "2.16.840.1.101.3.4.3.2": ("dsa-with-sha256", "sha256"),
    "1.2.840.10045.4.1": ("ecdsa-with-SHA1", "sha1"),
    "1.2.840.10045.4.3.1": ("ecdsa-with-SHA224", "sha224"),
    "1.2.840.10045.4.3.2": ("ecdsa-with-SHA256", "sha256"),
    "1.2.840.10045.4.3.3": ("ecdsa-with-SHA384", "sha384"),
    "1.2.840.10045.4.3.4": ("ecdsa-with-SHA512", "sha512"),
    "1.3.101.112": ("Ed25519", None),
    "1.3.101.113": ("Ed448", None),
    "2.16.840.1.101.3.4.3.17": ("ML-DSA-44", None),
    "2.16.840.1.101.3.4.3.18": ("ML-DSA-65", None),
    "2.16.840.1.101.3.4.3.19": ("ML-DSA-87", None),
}
WEAK_HASHES = frozenset({"md2", "md4", "md5", "sha1"})

# subjectPublicKeyInfo algorithm OID -> key type
KEY_TYPES: dict[str, str] = {
    "1.2.840.113549.1.1.1": "RSA",
    "1.2.840.113549.1.1.10": "RSA",  # RSASSA-PSS-restricted key
    "1.2.840.10045.2.1": "EC",
    "1.3.101.112": "Ed25519",
    "1.3.101.113": "Ed448",
    "1.3.101.110": "X25519",
    "1.3.101.111": "X448",
    "1.2.840.10040.4.1": "DSA",
    "1.2.840.10046.2.1": "DH",
    "2.16.840.1.101.3.4.3.17": "ML-DSA-44",
    "2.16.840.1.101.3.4.3.18": "ML-DSA-65",
    "2.16.840.1.101.3.4.3.19": "ML-DSA-87",
}

EKU_NAMES: dict[str, str] = {
    ExtendedKeyUsageOID.SERVER_AUTH.dotted_string: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING.dotted_string: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION.dotted_string: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING.dotted_string: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING.dotted_string: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE.dotted_string: "anyExtendedKeyUsage",
    "1.3.6.1.4.1.311.10.3.3": "msSGC",
    "2.16.840.1.113730.4.1": "nsSGC",
}

_KU_FIELDS = (
    ("digital_signature", "digitalSignature"),
    ("content_commitment", "contentCommitment"),
    ("key_encipherment", "keyEncipherment"),
    ("data_encipherment", "dataEncipherment"),
    ("key_agreement", "keyAgreement"),
    ("key_cert_sign", "keyCertSign"),
    ("crl_sign", "cRLSign"),
)


@dataclass(frozen=True, slots=True)
class CertInfo:
    """The facts of one certificate; every field but the hashes is None/empty when it cannot be read."""

    sha256: str
    sha1: str
    subject: str | None = None
    issuer: str | None = None
    subject_cn: str | None = None
    issuer_cn: str | None = None
    san_dns: tuple[str, ...] = ()
    san_ip: tuple[str, ...] = ()
    has_san: bool = False  # the subjectAltName extension is present (even with only other name types)
    serial: str | None = None  # hex, "-" prefixed when negative
    version: int | None = None  # 1 or 3
    not_before_ns: int | None = None
    not_after_ns: int | None = None
    key_type: str | None = None
    key_bits: int | None = None
    curve: str | None = None
    signature_algorithm: str | None = None
    signature_hash: str | None = None
    is_ca: bool = False
    path_length: int | None = None
    has_basic_constraints: bool = False
    key_usage: tuple[str, ...] | None = None  # None: no keyUsage extension
    extended_key_usage: tuple[str, ...] | None = None  # None: no extendedKeyUsage extension
    self_issued: bool = False
    self_signed: bool = False
    ski: str | None = None
    aki: str | None = None
    ocsp_urls: tuple[str, ...] = ()
    ca_issuers_urls: tuple[str, ...] = ()
    crl_urls: tuple[str, ...] = ()
    sct_count: int = 0
    decode_error: str | None = None  # the certificate itself could not be decoded
    extension_error: str | None = None  # decoded, but its extensions could not be (fields from them are empty)
    key_error: str | None = None  # decoded, but the library cannot load its public key
    der_notes: tuple[str, ...] = ()  # DER violations tolerated to read the extensions (explicit DEFAULT values)

    @property
    def label(self) -> str:
        """How a sentence names this certificate: CN=..., else the subject, else its first name, else its hash."""
        if self.subject_cn:
            return f"CN={self.subject_cn}"
        if self.subject:
            return self.subject
        if self.san_dns:
            return f"(empty subject, DNS:{self.san_dns[0]})"
        return f"(empty subject, sha256 {self.sha256[:16]})"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence cryptography's deprecation warnings (non-positive serials, odd encodings) for a block."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)  # cryptography's notes on over-long name attributes
        yield


def load_certificate(der: bytes) -> x509.Certificate:
    """Parse DER without warnings; raises ValueError (or another library error) when it is not a certificate.

    The library decodes some fields lazily; those every stage relies on (names, validity, algorithms, serial) are
    read here, so a certificate this returns never raises on them later.

    A certificate the library refuses only for what BER-tolerant clients accept (a negative serial, an explicit
    DEFAULT) is loaded from a mended re-encoding: its fields are right but its tbs_certificate_bytes are not the
    signed ones, so check its signature with verify_issued(..., child_der=der)."""
    der = bytes(der)
    with quiet():
        try:
            return _checked(x509.load_der_x509_certificate(der))
        except ValueError:
            mended = mend_certificate(der)
            if mended is None:
                raise
            try:
                return _checked(x509.load_der_x509_certificate(mended[0]))
            except ValueError:
                pass
            raise


def _checked(cert: x509.Certificate) -> x509.Certificate:
    with quiet():  # e.g. "Attribute's length must be >= 1 and <= 64": real roots break it, we still read them
        cert.subject.public_bytes()
        cert.issuer.public_bytes()
        cert.not_valid_before_utc, cert.not_valid_after_utc, cert.serial_number  # noqa: B018
        cert.signature_algorithm_oid, cert.public_key_algorithm_oid  # noqa: B018
    return cert


def datetime_to_ns(value: dt.datetime) -> int:
    """Integer nanoseconds since the epoch for an aware or naive-UTC datetime, exact and without floats."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return ((value - EPOCH) // dt.timedelta(microseconds=1)) * 1000


def ns_to_datetime(ns: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=ns // 1000)


def iso(ns: int | None) -> str:
    """2026-10-01T00:00:00Z (or 'unknown')."""
    if ns is None:
        return "unknown"
    try:
        return ns_to_datetime(ns).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError):
        return f"{ns} ns"


def span(ns: int) -> str:
    """A duration for a sentence: days, or hours under 2 days, or minutes/seconds under an hour."""
    ns = abs(ns)
    if ns >= 2 * NS_PER_DAY:
        return f"{ns // NS_PER_DAY} days"
    for unit, size in (("hour", 3600 * 10**9), ("minute", 60 * 10**9), ("second", 10**9)):
        if ns >= size:
            count = ns // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return "under a second"


def name_key(name: x509.Name) -> bytes:
    """The DER encoding of a Name: the exact key issuer/subject matching uses first."""
    with quiet():
        return name.public_bytes()


def loose_name_key(name: x509.Name) -> str:
    """A case- and space-insensitive rendering of a Name, for issuers whose string types differ from the subject's."""
    try:
        text = name.rfc4514_string()
    except Exception:  # pragma: no cover
        return repr(name)
    return " ".join(text.casefold().split())


def name_cn(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("latin-1")


def rfc4514(name: x509.Name) -> str:
    try:
        return name.rfc4514_string()
    except Exception:  # pragma: no cover - an attribute the library cannot render
        return repr(name)


def oid_name(oid: x509.ObjectIdentifier) -> str:
    name = oid._name
    return oid.dotted_string if not name or name == "Unknown OID" else name


def signature_names(cert: x509.Certificate) -> tuple[str, str | None]:
    """(signature algorithm name or dotted OID, hash name or None)."""
    dotted = cert.signature_algorithm_oid.dotted_string
    name, hash_name = SIGNATURE_ALGORITHMS.get(dotted, (oid_name(cert.signature_algorithm_oid), None))
    if dotted not in SIGNATURE_ALGORITHMS or dotted == "1.2.840.113549.1.1.10":  # unknown, or RSASSA-PSS parameters
        try:
            algorithm = cert.signature_hash_algorithm
            hash_name = algorithm.name if algorithm is not None else None
        except Exception:
            hash_name = None
    return name, hash_name


def key_facts(cert: x509.Certificate) -> tuple[str, int | None, str | None, str | None]:
    """(key type, bits, curve, error) from the SPKI; the type comes from the OID even if the key will not load."""
    dotted = cert.public_key_algorithm_oid.dotted_string
    key_type = KEY_TYPES.get(dotted) or oid_name(cert.public_key_algorithm_oid)
    try:
        key = cert.public_key()
    except Exception as exc:
        return key_type, None, None, f"{type(exc).__name__}: {exc}"
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size, None, None
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size, key.curve.name, None
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size, None, None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256, None, None
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456, None, None
    return key_type, None, None, None


def verify_signature(
    key: object, signature: bytes, data: bytes, hash_algorithm: hashes.HashAlgorithm | None, pss: bool = False
) -> None:
    """Check a signature over data with a public key of any supported type; raises when it does not verify."""
    if isinstance(key, rsa.RSAPublicKey):
        if hash_algorithm is None:
            raise ValueError("RSA signature without a hash algorithm")
        pad: padding.AsymmetricPadding = (
            padding.PSS(padding.MGF1(hash_algorithm), padding.PSS.AUTO) if pss else padding.PKCS1v15()
        )
        key.verify(signature, data, pad, hash_algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if hash_algorithm is None:
            raise ValueError("ECDSA signature without a hash algorithm")
        key.verify(signature, data, ec.ECDSA(hash_algorithm))
    elif isinstance(key, dsa.DSAPublicKey):
        if hash_algorithm is None:
            raise ValueError("DSA signature without a hash algorithm")
        key.verify(signature, data, hash_algorithm)
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        key.verify(signature, data)
    else:
        verify = getattr(key, "verify", None)  # ML-DSA and later key types: verify(signature, data)
        if verify is None:
            raise ValueError(f"cannot verify with a {type(key).__name__}")
        verify(signature, data)


def _extension_fields(cert: x509.Certificate) -> dict[str, object]:
    out: dict[str, object] = {}
    for ext in cert.extensions:
        value = ext.value
        if isinstance(value, x509.SubjectAlternativeName):
            out["has_san"] = True
            out["san_dns"] = tuple(value.get_values_for_type(x509.DNSName))
            out["san_ip"] = tuple(str(ip) for ip in value.get_values_for_type(x509.IPAddress))
        elif isinstance(value, x509.BasicConstraints):
            out["has_basic_constraints"] = True
            out["is_ca"] = value.ca
            out["path_length"] = value.path_length
        elif isinstance(value, x509.KeyUsage):
            names = [label for attr, label in _KU_FIELDS if getattr(value, attr)]
            if value.key_agreement:
                names += [
                    label
                    for attr, label in (("encipher_only", "encipherOnly"), ("decipher_only", "decipherOnly"))
                    if getattr(value, attr)
                ]
            out["key_usage"] = tuple(names)
        elif isinstance(value, x509.ExtendedKeyUsage):
            out["extended_key_usage"] = tuple(EKU_NAMES.get(o.dotted_string, oid_name(o)) for o in value)
        elif isinstance(value, x509.SubjectKeyIdentifier):
            out["ski"] = value.digest.hex()
        elif isinstance(value, x509.AuthorityKeyIdentifier):
            if value.key_identifier is not None:
                out["aki"] = value.key_identifier.hex()
        elif isinstance(value, x509.AuthorityInformationAccess):
            ocsp: list[str] = []
            ca_issuers: list[str] = []
            for desc in value:
                if isinstance(desc.access_location, x509.UniformResourceIdentifier):
                    if desc.access_method == AuthorityInformationAccessOID.OCSP:
                        ocsp.append(desc.access_location.value)
                    elif desc.access_method == AuthorityInformationAccessOID.CA_ISSUERS:
                        ca_issuers.append(desc.access_location.value)
            out["ocsp_urls"] = tuple(ocsp)
            out["ca_issuers_urls"] = tuple(ca_issuers)
        elif isinstance(value, x509.CRLDistributionPoints):
            urls = [
                name.value
                for point in value
                for name in point.full_name or ()
                if isinstance(name, x509.UniformResourceIdentifier)
            ]
            out["crl_urls"] = tuple(urls)
        elif isinstance(value, x509.PrecertificateSignedCertificateTimestamps):
            out["sct_count"] = len(value)
    return out


def _original_serial(der: bytes, cert: x509.Certificate) -> int:
    """The serial as encoded (negative serials are read as unsigned by the mended parse)."""
    try:
        outer, _ = der_read(der)
        tbs, _ = der_read(outer.content)
        first, end = der_read(tbs.content)
        if first.tag == 0xA0:
            first, _ = der_read(tbs.content, end)
        if first.tag == 0x02 and first.content:
            return int.from_bytes(first.content, "big", signed=True)
    except ValueError:
        pass
    return cert.serial_number


def _mended_extension_fields(der: bytes, error: str, notes: list[str]) -> dict[str, object]:
    """Extensions read from a re-encoding without explicit DEFAULT values (which browsers tolerate; what was mended
    goes to notes), else the error."""
    mended = mend_certificate(der)
    if mended is not None:
        try:
            fields = _extension_fields(load_certificate(mended[0]))
        except Exception:
            pass
        else:
            notes += mended[1]
            return fields
    return {"extension_error": error}


def verify_issued(child: x509.Certificate, issuer: x509.Certificate, child_der: bytes | None = None) -> str:
    """Whether issuer signed child: 'ok', 'name' (issuer name differs from the issuer's subject), 'signature'
    (another key signed it), or 'unverifiable: <why>' (an algorithm neither path below can check).

    cryptography's verify_directly_issued_by refuses SHA-1 and MD5 signatures ("Unsupported signature algorithm"),
    which old chains and self-signed certificates still carry, so those are checked by hand with the issuer key.
    child_der: the child as received, whose TBS is the signed one when load_certificate had to mend it."""
    tbs = child.tbs_certificate_bytes
    if child_der is not None:
        tbs = tbs_bytes(child_der) or tbs
    if child.issuer != issuer.subject and loose_name_key(child.issuer) != loose_name_key(issuer.subject):
        return "name"
    if tbs == child.tbs_certificate_bytes:
        try:
            child.verify_directly_issued_by(issuer)
            return "ok"
        except InvalidSignature:
            return "signature"
        except Exception:
            pass  # an algorithm it refuses, or names equal only loosely: check by hand
    try:
        key = issuer.public_key()
        params = child.signature_algorithm_parameters
        algorithm = child.signature_hash_algorithm
    except Exception as exc:
        return f"unverifiable: {type(exc).__name__}: {exc}"
    try:
        if isinstance(key, rsa.RSAPublicKey) and isinstance(params, padding.PSS | padding.PKCS1v15) and algorithm:
            key.verify(child.signature, tbs, params, algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(params, ec.ECDSA):
            key.verify(child.signature, tbs, params)
        else:
            verify_signature(key, child.signature, tbs, algorithm)
    except InvalidSignature:
        return "signature"
    except Exception as exc:
        return f"unverifiable: {type(exc).__name__}: {exc}"
    return "ok"


def describe_certificate(cert: x509.Certificate, der: bytes) -> CertInfo:
    """CertInfo of an already parsed certificate; each field group is read on its own, so one bad part spares the rest."""
    fields: dict[str, object] = {}
    with quiet():
        try:
            fields["subject"] = rfc4514(cert.subject)
            fields["issuer"] = rfc4514(cert.issuer)
            fields["subject_cn"] = name_cn(cert.subject)
            fields["issuer_cn"] = name_cn(cert.issuer)
            fields["self_issued"] = cert.subject == cert.issuer
        except Exception as exc:
            fields["decode_error"] = f"names: {exc}"
        try:
            serial = _original_serial(der, cert)
            fields["serial"] = f"-{-serial:x}" if serial < 0 else f"{serial:x}"
        except Exception as exc:  # pragma: no cover - the library decodes any INTEGER
            fields["decode_error"] = f"serial: {exc}"
        with contextlib.suppress(Exception):
            fields["version"] = cert.version.value + 1
        try:
            fields["not_before_ns"] = datetime_to_ns(cert.not_valid_before_utc)
            fields["not_after_ns"] = datetime_to_ns(cert.not_valid_after_utc)
        except Exception as exc:
            fields["decode_error"] = f"validity: {exc}"
        key_type, bits, curve, key_error = key_facts(cert)
        fields.update(key_type=key_type, key_bits=bits, curve=curve, key_error=key_error)
        try:
            fields["signature_algorithm"], fields["signature_hash"] = signature_names(cert)
        except Exception:
            fields["signature_algorithm"] = None
        notes: list[str] = []
        try:
            fields.update(_extension_fields(cert))
        except Exception as exc:
            fields.update(_mended_extension_fields(der, f"{type(exc).__name__}: {exc}", notes))
        if fields.get("self_issued"):
            fields["self_signed"] = verify_issued(cert, cert, der) == "ok"
        if tbs_bytes(der) != cert.tbs_certificate_bytes:  # loaded from a mended encoding
            mended = mend_certificate(der)
            notes += mended[1] if mended else []
        fields["der_notes"] = tuple(dict.fromkeys(notes))
    return CertInfo(sha256=hashlib.sha256(der).hexdigest(), sha1=hashlib.sha1(der).hexdigest(), **fields)  # type: ignore[arg-type]


def describe(der: object) -> CertInfo:
    """CertInfo of DER certificate bytes; undecodable input gives decode_error with the hashes filled.
    Never raises, whatever it is given (typed ``object`` so that the compiled module accepts anything too)."""
    try:
        return _describe(bytes(der))  # type: ignore[call-overload]
    except Exception as exc:  # not bytes-like at all
        return CertInfo(sha256="", sha1="", decode_error=f"not bytes: {type(der).__name__} ({exc})")


@functools.lru_cache(maxsize=4096)
def _describe(der: bytes) -> CertInfo:
    try:
        cert = load_certificate(der)
    except Exception as exc:
        return CertInfo(
            sha256=hashlib.sha256(der).hexdigest(),
            sha1=hashlib.sha1(der).hexdigest(),
            decode_error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
        )
    try:
        return describe_certificate(cert, der)
    except Exception as exc:  # pragma: no cover - describe_certificate guards each part
        return CertInfo(
            sha256=hashlib.sha256(der).hexdigest(), sha1=hashlib.sha1(der).hexdigest(), decode_error=repr(exc)
        )
