"""validate_chain(): one built chain per defect (status and the words of the detail), warnings, precedence, the
strict second opinion, real chains from the Zeek traces, and the status -> failure-cause mapping."""

from __future__ import annotations

import dataclasses
import datetime as dt
import pathlib
import random
from collections.abc import Sequence
from typing import Literal

import pytest
from test_x509_factory import AT_NS, CLIENT_AUTH, DAY, T0, Issued, build, key, pki, resign, store

from analyzer.diagnose.causes import Cause
from analyzer.x509 import CAUSE_BY_STATUS, ChainVerdict, describe, validate_chain
from analyzer.x509.trust import CertPool, TrustStore
from analyzer.x509.validate import PRECEDENCE, dns_matches

CERTS = pathlib.Path(__file__).parent / "data" / "certs"
HOUR = dt.timedelta(hours=1)


def check(
    chain: Sequence[Issued | bytes],
    *,
    trust: TrustStore | None = None,
    server_name: str | None = "api.example.test",
    server_ip: str | None = None,
    intermediates: CertPool | None = None,
    purpose: Literal["server", "client"] = "server",
    at_ns: int = AT_NS,
) -> ChainVerdict:
    return validate_chain(
        [c.der if isinstance(c, Issued) else c for c in chain],
        at_ns=at_ns,
        server_name=server_name,
        server_ip=server_ip,
        trust=trust if trust is not None else store(pki()["root"]),
        intermediates=intermediates,
        purpose=purpose,
    )


def leaf_under_inter(cn: str = "api.example.test", **kwargs: object) -> Issued:
    return build(cn, issuer=pki()["inter"], **kwargs)  # type: ignore[arg-type]


def kinds(verdict: ChainVerdict) -> list[str]:
    return [d.kind for d in verdict.defects]


# ---------------------------------------------------------------------------------------------------------------------
# ok


def test_ok_chain() -> None:
    p = pki()
    v = check([p["leaf"], p["inter"]])
    assert v.status == "ok", v.detail
    assert v.defects == () and v.warnings == ()
    assert "leaf CN=api.example.test" in v.detail and "'CN=Test Root'" in v.detail and "365 days" in v.detail
    assert v.path == tuple(describe(c.der).sha256 for c in (p["leaf"], p["inter"], p["root"]))
    assert v.anchor == "CN=Test Root" and v.anchor_source == "test-store"
    assert v.sni_matches is True
    assert v.days_to_expiry == pytest.approx(365.0)
    assert v.strict_ok is True and v.strict_detail is None


def test_anchor_source_names_the_part_of_the_store_that_holds_the_anchor() -> None:
    p = pki()
    other = build("Other Root", ca=True)
    trust = TrustStore.with_sources(
        [(other.der, "certifi 2099.1.1"), (p["root"].der, "ca-bundle corp.pem")],
        "certifi 2099.1.1 + ca-bundle corp.pem",
    )
    v = check([p["leaf"], p["inter"]], trust=trust)
    assert v.status == "ok" and v.anchor_source == "ca-bundle corp.pem"


def test_self_signed_leaf_that_is_an_anchor_is_ok() -> None:
    leaf = build("api.example.test")
    v = check([leaf], trust=store(leaf))
    assert v.status == "ok" and len(v.path) == 1


def test_ed25519_and_ml_dsa_chains_are_ok() -> None:
    assert check([leaf_under_inter(key_kind="ed25519"), pki()["inter"]]).status == "ok"
    ml_root = build("ML-DSA Root", ca=True, key_kind="mldsa44")
    ml_leaf = build("api.example.test", issuer=ml_root, key_kind="mldsa44")
    v = check([ml_leaf], trust=store(ml_root))
    assert v.status == "ok", v.detail


# ---------------------------------------------------------------------------------------------------------------------
# validity period


