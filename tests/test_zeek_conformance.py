"""Agreement with Zeek's ssl.log (an oracle we did not write) on the TLS-over-TCP conformance traces."""

from __future__ import annotations

import pytest
from conftest import ZEEK_TRACES
from zeek_oracle import compare, oracle

# Every disagreement must be listed here with its reason (none today on tls/).
KNOWN_DISAGREEMENTS: dict[str, str] = {}


def _tls_direct(trace: str) -> bool:
    return trace.startswith("tls/") and "starttls" not in trace and "dtls" not in trace


@pytest.mark.skipif(not ZEEK_TRACES.exists(), reason="../shared/conformance is not beside this checkout")
def test_agreement_with_zeek_on_every_trace_but_dtls() -> None:
    """STARTTLS (SMTP-family, FTP, PostgreSQL, MySQL, XMPP, IRC, RDP), SOCKS, sslh and GridFTP's ADAT too."""
    exps = oracle(lambda t: "dtls" not in t)
    assert len(exps) >= 55
    agree, total, problems = compare(exps)
    unexplained = [p for p in problems if p not in KNOWN_DISAGREEMENTS]
    assert not unexplained, "\n".join(unexplained)
    assert agree / total >= 0.99, f"{agree}/{total}"


@pytest.mark.skipif(not ZEEK_TRACES.exists(), reason="../shared/conformance is not beside this checkout")
def test_agreement_with_zeek_on_tls_traces() -> None:
    exps = oracle(_tls_direct)
    assert len(exps) >= 40, "the oracle lost its rows"
    agree, total, problems = compare(exps)
    unexplained = [p for p in problems if p not in KNOWN_DISAGREEMENTS]
    assert not unexplained, "\n".join(unexplained)
    assert agree / total >= 0.99, f"{agree}/{total}"
    stale = set(KNOWN_DISAGREEMENTS) - set(problems)
    assert not stale, f"fixed, remove from KNOWN_DISAGREEMENTS: {sorted(stale)}"


# Zeek's validation_status (OpenSSL's words) against ours. By definition Zeek judges neither the hostname
# nor algorithm strength (the OpenSSL of 2014 accepted SHA-1 and RSA-1024): our weak_* verdicts are "ok" to it.
ZEEK_VALIDATION = {
    "ok": {"ok", "weak_signature", "weak_key", "hostname_mismatch"},
    "unable to get local issuer certificate": {"chain_incomplete", "untrusted_root"},
    "certificate has expired": {"expired"},
    "self signed certificate": {"self_signed"},
    "self signed certificate in certificate chain": {"untrusted_root"},
}
# Zeek caches intermediates across connections, so a server that omits its intermediate looks fine once
# another connection sent it (README of the conformance data); we judge each connection on its own.
KNOWN_VALIDATION_DIFFERENCES = {("tls/missing-intermediate.pcap", 58532): "Zeek reused a cached intermediate"}


@pytest.mark.skipif(not ZEEK_TRACES.exists(), reason="../shared/conformance is not beside this checkout")
def test_certificate_verdicts_agree_with_zeek() -> None:
    import csv

    from zeek_oracle import ZEEK

    import analyzer

    anchors = ZEEK / "external-ca-list.pem"  # the roots Zeek's validation tests trusted
    results: dict[str, object] = {}
    checked = 0
    problems = []
    with open(ZEEK / "zeek_ssl_oracle.tsv", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            trace, port = row["trace"], row["id.orig_p"]
            if not _tls_direct(trace) or not port:
                continue
            z_val, z_sni = row["validation_status"], row["sni_matches_cert"]
            if z_val in ("", "-") and z_sni not in ("T", "F"):
                continue
            if trace not in results:
                results[trace] = analyzer.analyze(ZEEK_TRACES / trace, ca_bundle=[anchors]).handshakes
            hs = results[trace]
            got = hs[hs.client_port == int(port)]  # type: ignore[attr-defined]
            assert not got.empty, f"{trace}:{port} has no row"
            ours = got.iloc[0]
            if z_sni in ("T", "F"):
                checked += 1
                if bool(ours.sni_matches_cert) != (z_sni == "T"):
                    problems.append(f"{trace}:{port} sni_matches_cert zeek={z_sni} ours={ours.sni_matches_cert}")
            if z_val not in ("", "-") and (trace, int(port)) not in KNOWN_VALIDATION_DIFFERENCES:
                checked += 1
                if ours.validation_status not in ZEEK_VALIDATION[z_val]:
                    problems.append(f"{trace}:{port} validation zeek={z_val!r} ours={ours.validation_status}")
    assert checked >= 20
    assert not problems, "\n".join(problems)
