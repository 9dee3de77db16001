"""load_trust() / load_intermediates(): certifi by default, --ca-bundle files (PEM, DER, directories), labels,
warnings for what cannot be read, ValueError only for a named file that does not exist; CertPool indexes."""

from __future__ import annotations

import base64
import pathlib

import certifi
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from test_x509_factory import AT_NS, build, pki

from analyzer.x509 import load_intermediates, load_trust, validate_chain
from analyzer.x509.trust import CertPool, TrustStore


def pem(der: bytes, kind: str = "CERTIFICATE") -> str:
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN {kind}-----\n{body}-----END {kind}-----\n"


def test_default_store_is_certifi_and_says_its_version() -> None:
    trust, warnings = load_trust()
    assert warnings == []
    assert trust.label == f"certifi {certifi.__version__}"
    assert len(trust) > 50 and set(trust.sources) == {trust.label}
    assert trust.strict_store is not None


def test_ca_bundle_is_added_and_named(tmp_path: pathlib.Path) -> None:
    bundle = tmp_path / "corp-root.pem"
    bundle.write_text("# corp\n" + pem(pki()["root"].der))
    trust, warnings = load_trust([bundle])
    assert warnings == []
    assert trust.label == f"certifi {certifi.__version__} + ca-bundle corp-root.pem"
    v = validate_chain(
        [pki()["leaf"].der, pki()["inter"].der],
        at_ns=AT_NS,
        server_name="api.example.test",
        server_ip=None,
        trust=trust,
    )
    assert v.status == "ok" and v.anchor_source == "ca-bundle corp-root.pem"


def test_ca_bundle_alone_without_certifi(tmp_path: pathlib.Path) -> None:
    bundle = tmp_path / "only.pem"
    bundle.write_text(pem(pki()["root"].der))
    trust, _ = load_trust([bundle], use_certifi=False)
    assert trust.label == "ca-bundle only.pem" and len(trust) == 1


def test_bad_pem_blocks_are_warnings_and_good_ones_still_load(tmp_path: pathlib.Path) -> None:
    bundle = tmp_path / "mixed.pem"
    bundle.write_text(
        pem(b"not a certificate at all")
        + "-----BEGIN CERTIFICATE-----\n!!!notbase64!!!\n-----END CERTIFICATE-----\n"
        + pem(pki()["root"].der)
    )
    trust, warnings = load_trust([bundle], use_certifi=False)
    assert len(trust) == 1
    assert len(warnings) == 2 and all("mixed.pem" in w and "PEM block" in w for w in warnings)


def test_file_without_certificates_is_a_warning(tmp_path: pathlib.Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("hello\n")
    trust, warnings = load_trust([empty], use_certifi=False)
    assert len(trust) == 0
    assert any("holds no PEM certificate" in w for w in warnings)
    assert any("no trust anchors loaded" in w for w in warnings)


def test_missing_file_raises_a_clear_value_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match=r"ca-bundle file .*nope\.pem.* does not exist"):
        load_trust([tmp_path / "nope.pem"])
    with pytest.raises(ValueError, match="intermediates file"):
        load_intermediates([tmp_path / "nope.pem"])


def test_der_file_directory_and_trusted_certificate_blocks(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "anchors"
    folder.mkdir()
    (folder / "a.der").write_bytes(pki()["root"].der)
    other = build("Other Root", ca=True)
    (folder / "b.pem").write_text(pem(other.der + b"\x30\x00", "TRUSTED CERTIFICATE"))  # OpenSSL aux data after it
    trust, warnings = load_trust([folder], use_certifi=False)
    assert warnings == [] and len(trust) == 2 and trust.label == "ca-bundle anchors"


def test_unreadable_path_is_a_warning(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "inner").mkdir()  # a directory inside is skipped, not an error
    trust, warnings = load_trust([folder], use_certifi=False)
    assert len(trust) == 0 and any("no certificate could be loaded" in w for w in warnings)


def test_system_store_is_labelled_with_its_path() -> None:
    trust, warnings = load_trust(system=True, use_certifi=False)
    if len(trust):
        assert trust.label.startswith("system /")
    else:
        assert any("no system CA bundle" in w for w in warnings)


def test_load_intermediates(tmp_path: pathlib.Path) -> None:
    bundle = tmp_path / "issuing.pem"
    bundle.write_text(pem(pki()["inter"].der) + pem(pki()["inter"].der))
    pool = load_intermediates([bundle])
    assert pool.label == "intermediates issuing.pem" and len(pool) == 1 and pool.warnings == ()


def test_pool_indexes_by_subject_ski_and_subject_key() -> None:
    p = pki()
    pool = CertPool.build([(p["inter"].der, "x"), (p["root"].cert, "y")], "pool")
    assert pool.issuer_candidates(p["leaf"].cert) == [0]
    assert pool.issuer_candidates(p["inter"].cert) == [1]
    assert pool.same_as(p["root"].cert, p["root"].der) == 1
    cross = build("Test Root", issuer=build("Legacy Root", ca=True), ca=True, key_label="key:Test Root")
    assert pool.same_as(cross.cert, cross.der) == 1  # same subject and key: the same CA
    assert pool.sources == ("x", "y")
    assert p["root"].cert.public_bytes(Encoding.DER) == pool.ders[1]


def test_trust_store_from_certificates() -> None:
    trust = TrustStore.from_certificates([pki()["root"].der, b"junk"], "unit")
    assert len(trust) == 1 and trust.label == "unit" and len(trust.warnings) == 1