def test_expired_leaf_names_certificate_date_and_days() -> None:
    leaf = leaf_under_inter(not_after=T0 - 57 * DAY)
    v = check([leaf, pki()["inter"]])
    assert v.status == "expired"
    assert v.detail == "leaf CN=api.example.test expired 2026-04-05T00:00:00Z, 57 days before the capture"
    assert v.defects[0].position == 0 and v.defects[0].sha256 == describe(leaf.der).sha256
    assert v.days_to_expiry == pytest.approx(-57.0)


def test_expired_by_hours_says_hours() -> None:
    v = check([leaf_under_inter(not_after=T0 - 5 * HOUR), pki()["inter"]])
    assert v.status == "expired" and "5 hours before the capture" in v.detail


def test_expired_intermediate() -> None:
    p = pki()
    inter = build("Test Issuing CA", issuer=p["root"], ca=True, key_label="key:Test Issuing CA", not_after=T0 - 3 * DAY)
    v = check([p["leaf"], inter])
    assert v.status == "expired"
    assert "intermediate 'CN=Test Issuing CA' expired" in v.detail and "3 days before the capture" in v.detail
    assert v.defects[0].position == 1


def test_prefers_a_valid_copy_of_an_intermediate_over_an_expired_one() -> None:
    p = pki()
    old = build(
        "Test Issuing CA", issuer=p["root"], ca=True, key_label="key:Test Issuing CA", not_after=T0 - 3 * DAY, serial=7
    )
    v = check([p["leaf"], old, p["inter"]])
    assert v.status == "ok", v.detail
    assert any("not on the path" in w for w in v.warnings)


def test_expired_trust_anchor() -> None:
    root = build("Old Root", ca=True, not_before=T0 - 900 * DAY, not_after=T0 - 10 * DAY)
    inter = build("Old Issuing CA", issuer=root, ca=True)
    v = check([build("api.example.test", issuer=inter), inter], trust=store(root))
    assert v.status == "expired" and "trust anchor 'CN=Old Root' expired" in v.detail and "10 days" in v.detail


def test_not_yet_valid_leaf() -> None:
    v = check([leaf_under_inter(not_before=T0 + 3 * DAY), pki()["inter"]])
    assert v.status == "not_yet_valid"
    assert "leaf CN=api.example.test is not valid until 2026-06-04T00:00:00Z, 3 days after the capture" in v.detail


# ---------------------------------------------------------------------------------------------------------------------
# names


def wildcard_leaf() -> Issued:
    return leaf_under_inter("wild.example.test", san_dns=("*.example.test",))


@pytest.mark.parametrize("sni", ["a.example.test", "A.Example.TEST", "a.example.test."])
def test_wildcard_matches_one_label(sni: str) -> None:
    v = check([wildcard_leaf(), pki()["inter"]], server_name=sni)
    assert v.status == "ok" and v.sni_matches is True


@pytest.mark.parametrize("sni", ["a.b.example.test", "example.test"])
def test_wildcard_does_not_match_two_labels_or_the_bare_domain(sni: str) -> None:
    v = check([wildcard_leaf(), pki()["inter"]], server_name=sni)
    assert v.status == "hostname_mismatch" and v.sni_matches is False
    assert v.detail == f"SNI {sni} is not covered by the certificate's names (DNS:*.example.test)"


def test_hostname_mismatch_lists_the_names() -> None:
    v = check([pki()["leaf"], pki()["inter"]], server_name="www.example.test")
    assert v.status == "hostname_mismatch"
    assert v.detail == (
        "SNI www.example.test is not covered by the certificate's names (DNS:api.example.test, DNS:*.api.example.test)"
    )


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("api.example.test", "API.example.test.", True),
        ("*.example.test", "x.example.test", True),
        ("*.example.test", ".example.test", False),
        ("f*.example.test", "foo.example.test", False),
        ("*o.example.test", "foo.example.test", False),
        ("a.*.example.test", "a.b.example.test", False),
        ("*.test", "example.test", False),
        ("*", "localhost", False),
        ("xn--bcher-kva.example.test", "xn--bcher-kva.example.test", True),
        ("xn--bcher-kva.example.test", "bücher.example.test", False),
        ("", "example.test", False),
    ],
)
def test_dns_matches_rules(pattern: str, host: str, expected: bool) -> None:
    assert dns_matches(pattern, host) is expected


