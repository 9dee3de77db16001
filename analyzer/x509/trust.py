"""Trust anchors and extra intermediates: loading PEM/DER files (certifi, --ca-bundle, system) and indexing them."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from analyzer.x509.certs import load_certificate, loose_name_key, name_key, quiet

StrPath = str | os.PathLike[str]

# Where distributions keep the system bundle, most common first (Debian/Ubuntu, Fedora/RHEL, Alpine/macOS, SUSE).
SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
)

_PEM_BLOCK = re.compile(
    rb"-----BEGIN (?P<kind>TRUSTED CERTIFICATE|X509 CERTIFICATE|CERTIFICATE)-----(?P<body>.*?)-----END (?P=kind)-----",
    re.DOTALL,
)


def spki(cert: x509.Certificate) -> bytes:
    """The subjectPublicKeyInfo DER, or b'' when the library cannot load the key."""
    with quiet():
        try:
            return cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        except Exception:
            return b""


def ski_of(cert: x509.Certificate) -> bytes | None:
    with quiet():
        try:
            return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except Exception:
            return None


def aki_of(cert: x509.Certificate) -> bytes | None:
    with quiet():
        try:
            return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        except Exception:
            return None


@dataclass(frozen=True, slots=True)
class CertPool:
    """Certificates indexed by subject (DER Name bytes, and a loose form), by SKI, by hash and by subject+key.

    `sources[i]` says where certificate i came from ("certifi 2026.05.20", "ca-bundle corp.pem"); `label` names the
    whole pool; `warnings` lists what could not be loaded.
    """

    certs: tuple[x509.Certificate, ...] = ()
    ders: tuple[bytes, ...] = ()
    sources: tuple[str, ...] = ()
    label: str = ""
    warnings: tuple[str, ...] = ()
    by_subject: Mapping[bytes, tuple[int, ...]] = field(default_factory=dict)
    by_loose_subject: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    by_ski: Mapping[bytes, tuple[int, ...]] = field(default_factory=dict)
    by_sha256: Mapping[str, int] = field(default_factory=dict)
    by_subject_key: Mapping[tuple[bytes, bytes], int] = field(default_factory=dict)

    @classmethod
    def build(
        cls, items: Iterable[tuple[bytes | x509.Certificate, str]], label: str, warnings: Iterable[str] = ()
    ) -> Self:
        """A pool from (DER or Certificate, source) pairs; duplicates (same DER) keep their first source."""
        certs: list[x509.Certificate] = []
        ders: list[bytes] = []
        sources: list[str] = []
        by_subject: dict[bytes, list[int]] = {}
        by_loose: dict[str, list[int]] = {}
        by_ski: dict[bytes, list[int]] = {}
        by_sha: dict[str, int] = {}
        by_subject_key: dict[tuple[bytes, bytes], int] = {}
        bad: list[str] = list(warnings)
        for item, source in items:
            try:
                if isinstance(item, x509.Certificate):
                    cert = item
                    der = cert.public_bytes(serialization.Encoding.DER)
                else:
                    der = bytes(item)
                    cert = load_certificate(der)
            except Exception as exc:
                bad.append(f"{source}: a certificate could not be parsed ({type(exc).__name__}: {exc})")
                continue
            sha = hashlib.sha256(der).hexdigest()
            if sha in by_sha:
                continue
            index = len(certs)
            certs.append(cert)
            ders.append(der)
            sources.append(source)
            by_sha[sha] = index
            subject = name_key(cert.subject)
            by_subject.setdefault(subject, []).append(index)
            by_loose.setdefault(loose_name_key(cert.subject), []).append(index)
            ski = ski_of(cert)
            if ski:
                by_ski.setdefault(ski, []).append(index)
            by_subject_key.setdefault((subject, spki(cert)), index)
        return cls(
            certs=tuple(certs),
            ders=tuple(ders),
            sources=tuple(sources),
            label=label,
            warnings=tuple(bad),
            by_subject={k: tuple(v) for k, v in by_subject.items()},
            by_loose_subject={k: tuple(v) for k, v in by_loose.items()},
            by_ski={k: tuple(v) for k, v in by_ski.items()},
            by_sha256=by_sha,
            by_subject_key=by_subject_key,
        )

    def __len__(self) -> int:
        return len(self.certs)

    def issuer_candidates(self, cert: x509.Certificate, aki: bytes | None = None) -> list[int]:
        """Indexes of certificates whose subject is cert's issuer or whose SKI is cert's AKI (read from cert unless
        given); those matching both first."""
        by_name = list(self.by_subject.get(name_key(cert.issuer), ()))
        for index in self.by_loose_subject.get(loose_name_key(cert.issuer), ()):
            if index not in by_name:
                by_name.append(index)
        aki = aki or aki_of(cert)
        by_key = list(self.by_ski.get(aki, ())) if aki else []
        both = [i for i in by_name if i in by_key]
        return both + [i for i in by_name if i not in both] + [i for i in by_key if i not in by_name]

    def same_as(self, cert: x509.Certificate, der: bytes | None = None) -> int | None:
        """Index of this certificate, or of one with the same subject and public key (a re-issued or cross-signed
        copy of the same CA), else None."""
        if der is not None:
            index = self.by_sha256.get(hashlib.sha256(der).hexdigest())
            if index is not None:
                return index
        key = spki(cert)
        if not key:
            return None
        return self.by_subject_key.get((name_key(cert.subject), key))

    def subjects_named(self, name: x509.Name) -> tuple[int, ...]:
        return self.by_subject.get(name_key(name), ()) or self.by_loose_subject.get(loose_name_key(name), ())


@dataclass(frozen=True, slots=True)
class TrustStore(CertPool):
    """Trust anchors (a CertPool) plus the same anchors as a cryptography Store for the strict second opinion."""

    strict_store: Any = None  # cryptography.x509.verification.Store, or None when it could not be built

    @classmethod
    def from_certificates(
        cls, certs: Iterable[bytes | x509.Certificate], label: str, warnings: Iterable[str] = ()
    ) -> TrustStore:
        """A store from DER blobs or Certificates, all attributed to `label`."""
        return cls.with_sources(((c, label) for c in certs), label, warnings)

    @classmethod
    def with_sources(
        cls, items: Iterable[tuple[bytes | x509.Certificate, str]], label: str, warnings: Iterable[str] = ()
    ) -> TrustStore:
        store = cls.build(items, label, warnings)
        if not store.certs:
            return store
        try:
            from cryptography.x509.verification import Store

            return dataclasses.replace(store, strict_store=Store(list(store.certs)))
        except Exception:
            return store


def read_certificates(path: Path, source: str) -> tuple[list[tuple[bytes, str]], list[str]]:
    """DER certificates from a PEM file (any number of blocks) or a single DER file, with warnings; never raises."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [], [f"{source}: cannot read {path}: {exc.strerror or exc}"]
    found: list[tuple[bytes, str]] = []
    warns: list[str] = []
    blocks = list(_PEM_BLOCK.finditer(data))
    if not blocks:
        if data[:1] == b"\x30":  # a lone DER certificate
            found.append((_first_tlv(data), source))
        elif b"-----BEGIN" not in data:
            warns.append(f"{source}: {path} holds no PEM certificate")
        else:
            warns.append(f"{source}: {path} holds PEM blocks but no CERTIFICATE block")
        return found, warns
    for number, block in enumerate(blocks, 1):
        body = b"".join(line for line in block.group("body").splitlines() if b":" not in line)  # drop PEM headers
        try:
            der = base64.b64decode(body, validate=False)
        except (binascii.Error, ValueError) as exc:
            warns.append(f"{source}: PEM block {number} of {path} is not base64 ({exc})")
            continue
        if block.group("kind") == b"TRUSTED CERTIFICATE":
            der = _first_tlv(der)  # OpenSSL appends its trust settings after the certificate
        try:
            load_certificate(der)
        except Exception as exc:
            warns.append(f"{source}: PEM block {number} of {path} is not a certificate ({type(exc).__name__}: {exc})")
            continue
        found.append((der, source))
    return found, warns


