"""describe(): every CertInfo field from built certificates, real odd certificates, and input that is no certificate."""

from __future__ import annotations

import datetime as dt
import hashlib
import pathlib
import warnings

import pytest
from test_x509_factory import CLIENT_AUTH, DAY, SERVER_AUTH, T0, build, key, pki, resign

from analyzer.x509 import describe
from analyzer.x509.certs import datetime_to_ns, iso, span

CERTS = pathlib.Path(__file__).parent / "data" / "certs"


def real(name: str) -> bytes:
    return (CERTS / name).read_bytes()


def ns(value: dt.datetime) -> int:
    return datetime_to_ns(value)


def test_describe_reads_every_field_of_a_built_leaf() -> None:
    inter = pki()["inter"]
    leaf = build(
        "www.example.test",
        issuer=inter,
        san_dns=("www.example.test", "*.example.test"),
        san_ip=("192.0.2.7", "2001:db8::1"),
        eku=(SERVER_AUTH, CLIENT_AUTH),
        serial=0xC0FFEE,
        aia=True,
    )
    info = describe(leaf.der)
    assert info.decode_error is None and info.extension_error is None
    assert info.sha256 == hashlib.sha256(leaf.der).hexdigest()
    assert info.sha1 == hashlib.sha1(leaf.der).hexdigest()
    assert info.subject == "CN=www.example.test" and info.subject_cn == "www.example.test"
    assert info.issuer == "CN=Test Issuing CA" and info.issuer_cn == "Test Issuing CA"
    assert info.san_dns == ("www.example.test", "*.example.test")
    assert info.san_ip == ("192.0.2.7", "2001:db8::1")
    assert info.serial == "c0ffee" and info.version == 3
    assert info.not_before_ns == ns(T0 - 365 * DAY) and info.not_after_ns == ns(T0 + 365 * DAY)
    assert (info.key_type, info.key_bits, info.curve) == ("EC", 256, "secp256r1")
    assert (info.signature_algorithm, info.signature_hash) == ("ecdsa-with-SHA256", "sha256")
    assert info.is_ca is False and info.path_length is None and info.has_basic_constraints
    assert info.key_usage == ("digitalSignature", "keyEncipherment")
    assert info.extended_key_usage == ("serverAuth", "clientAuth")
    assert info.self_issued is False and info.self_signed is False
    assert info.ski and info.aki == describe(inter.der).ski
    assert info.ocsp_urls == ("http://ocsp.example.test",)
    assert info.ca_issuers_urls == ("http://ca.example.test/issuer.crt",)
    assert info.crl_urls == ("http://crl.example.test/ca.crl",)
    assert info.sct_count == 0
    assert info.label == "CN=www.example.test"


def test_describe_ca_fields_and_self_signed_root() -> None:
    root, inter = pki()["root"], pki()["inter"]
    info = describe(root.der)
    assert info.is_ca and info.self_issued and info.self_signed
    assert info.key_usage == ("keyCertSign", "cRLSign") and info.extended_key_usage is None
    assert describe(inter.der).path_length == 0


def test_rsa_ed25519_and_ml_dsa_keys() -> None:
    rsa_leaf = build("rsa.example.test", key_kind="rsa1024")
    assert (describe(rsa_leaf.der).key_type, describe(rsa_leaf.der).key_bits) == ("RSA", 1024)
    assert describe(rsa_leaf.der).signature_algorithm == "sha256WithRSAEncryption"
    ed = describe(build("ed.example.test", key_kind="ed25519").der)
    assert (ed.key_type, ed.signature_algorithm, ed.signature_hash, ed.self_signed) == (
        "Ed25519",
        "Ed25519",
        None,
        True,
    )
    ml = describe(build("ml.example.test", key_kind="mldsa44").der)
    assert (ml.key_type, ml.signature_algorithm, ml.signature_hash, ml.self_signed) == (
        "ML-DSA-44",
        "ML-DSA-44",
        None,
        True,
    )


def test_sha1_and_md5_signatures_are_named_and_self_signature_still_checked() -> None:
    rsa_key = key("sha1-self", "rsa")
    base = build("old.example.test", key_label="sha1-self", key_kind="rsa", ca=True)
    for algorithm, oid_name in (("sha1", "sha1WithRSAEncryption"), ("md5", "md5WithRSAEncryption")):
        info = describe(resign(base.der, rsa_key, algorithm))
        assert (info.signature_algorithm, info.signature_hash) == (oid_name, algorithm)
        assert info.self_signed  # cryptography refuses to verify these; certs.verify_issued checks by hand