def test_ip_san_without_sni() -> None:
    leaf = leaf_under_inter("ip-only", san_dns=(), san_ip=("192.0.2.10",))
    assert check([leaf, pki()["inter"]], server_name=None, server_ip="192.0.2.10").status == "ok"
    v = check([leaf, pki()["inter"]], server_name=None, server_ip="192.0.2.99")
    assert v.status == "hostname_mismatch" and v.sni_matches is False
    assert "no SNI was sent" in v.detail and "192.0.2.99" in v.detail and "IP:192.0.2.10" in v.detail


def test_sni_that_is_an_ip_literal_matches_ip_sans() -> None:
    leaf = leaf_under_inter("v6", san_dns=(), san_ip=("2001:db8::5",))
    assert check([leaf, pki()["inter"]], server_name="2001:DB8:0::5").status == "ok"
    assert check([leaf, pki()["inter"]], server_name="2001:db8::6").status == "hostname_mismatch"


def test_no_name_and_no_address_skips_the_hostname_check() -> None:
    v = check([pki()["leaf"], pki()["inter"]], server_name=None, server_ip=None)
    assert v.status == "ok" and v.sni_matches is None
    assert v.strict_ok is None and v.strict_detail and "not run" in v.strict_detail


def test_cn_only_certificate_is_flagged_even_when_the_cn_matches() -> None:
    v = check([leaf_under_inter(san_dns=()), pki()["inter"]])
    assert v.status == "hostname_mismatch"
    assert "no subjectAltName" in v.detail and "only matches its CN" in v.detail and "ignore" in v.detail
    v = check([leaf_under_inter(san_dns=()), pki()["inter"]], server_name="other.example.test")
    assert v.status == "hostname_mismatch" and "only CN=api.example.test" in v.detail


# ---------------------------------------------------------------------------------------------------------------------
# trust


def test_self_signed_leaf() -> None:
    v = check([build("api.example.test")])
    assert v.status == "self_signed"
    assert "the leaf CN=api.example.test is self-signed and not a trust anchor (test-store)" in v.detail
    assert v.anchor is None and v.anchor_source == "test-store"


def test_untrusted_root_sent_by_the_server() -> None:
    corp_root = build("Corp Root", ca=True)
    corp_inter = build("Corp Issuing CA", issuer=corp_root, ca=True)
    v = check([build("api.example.test", issuer=corp_inter), corp_inter, corp_root])
    assert v.status == "untrusted_root"
    assert v.detail == "chain ends at 'CN=Corp Root' which is not a trust anchor (test-store)"
    assert v.defects[0].position == 2


def test_untrusted_root_with_same_name_as_an_anchor_says_the_key_differs() -> None:
    impostor = build("Test Root", ca=True, key_label="impostor")
    inter = build("Corp Issuing CA", issuer=impostor, ca=True)
    v = check([build("api.example.test", issuer=inter), inter, impostor])
    assert v.status == "untrusted_root" and "different key" in v.detail


def test_chain_ending_at_a_ca_whose_root_nobody_has_is_untrusted_root() -> None:
    corp_root = build("Corp Root", ca=True)
    corp_inter = build("Corp Issuing CA", issuer=corp_root, ca=True)
    v = check([build("api.example.test", issuer=corp_inter), corp_inter])
    assert v.status == "untrusted_root"
    assert (
        "chain ends at 'CN=Corp Issuing CA', issued by 'CN=Corp Root' which is neither sent nor a trust anchor"
        in v.detail
    )
    assert "--ca-bundle" in v.detail


def test_missing_intermediate_without_a_pool() -> None:
    v = check([pki()["leaf"]])
    assert v.status == "chain_incomplete"
    assert v.detail.startswith(
        "the server did not send the intermediate 'CN=Test Issuing CA' that issued the leaf (CN=api.example.test); "
    )
    assert "no bundle has it" in v.detail