def _first_tlv(data: bytes) -> bytes:
    """The first DER element of data (a certificate followed by other bytes), or data itself if it is malformed."""
    if len(data) < 2:
        return data
    length = data[1]
    start = 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(data) < 2 + count:
            return data
        length = int.from_bytes(data[2 : 2 + count], "big")
        start = 2 + count
    return data[: start + length]


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file())
    return [path]


def _load_named(paths: Sequence[StrPath], kind: str) -> tuple[list[tuple[bytes, str]], list[str], list[str]]:
    """(certificates with sources, label parts, warnings) from files or directories named by the user."""
    items: list[tuple[bytes, str]] = []
    parts: list[str] = []
    warns: list[str] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ValueError(f"{kind} file {os.fspath(raw)!r} does not exist")
        source = f"{kind} {path.name or os.fspath(raw)}"
        parts.append(source)
        before = len(items)
        for file in _files(path):
            found, more = read_certificates(file, source)
            items += found
            warns += more
        if len(items) == before:
            warns.append(f"{source}: no certificate could be loaded from {os.fspath(raw)}")
    return items, parts, warns


def load_trust(
    ca_bundle: Sequence[StrPath] = (), system: bool = False, use_certifi: bool = True
) -> tuple[TrustStore, list[str]]:
    """The trust anchors a verdict uses: certifi's bundle (reproducible), plus --ca-bundle files, plus optionally the
    system bundle (machine-dependent). Bad PEM blocks and unreadable files become warnings; a named file that does not
    exist raises ValueError."""
    items: list[tuple[bytes, str]] = []
    parts: list[str] = []
    warns: list[str] = []
    if use_certifi:
        import certifi

        source = f"certifi {certifi.__version__}"
        parts.append(source)
        found, more = read_certificates(Path(certifi.where()), source)
        items += found
        warns += more
    named, named_parts, more = _load_named(ca_bundle, "ca-bundle")
    items += named
    parts += named_parts
    warns += more
    if system:
        bundle = next((Path(p) for p in SYSTEM_BUNDLES if Path(p).is_file()), None)
        if bundle is None:
            warns.append(f"no system CA bundle found (looked for {', '.join(SYSTEM_BUNDLES)})")
        else:
            source = f"system {bundle}"
            parts.append(source)
            found, more = read_certificates(bundle, source)
            items += found
            warns += more
    label = " + ".join(parts) if parts else "no trust anchors"
    store = TrustStore.with_sources(items, label, warns)
    if not store.certs:
        store = dataclasses.replace(
            store, warnings=(*store.warnings, "no trust anchors loaded: every chain will end at an untrusted root")
        )
    return store, list(store.warnings)


def load_intermediates(paths: Sequence[StrPath]) -> CertPool:
    """Extra intermediates (an --intermediates bundle) the path builder may use when the server did not send one.
    Load problems are in the pool's `warnings`; a named file that does not exist raises ValueError."""
    items, parts, warns = _load_named(paths, "intermediates")
    return CertPool.build(items, " + ".join(parts) or "no intermediates", warns)
