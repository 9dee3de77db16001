"""Stapled OCSP responses: which certificate status they give for the leaf, whether they are current, and who signed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from analyzer.picklable import Frozen
from analyzer.x509.certs import (
    datetime_to_ns,
    iso,
    load_certificate,
    name_cn,
    quiet,
    span,
    verify_issued,
    verify_signature,
)
from analyzer.x509.der import mend_ocsp_response

OcspStatus = Literal["good", "revoked", "unknown", "invalid"]
_PSS_OID = "1.2.840.113549.1.1.10"


@dataclass(frozen=True, slots=True)
class OcspVerdict(Frozen):
    """What a stapled OCSP response says about the leaf. status 'invalid': undecodable, unsuccessful, not about this
    leaf, or its signature does not verify (the fields it did carry are still filled)."""

    status: OcspStatus
    revocation_time_ns: int | None = None
    revocation_reason: str | None = None
    this_update_ns: int | None = None
    next_update_ns: int | None = None
    produced_at_ns: int | None = None
    stale: bool = False  # the capture is after nextUpdate, or before thisUpdate
    signature_ok: bool | None = None  # None: the signer could not be checked (no issuer certificate)
    responder: str | None = None  # 'issuer' or the delegated responder certificate's name
    detail: str = ""


def _label(cert: x509.Certificate) -> str:
    cn = name_cn(cert.subject)
    return f"CN={cn}" if cn else cert.subject.rfc4514_string()


def check_stapled(response_der: bytes, leaf_der: bytes, issuer_der: bytes | None, at_ns: int) -> OcspVerdict:
    """Judge a stapled OCSP response for the leaf as of at_ns; never raises."""
    try:
        with quiet():
            return _check(bytes(response_der), bytes(leaf_der), issuer_der, at_ns)
    except Exception as exc:  # pragma: no cover - _check guards each step; this is the never-raise backstop
        return OcspVerdict(
            "invalid", detail=f"the stapled OCSP response could not be checked: {type(exc).__name__}: {exc}"
        )


def _check(response_der: bytes, leaf_der: bytes, issuer_der: bytes | None, at_ns: int) -> OcspVerdict:
    signed_tbs: bytes | None = None  # the signed bytes, when the response had to be mended to be parsed
    try:
        response = ocsp.load_der_ocsp_response(response_der)
    except Exception as exc:
        mended = mend_ocsp_response(response_der)
        try:
            if mended is None:
                raise exc
            response = ocsp.load_der_ocsp_response(mended[0])
            signed_tbs = mended[1]
        except Exception:
            return OcspVerdict("invalid", detail=f"the stapled OCSP response cannot be decoded ({exc})")
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return OcspVerdict(
            "invalid",
            detail=f"the stapled OCSP response has status {response.response_status.name} and no certificate status",
        )
    try:
        leaf: x509.Certificate | None = load_certificate(leaf_der)
    except Exception:
        leaf = None
    issuer: x509.Certificate | None = None
    if issuer_der:
        try:
            issuer = load_certificate(issuer_der)
        except Exception:
            issuer = None

    single, problem = _find_single(response, leaf, issuer)
    if single is None:
        return OcspVerdict("invalid", detail=problem)

    statuses: dict[ocsp.OCSPCertStatus, OcspStatus] = {
        ocsp.OCSPCertStatus.GOOD: "good",
        ocsp.OCSPCertStatus.REVOKED: "revoked",
        ocsp.OCSPCertStatus.UNKNOWN: "unknown",
    }
    status = statuses[single.certificate_status]
    this_update = datetime_to_ns(single.this_update_utc)
    next_update = datetime_to_ns(single.next_update_utc) if single.next_update_utc is not None else None
    revoked_at = datetime_to_ns(single.revocation_time_utc) if single.revocation_time_utc is not None else None
    reason = single.revocation_reason.value if single.revocation_reason is not None else None
    try:
        produced = datetime_to_ns(response.produced_at_utc)
    except Exception:
        produced = None
    stale = (next_update is not None and at_ns > next_update) or at_ns < this_update

    signature_ok, responder, signer_note = _signature(
        response, issuer, at_ns, signed_tbs or response.tbs_response_bytes
    )

    serial = f"{single.serial_number:x}"
    if status == "revoked":
        when = f" {iso(revoked_at)}" if revoked_at is not None else ""
        ago = ""
        if revoked_at is not None:
            ago = f", {span(at_ns - revoked_at)} {'before' if revoked_at <= at_ns else 'after'} the capture"
        said = f"says the leaf (serial {serial}) was revoked{when}{f' ({reason})' if reason else ''}{ago}"
    elif status == "good":
        said = f"says good for the leaf (serial {serial}), thisUpdate {iso(this_update)}, nextUpdate {iso(next_update)}"
    else:
        said = f"says unknown: the responder does not know the leaf (serial {serial})"
    parts = [f"the stapled OCSP response {said}"]
    if stale:
        if next_update is not None and at_ns > next_update:
            parts.append(
                f"it is stale: nextUpdate {iso(next_update)} was {span(at_ns - next_update)} before the capture"
            )
        else:
            parts.append(
                f"it is not yet current: thisUpdate {iso(this_update)} is {span(this_update - at_ns)} after the capture"
            )
    parts.append(signer_note)
    if signature_ok is False:
        status = "invalid"
    return OcspVerdict(
        status=status,
        revocation_time_ns=revoked_at,
        revocation_reason=reason,
        this_update_ns=this_update,
        next_update_ns=next_update,
        produced_at_ns=produced,
        stale=stale,
        signature_ok=signature_ok,
        responder=responder,
        detail="; ".join(parts),
    )


def _find_single(
    response: ocsp.OCSPResponse, leaf: x509.Certificate | None, issuer: x509.Certificate | None
) -> tuple[ocsp.OCSPSingleResponse | None, str]:
    """The SingleResponse about the leaf (serial, and issuer name/key hashes when the issuer is known)."""
    singles = list(response.responses)
    if not singles:
        return None, "the stapled OCSP response holds no certificate status"
    if leaf is None:
        return singles[0], ""
    same_serial = [s for s in singles if s.serial_number == leaf.serial_number]
    if not same_serial:
        others = ", ".join(f"{s.serial_number:x}" for s in singles[:4])
        return None, f"the stapled OCSP response is about serial {others}, not the leaf's serial {leaf.serial_number:x}"
    if issuer is None:
        return same_serial[0], ""
    for single in same_serial:
        try:
            request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, single.hash_algorithm).build()
        except Exception:
            return single, ""  # a hash the builder does not support: trust the serial
        if request.issuer_name_hash == single.issuer_name_hash and request.issuer_key_hash == single.issuer_key_hash:
            return single, ""
    return None, (
        f"the stapled OCSP response is about the leaf's serial {leaf.serial_number:x} but from another issuer than "
        f"'{_label(issuer)}'"
    )


def _identifies(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    """Whether the response's ResponderID names this certificate (by subject, or by the SHA-1 of its key)."""
    try:
        if response.responder_name is not None:
            return response.responder_name == cert.subject
        if response.responder_key_hash is not None:
            digest = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
            return digest == response.responder_key_hash
    except Exception:
        return False
    return False