def test_missing_intermediate_found_in_the_intermediates_pool() -> None:
    p = pki()
    pool = CertPool.build([(p["inter"].der, "intermediates issuing.pem")], "intermediates issuing.pem")
    v = check([p["leaf"]], intermediates=pool)
    assert v.status == "chain_incomplete"
    assert v.detail == (
        "the server did not send the intermediate 'CN=Test Issuing CA' that issued the leaf (CN=api.example.test); "
        "the --intermediates bundle has it (intermediates issuing.pem)"
    )
    assert len(v.path) == 3 and v.anchor == "CN=Test Root"
    other_pool = CertPool.build([(build("Unrelated CA", ca=True).der, "x")], "intermediates other.pem")
    v = check([p["leaf"]], intermediates=other_pool)
    assert (
        "neither the trust store (test-store) nor the --intermediates bundle (intermediates other.pem) has it"
        in v.detail
    )


def test_wrong_intermediate_with_the_right_name_but_another_key() -> None:
    p = pki()
    renewed = build("Test Issuing CA", issuer=p["root"], ca=True, key_label="renewed-inter")
    v = check([p["leaf"], renewed])
    assert v.status == "chain_incomplete"
    assert "the server sent a certificate named 'CN=Test Issuing CA'" in v.detail and "did not sign it" in v.detail


def test_cross_signed_copy_of_an_anchor_ends_the_path_at_the_anchor() -> None:
    p = pki()
    old_root = build("Legacy Root", ca=True)
    cross = build(
        "Test Root", issuer=old_root, ca=True, key_label="key:Test Root"
    )  # same subject and key as the anchor
    v = check([p["leaf"], p["inter"], cross])
    assert v.status == "ok", v.detail
    assert v.path[-1] == describe(p["root"].der).sha256
    assert any("sent the trust anchor 'CN=Test Root' itself" in w for w in v.warnings)


# ---------------------------------------------------------------------------------------------------------------------
# warnings


def test_out_of_order_chain_is_a_warning() -> None:
    p = pki()
    v = check([p["leaf"], p["root"], p["inter"]])
    assert v.status == "ok"
    assert any("out of order" in w for w in v.warnings)
    assert any("trust anchor 'CN=Test Root' itself" in w for w in v.warnings)


def test_duplicate_certificates_are_a_warning() -> None:
    p = pki()
    v = check([p["leaf"], p["inter"], p["inter"]])
    assert v.status == "ok"
    assert v.warnings == ("the peer sent 'CN=Test Issuing CA' 2 times (positions 2 and 3): harmless, wasted bytes",)


def test_unneeded_certificate_is_a_warning() -> None:
    p = pki()
    stray = build("Stray CA", ca=True)
    v = check([p["leaf"], p["inter"], stray])
    assert v.status == "ok"
    assert v.warnings == (
        "the server sent 'CN=Stray CA' (certificate #3) which is not on the path to the trust anchor (unneeded)",
    )


def test_leaf_with_ca_true_is_a_warning_not_a_defect() -> None:
    leaf = leaf_under_inter(ca=True, key_usage=("digital_signature", "key_cert_sign"), san_dns=("api.example.test",))
    v = check([leaf, pki()["inter"]])
    assert v.status == "ok"
    assert any("CA:TRUE" in w for w in v.warnings)


# ---------------------------------------------------------------------------------------------------------------------
# weak keys and signatures


def rsa_pki() -> tuple[Issued, Issued]:
    root = build("RSA Root", ca=True, key_kind="rsa")
    return root, build("RSA Issuing CA", issuer=root, ca=True, key_kind="rsa")


def test_rsa_1024_leaf() -> None:
    root, inter = rsa_pki()
    v = check([build("api.example.test", issuer=inter, key_kind="rsa1024"), inter], trust=store(root))
    assert v.status == "weak_key"
    assert "leaf CN=api.example.test has a 1024-bit RSA key, below 2048 bits" in v.detail