def test_negative_serial_is_described_without_warnings() -> None:
    root = build("RSA Root", ca=True, key_kind="rsa")
    raw = resign(build("neg.example.test", issuer=root).der, root.key, "sha256", serial=b"\xff\x85")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = describe(raw)
    assert info.decode_error is None
    assert info.serial == "-7b"
    assert info.subject_cn == "neg.example.test" and info.san_dns == ("neg.example.test",)
    assert any("negative" in note for note in info.der_notes)


def test_negative_serial_self_signed_certificate_still_verifies() -> None:
    raw = resign(
        build("Neg Root", ca=True, key_kind="rsa", key_label="neg-root").der,
        key("neg-root", "rsa"),
        "sha256",
        serial=b"\x80",
    )
    info = describe(raw)
    assert info.serial == "-80" and info.self_signed


def test_certificate_without_extensions() -> None:
    bare = build("bare.example.test", ca=None, key_usage=None, eku=None, san_dns=(), ski=False, aki=False)
    info = describe(bare.der)
    assert info.decode_error is None
    assert (info.san_dns, info.key_usage, info.extended_key_usage, info.ski, info.aki) == ((), None, None, None, None)
    assert info.is_ca is False and info.has_basic_constraints is False and info.has_san is False


def test_generalized_time_after_2049() -> None:
    late = build("late.example.test", not_after=dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
    info = describe(late.der)
    assert info.not_after_ns == ns(dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
    assert iso(info.not_after_ns) == "2100-01-01T00:00:00Z"


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"\x30", b"\x30\x03\x02\x01\x00", b"-----BEGIN CERTIFICATE-----", bytes(range(256)) * 4],
)
def test_undecodable_input_gives_decode_error_and_hashes(data: bytes) -> None:
    info = describe(data)
    assert info.decode_error
    assert info.sha256 == hashlib.sha256(data).hexdigest() and info.sha1 == hashlib.sha1(data).hexdigest()
    assert info.subject is None and info.label.startswith("(empty subject")


def test_describe_accepts_bytearray_and_never_raises_on_non_bytes() -> None:
    leaf = pki()["leaf"]
    assert describe(bytearray(leaf.der)).sha256 == hashlib.sha256(leaf.der).hexdigest()  # type: ignore[arg-type]
    assert describe(None).decode_error  # type: ignore[arg-type]


def test_truncations_of_a_real_certificate_never_raise() -> None:
    data = real("valid-sfig2-leaf.der")
    for cut in range(0, len(data), 7):
        assert describe(data[:cut]).decode_error
    flipped = bytearray(data)
    for index in range(0, len(data), 13):
        flipped[index] ^= 0xFF
        describe(bytes(flipped))  # must not raise, whatever it decodes
        flipped[index] ^= 0xFF


# ---------------------------------------------------------------------------------------------------------------------
# Real certificates from the Zeek traces (tests/data/certs/README.md)


def test_real_ml_dsa_44_certificate() -> None:
    info = describe(real("ml-dsa-44.der"))
    assert info.decode_error is None
    assert info.key_type == "ML-DSA-44" and info.signature_algorithm == "ML-DSA-44" and info.signature_hash is None
    assert info.subject_cn == "ml-dsa.example.com" and info.self_signed and info.is_ca


def test_real_certificate_without_cn() -> None:
    info = describe(real("cert-no-cn.der"))
    assert info.subject == "O=TestCorp" and info.subject_cn is None and info.label == "O=TestCorp"
    assert info.signature_hash == "sha1" and info.self_issued and info.self_signed


def test_real_serial_zero_root() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the library's "serial which wasn't positive" warning stays inside
        info = describe(real("starfield-root-g2-serial0.der"))
    assert info.serial == "0" and info.subject_cn == "Starfield Root Certificate Authority - G2" and info.self_signed


def test_real_leaf_with_explicit_default_ca_false() -> None:
    info = describe(real("cviis-explicit-ca-false.der"))
    assert info.extension_error is None
    assert info.san_dns and "www.cviis.org" in info.san_dns and info.is_ca is False and info.has_basic_constraints
    assert info.der_notes == ("basicConstraints encodes the default cA FALSE explicitly",)


def test_real_generalized_time_v1_certificate() -> None:
    info = describe(real("generalizedtime.der"))
    assert info.version == 1 and info.key_bits == 1024 and info.has_basic_constraints is False
    assert info.not_after_ns is not None and info.not_before_ns is not None and info.not_after_ns > info.not_before_ns


def test_real_leaf_with_embedded_scts() -> None:
    assert describe(real("lilawelt-4-scts.der")).sct_count == 4


def test_span_units() -> None:
    hour = 3600 * 10**9
    assert span(57 * 24 * hour) == "57 days"
    assert span(47 * hour) == "47 hours"
    assert span(hour) == "1 hour"
    assert span(-90 * 60 * 10**9) == "1 hour"
    assert span(5 * 60 * 10**9) == "5 minutes"
    assert span(10) == "under a second"
