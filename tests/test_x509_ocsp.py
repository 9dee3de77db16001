"""check_stapled(): good, revoked, unknown, stale, bad signatures, delegated responders, other certificates, junk;
and the real stapled responses of the Zeek traces."""

from __future__ import annotations

import datetime as dt
import pathlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp
from test_x509_factory import AT_NS, DAY, OCSP_SIGNING, SERVER_AUTH, T0, Issued, build, pki

from analyzer.x509 import CAUSE_BY_STATUS, check_stapled
from analyzer.x509.certs import datetime_to_ns

CERTS = pathlib.Path(__file__).parent / "data" / "certs"


def response(
    *,
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    leaf: Issued | None = None,
    issuer: Issued | None = None,
    signer: Issued | None = None,
    this_update: dt.datetime = T0 - DAY,
    next_update: dt.datetime | None = T0 + 6 * DAY,
    revoked_at: dt.datetime | None = None,
    reason: x509.ReasonFlags | None = None,
    by_name: bool = False,
    include: list[Issued] | None = None,
    cert_hash: hashes.HashAlgorithm | None = None,
) -> bytes:
    p = pki()
    leaf = leaf or p["leaf"]
    issuer = issuer or p["inter"]
    signer = signer or issuer
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=leaf.cert,
        issuer=issuer.cert,
        algorithm=cert_hash or hashes.SHA1(),
        cert_status=status,
        this_update=this_update,
        next_update=next_update,
        revocation_time=revoked_at,
        revocation_reason=reason,
    )
    builder = builder.responder_id(
        ocsp.OCSPResponderEncoding.NAME if by_name else ocsp.OCSPResponderEncoding.HASH, signer.cert
    )
    if include:
        builder = builder.certificates([c.cert for c in include])
    from cryptography.hazmat.primitives.serialization import Encoding

    return builder.sign(signer.key, hashes.SHA256()).public_bytes(Encoding.DER)  # type: ignore[arg-type]


def judge(data: bytes, leaf: Issued | None = None, issuer: Issued | bool | None = None, at_ns: int = AT_NS):  # type: ignore[no-untyped-def]
    p = pki()
    issuer_der = None if issuer is False else (issuer or p["inter"]).der  # type: ignore[union-attr]
    return check_stapled(data, (leaf or p["leaf"]).der, issuer_der, at_ns)


def test_good_response_signed_by_the_issuer() -> None:
    v = judge(response())
    assert (v.status, v.signature_ok, v.stale, v.responder) == ("good", True, False, "issuer")
    assert v.this_update_ns == datetime_to_ns(T0 - DAY) and v.next_update_ns == datetime_to_ns(T0 + 6 * DAY)
    assert "says good for the leaf" in v.detail and "signed by the issuer 'CN=Test Issuing CA'" in v.detail


def test_good_response_with_responder_by_name_and_sha256_cert_id() -> None:
    v = judge(response(by_name=True, cert_hash=hashes.SHA256()))
    assert (v.status, v.signature_ok) == ("good", True)


def test_revoked_response() -> None:
    v = judge(
        response(status=ocsp.OCSPCertStatus.REVOKED, revoked_at=T0 - 12 * DAY, reason=x509.ReasonFlags.key_compromise)
    )
    assert v.status == "revoked" and v.signature_ok is True
    assert v.revocation_time_ns == datetime_to_ns(T0 - 12 * DAY) and v.revocation_reason == "keyCompromise"
    assert "was revoked 2026-05-20T00:00:00Z (keyCompromise), 12 days before the capture" in v.detail
    assert CAUSE_BY_STATUS[v.status] == "cert_revoked"


def test_unknown_response() -> None:
    v = judge(response(status=ocsp.OCSPCertStatus.UNKNOWN))
    assert v.status == "unknown" and "does not know the leaf" in v.detail


def test_stale_response_after_next_update() -> None:
    v = judge(response(this_update=T0 - 10 * DAY, next_update=T0 - 3 * DAY))
    assert v.status == "good" and v.stale is True
    assert "stale: nextUpdate 2026-05-29T00:00:00Z was 3 days before the capture" in v.detail


def test_response_from_the_future_is_stale() -> None:
    v = judge(response(this_update=T0 + 2 * DAY, next_update=T0 + 9 * DAY))
    assert v.stale is True and "not yet current" in v.detail and "2 days after the capture" in v.detail


def test_response_without_next_update_is_not_stale() -> None:
    v = judge(response(next_update=None))
    assert v.stale is False and v.next_update_ns is None


def test_bad_signature() -> None:
    impostor = build("Test Issuing CA", ca=True, key_label="impostor issuing CA")  # the issuer's name, another key
    v = judge(response(signer=impostor, by_name=True))
    assert v.status == "invalid" and v.signature_ok is False
    assert "signature does not verify with the issuer 'CN=Test Issuing CA''s key" in v.detail
    assert "says good" in v.detail  # what it claimed is still told