def test_small_ec_key() -> None:
    v = check([leaf_under_inter(key_kind="ec192"), pki()["inter"]])
    assert v.status == "weak_key" and "192-bit EC key (secp192r1), below 224 bits" in v.detail


def test_sha1_signed_leaf() -> None:
    root, inter = rsa_pki()
    sha1_leaf = resign(build("api.example.test", issuer=inter).der, inter.key, "sha1")
    v = check([sha1_leaf, inter], trust=store(root))
    assert v.status == "weak_signature"
    assert v.detail == (
        "leaf CN=api.example.test is signed with sha1WithRSAEncryption (SHA-1), which browsers and current OpenSSL reject"
    )


def test_md5_signed_intermediate() -> None:
    root, inter = rsa_pki()
    md5_inter = resign(inter.der, root.key, "md5")
    v = check([build("api.example.test", issuer=inter), md5_inter], trust=store(root))
    assert v.status == "weak_signature" and "intermediate 'CN=RSA Issuing CA'" in v.detail and "(MD5)" in v.detail


def test_sha1_self_signature_of_the_anchor_does_not_count() -> None:
    root, inter = rsa_pki()
    sha1_root = resign(root.der, root.key, "sha1")
    v = check([build("api.example.test", issuer=inter), inter], trust=store(sha1_root))
    assert v.status == "ok", v.detail


# ---------------------------------------------------------------------------------------------------------------------
# basicConstraints, keyUsage, extendedKeyUsage


def test_issuer_that_is_not_a_ca() -> None:
    p = pki()
    not_ca = build("Leaf Acting As CA", issuer=p["inter"], san_dns=("x.example.test",))
    v = check([build("api.example.test", issuer=not_ca), not_ca, p["inter"]])
    assert v.status == "invalid"
    assert (
        "'CN=Leaf Acting As CA' issued the leaf (CN=api.example.test) but is not a CA (basicConstraints CA:FALSE)"
        in v.detail
    )


def test_path_length_exceeded() -> None:
    p = pki()
    sub = build("Sub CA", issuer=p["inter"], ca=True)  # inter has pathLen 0
    v = check([build("api.example.test", issuer=sub), sub, p["inter"]])
    assert v.status == "invalid"
    assert "'CN=Test Issuing CA' allows 0 intermediate(s) below it (pathLenConstraint) but the path has 1" in v.detail


def test_issuer_key_usage_without_key_cert_sign() -> None:
    p = pki()
    inter = build("KU CA", issuer=p["root"], ca=True, key_usage=("digital_signature", "crl_sign"))
    v = check([build("api.example.test", issuer=inter), inter])
    assert v.status == "invalid" and "keyUsage lacks keyCertSign (digitalSignature, cRLSign)" in v.detail


def test_client_auth_only_leaf_for_purpose_server_and_client() -> None:
    leaf = leaf_under_inter(eku=(CLIENT_AUTH,))
    v = check([leaf, pki()["inter"]])
    assert v.status == "invalid"
    assert v.detail == "leaf CN=api.example.test is only for clientAuth (extendedKeyUsage), not serverAuth"
    assert check([leaf, pki()["inter"]], purpose="client").status == "ok"
    assert check([pki()["leaf"], pki()["inter"]], purpose="client").status == "invalid"


def test_intermediate_eku_must_allow_the_purpose() -> None:
    inter = build("Client CA", issuer=pki()["root"], ca=True, eku=(CLIENT_AUTH,))
    v = check([build("api.example.test", issuer=inter), inter])
    assert v.status == "invalid" and "intermediate 'CN=Client CA' is only for clientAuth" in v.detail


# ---------------------------------------------------------------------------------------------------------------------
# undecodable and empty


def test_undecodable_leaf() -> None:
    v = check([b"\x30\x03\x02\x01\x00", pki()["inter"]])
    assert v.status == "invalid" and "the leaf" in v.detail and "cannot be decoded" in v.detail