def _signed_by(response: ocsp.OCSPResponse, cert: x509.Certificate, tbs: bytes) -> bool:
    try:
        algorithm: hashes.HashAlgorithm | None = response.signature_hash_algorithm
    except Exception:
        algorithm = None
    try:
        verify_signature(
            cert.public_key(),
            response.signature,
            tbs,
            algorithm,
            pss=response.signature_algorithm_oid.dotted_string == _PSS_OID,
        )
    except Exception:
        return False
    return True


def _signature(
    response: ocsp.OCSPResponse, issuer: x509.Certificate | None, at_ns: int, tbs: bytes
) -> tuple[bool | None, str | None, str]:
    """(signature_ok, responder, sentence). The issuer may sign; otherwise a delegated responder certificate in the
    response must sign, be issued by the issuer, carry the OCSPSigning EKU and be valid at the capture time."""
    included = list(response.certificates)
    if issuer is not None and (_identifies(response, issuer) or not included):
        if _signed_by(response, issuer, tbs):
            return True, "issuer", f"signed by the issuer '{_label(issuer)}'"
        return (
            False,
            "issuer",
            f"its signature does not verify with the issuer '{_label(issuer)}''s key: clients reject the staple",
        )
    ordered = sorted(included, key=lambda c: not _identifies(response, c))
    for delegate in ordered:
        if not _signed_by(response, delegate, tbs):
            continue
        name = _label(delegate)
        if issuer is None:
            return (
                None,
                name,
                f"signed by the responder certificate '{name}', which cannot be checked without the issuer",
            )
        if verify_issued(delegate, issuer) != "ok":
            return (
                False,
                name,
                f"signed by '{name}', which the issuer '{_label(issuer)}' did not issue: clients reject the staple",
            )
        try:
            usages = delegate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            authorised = ExtendedKeyUsageOID.OCSP_SIGNING in usages
        except Exception:
            authorised = False
        if not authorised:
            return (
                False,
                name,
                f"signed by '{name}', which lacks the OCSPSigning extended key usage: clients reject the staple",
            )
        try:
            start = datetime_to_ns(delegate.not_valid_before_utc)
            end = datetime_to_ns(delegate.not_valid_after_utc)
        except Exception:
            start, end = at_ns, at_ns
        if not start <= at_ns <= end:
            return (
                False,
                name,
                f"signed by the responder certificate '{name}', which was not valid at the capture time ({iso(start)} to {iso(end)})",
            )
        return True, name, f"signed by the delegated responder '{name}' of the issuer '{_label(issuer)}'"
    if issuer is not None and _signed_by(response, issuer, tbs):
        return True, "issuer", f"signed by the issuer '{_label(issuer)}'"
    if issuer is None:
        return None, None, "the signer cannot be checked without the issuer certificate"
    return (
        False,
        None,
        "its signature verifies with neither the issuer's key nor an included responder certificate: clients reject the staple",
    )