def test_delegated_responder_with_ocsp_signing() -> None:
    delegate = build("Test OCSP Responder", issuer=pki()["inter"], eku=(OCSP_SIGNING,), san_dns=())
    v = judge(response(signer=delegate, include=[delegate]))
    assert (v.status, v.signature_ok, v.responder) == ("good", True, "CN=Test OCSP Responder")
    assert "delegated responder 'CN=Test OCSP Responder'" in v.detail


def test_delegated_responder_without_ocsp_signing_eku() -> None:
    delegate = build("Test Web Server", issuer=pki()["inter"], eku=(SERVER_AUTH,))
    v = judge(response(signer=delegate, include=[delegate]))
    assert v.status == "invalid" and v.signature_ok is False and "lacks the OCSPSigning" in v.detail


def test_delegated_responder_not_issued_by_the_issuer() -> None:
    stranger_ca = build("Stranger CA", ca=True)
    delegate = build("Rogue Responder", issuer=stranger_ca, eku=(OCSP_SIGNING,), san_dns=())
    v = judge(response(signer=delegate, include=[delegate]))
    assert v.status == "invalid" and v.signature_ok is False and "did not issue" in v.detail


def test_expired_delegated_responder() -> None:
    delegate = build("Old Responder", issuer=pki()["inter"], eku=(OCSP_SIGNING,), san_dns=(), not_after=T0 - DAY)
    v = judge(response(signer=delegate, include=[delegate]))
    assert v.signature_ok is False and "not valid at the capture time" in v.detail


def test_without_the_issuer_the_signer_is_unchecked() -> None:
    v = judge(response(), issuer=False)
    assert v.status == "good" and v.signature_ok is None and "without the issuer" in v.detail


def test_response_about_another_certificate() -> None:
    other = build("other.example.test", issuer=pki()["inter"], serial=0x999)
    v = judge(response(leaf=other))
    assert v.status == "invalid" and "about serial 999, not the leaf's serial 1234" in v.detail


def test_response_about_the_same_serial_from_another_issuer() -> None:
    stranger_ca = build("Stranger CA", ca=True)
    twin = build("api.example.test", issuer=stranger_ca)  # same serial 0x1234
    v = judge(response(leaf=twin, issuer=stranger_ca))
    assert v.status == "invalid" and "from another issuer than 'CN=Test Issuing CA'" in v.detail


def test_unsuccessful_response() -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    data = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER).public_bytes(Encoding.DER)
    v = judge(data)
    assert v.status == "invalid" and "TRY_LATER" in v.detail


@pytest.mark.parametrize("data", [b"", b"\x30\x00", b"junk" * 50])
def test_junk_never_raises(data: bytes) -> None:
    v = check_stapled(data, b"not a cert", None, AT_NS)
    assert v.status == "invalid" and "cannot be decoded" in v.detail


def test_truncations_and_bit_flips_never_raise() -> None:
    data = response()
    for cut in range(0, len(data), 5):
        check_stapled(data[:cut], pki()["leaf"].der, pki()["inter"].der, AT_NS)
    flipped = bytearray(data)
    flipped[-3] ^= 0x01  # inside the signature
    v = check_stapled(bytes(flipped), pki()["leaf"].der, pki()["inter"].der, AT_NS)
    assert v.status == "invalid" and v.signature_ok is False


# ---------------------------------------------------------------------------------------------------------------------
# Real stapled responses (tests/data/certs/README.md)


def real(name: str) -> bytes:
    return (CERTS / name).read_bytes()


def test_real_response_signed_by_the_issuer() -> None:
    v = check_stapled(
        real("ocsp-stapling-digicert.ocsp.der"),
        real("ocsp-stapling-digicert.leaf.der"),
        real("ocsp-stapling-digicert.issuer.der"),
        1404148887_011285000,
    )
    assert (v.status, v.signature_ok, v.stale, v.responder) == ("good", True, False, "issuer")


def test_real_response_with_explicit_version_and_delegated_responder() -> None:
    v = check_stapled(
        real("ocsp-stapling.ocsp.der"),
        real("ocsp-stapling.leaf.der"),
        real("ocsp-stapling.issuer.der"),
        1398367809_961683000,
    )
    assert (v.status, v.signature_ok, v.stale) == ("good", True, False)
    assert v.responder == "CN=VeriSign Class 3 Extended Validation SSL SGC OCSP Responder"


def test_real_response_checked_against_the_wrong_leaf() -> None:
    v = check_stapled(
        real("ocsp-stapling-digicert.ocsp.der"),
        real("ocsp-stapling-digicert.issuer.der"),
        None,
        1404148887_011285000,
    )
    assert v.status == "invalid" and "not the leaf's serial" in v.detail