def test_undecodable_certificate_later_in_the_flight() -> None:
    p = pki()
    v = check([p["leaf"], p["inter"], b"garbage"])
    assert v.status == "invalid" and "certificate #3 of the flight" in v.detail


def test_empty_chain() -> None:
    v = check([])
    assert v.status == "invalid" and "empty Certificate" in v.detail


def test_garbage_chains_never_raise() -> None:
    rng = random.Random(5)
    base = pki()["leaf"].der
    for _ in range(200):
        blob = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            blob[rng.randrange(len(blob))] = rng.randrange(256)
        chain = [bytes(blob), rng.randbytes(rng.randint(0, 40)), pki()["inter"].der]
        assert check(chain).status in dict(PRECEDENCE).values() or check(chain).status == "ok"


# ---------------------------------------------------------------------------------------------------------------------
# precedence


def test_all_defects_are_collected_and_the_status_follows_the_precedence() -> None:
    root, inter = rsa_pki()
    leaf = build("api.example.test", issuer=inter, key_kind="rsa1024", not_after=T0 - 2 * DAY, eku=(CLIENT_AUTH,))
    v = check([resign(leaf.der, inter.key, "sha1"), inter], trust=store(root), server_name="www.example.test")
    assert v.status == "expired"
    assert kinds(v) == ["expired", "hostname_mismatch", "weak_key", "weak_signature", "extended_key_usage"]
    assert v.detail.endswith("(also: hostname_mismatch, weak_key, weak_signature, invalid)")


def test_trust_defects_come_before_expiry() -> None:
    v = check([build("api.example.test", not_after=T0 - 3 * DAY)])
    assert v.status == "self_signed" and kinds(v) == ["self_signed", "expired"]


def test_precedence_table_covers_every_status_but_ok() -> None:
    statuses = {status for _, status in PRECEDENCE}
    assert statuses == set(CAUSE_BY_STATUS) - {"revoked"}


# ---------------------------------------------------------------------------------------------------------------------
# the strict second opinion


def test_strict_verifier_rejects_a_leaf_without_aki_that_we_accept() -> None:
    v = check([leaf_under_inter(aki=False), pki()["inter"]])
    assert v.status == "ok" and v.strict_ok is False
    assert v.strict_detail is not None
    assert v.strict_detail.startswith("fails the strict RFC 5280 profile") and v.strict_detail.endswith(
        "browsers likely accept"
    )
    assert "2.5.29.35" in v.strict_detail  # authorityKeyIdentifier


def test_strict_verifier_rejects_an_intermediate_without_key_usage() -> None:
    inter = build("No KU CA", issuer=pki()["root"], ca=True, key_usage=None)
    v = check([build("api.example.test", issuer=inter), inter])
    assert v.status == "ok" and v.strict_ok is False and v.strict_detail and "2.5.29.15" in v.strict_detail


def test_strict_verifier_rejects_a_negative_serial_that_we_accept() -> None:
    root, inter = rsa_pki()
    neg = resign(build("api.example.test", issuer=inter).der, inter.key, "sha256", serial=b"\xff\x85")
    v = check([neg, inter], trust=store(root))
    assert v.status == "ok", v.detail
    assert any("serial number is negative" in w for w in v.warnings)
    assert v.strict_ok is False and v.strict_detail and "cannot parse the leaf" in v.strict_detail


def test_strict_verifier_accepts_a_weak_key_we_flag() -> None:
    root, inter = rsa_pki()
    v = check([build("api.example.test", issuer=inter, key_kind="rsa1024"), inter], trust=store(root))
    assert v.status == "weak_key" and v.strict_ok is True
    assert v.strict_detail == "passes the strict RFC 5280 profile (cryptography) although ours found weak_key"


def test_strict_verifier_agreeing_failure_is_reported_as_also() -> None:
    v = check([leaf_under_inter(not_after=T0 - 57 * DAY), pki()["inter"]])
    assert (
        v.strict_ok is False
        and v.strict_detail
        and v.strict_detail.startswith("the strict RFC 5280 profile (cryptography) also rejects it")
    )


def test_strict_verifier_for_client_certificates() -> None:
    leaf = leaf_under_inter("client.example.test", eku=(CLIENT_AUTH,))
    v = check([leaf, pki()["inter"]], purpose="client", server_name=None)
    assert v.status == "ok" and v.strict_ok is True


def test_strict_verifier_never_raises_on_odd_names() -> None:
    v = check([pki()["leaf"], pki()["inter"]], server_name="bad name with spaces")
    assert v.status == "hostname_mismatch" and v.strict_ok in (None, False)


# ---------------------------------------------------------------------------------------------------------------------
# real chains (missing-intermediate.pcap), anchored at the saved root so certifi updates cannot change the outcome


def real(name: str) -> bytes:
    return (CERTS / name).read_bytes()


STARFIELD = TrustStore.from_certificates([real("starfield-root-g2-serial0.der")], "test-store starfield")
CONN1_NS = 1417039703_228754000
CONN2_NS = 1417039705_853003000


def test_real_complete_chain_is_ok() -> None:
    chain = [real("valid-sfig2-leaf.der"), real("starfield-secure-ca-g2.der"), real("starfield-root-g2-serial0.der")]
    v = validate_chain(
        chain, at_ns=CONN2_NS, server_name="valid.sfig2.catest.starfieldtech.com", server_ip=None, trust=STARFIELD
    )
    assert v.status == "ok", v.detail
    assert v.strict_ok is True
    assert any("trust anchor 'CN=Starfield Root Certificate Authority - G2' itself" in w for w in v.warnings)


def test_real_missing_intermediate() -> None:
    leaf = real("cviis-explicit-ca-false.der")
    v = validate_chain([leaf], at_ns=CONN1_NS, server_name="www.cviis.org", server_ip=None, trust=STARFIELD)
    assert v.status == "chain_incomplete"
    assert "'CN=Starfield Secure Certificate Authority - G2' that issued the leaf (CN=www.cviis.org)" in v.detail
    pool = CertPool.build([(real("starfield-secure-ca-g2.der"), "intermediates g2.pem")], "intermediates g2.pem")
    v = validate_chain(
        [leaf], at_ns=CONN1_NS, server_name="www.cviis.org", server_ip=None, trust=STARFIELD, intermediates=pool
    )
    assert v.status == "chain_incomplete" and "the --intermediates bundle has it" in v.detail
    assert v.anchor is not None and "Starfield Root" in v.anchor
    assert any("cA FALSE explicitly" in w for w in v.warnings)
    # The strict verifier cannot even parse that leaf (explicit DEFAULT): a disagreement we report, not adopt.
    assert v.strict_ok is False and v.strict_detail and "DEFAULT" in v.strict_detail


# ---------------------------------------------------------------------------------------------------------------------
# mapping and immutability


def test_cause_by_status_uses_the_canonical_codes() -> None:
    assert CAUSE_BY_STATUS == {
        "expired": Cause.CERT_EXPIRED,
        "not_yet_valid": Cause.CERT_NOT_YET_VALID,
        "hostname_mismatch": Cause.CERT_HOSTNAME_MISMATCH,
        "self_signed": Cause.CERT_SELF_SIGNED,
        "untrusted_root": Cause.CERT_UNTRUSTED_ROOT,
        "chain_incomplete": Cause.CERT_CHAIN_INCOMPLETE,
        "weak_key": Cause.CERT_WEAK,
        "weak_signature": Cause.CERT_WEAK,
        "invalid": Cause.CERT_INVALID,
        "revoked": Cause.CERT_REVOKED,
    }
    assert CAUSE_BY_STATUS["expired"] == "cert_expired"


def test_verdicts_are_frozen() -> None:
    v = check([pki()["leaf"], pki()["inter"]])
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.status = "expired"  # type: ignore[misc]


def test_validation_does_not_depend_on_the_key_cache() -> None:
    assert key("x", "ec") is key("x", "ec")
