"""compare(): the known differences between sample captures, per server, as tables and in report format."""

from __future__ import annotations

import csv
import pathlib

import matplotlib

matplotlib.use("Agg")

import pytest
from conftest import SAMPLES

import analyzer
from analyzer import cli
from analyzer.compare import Comparison

ROOT_CA = [SAMPLES / "gen" / "pki" / "root.pem"]


def aspects(c: Comparison, server: str) -> dict[str, dict[str, str]]:
    rows = c.changes[c.changes["server"] == server]
    return {str(r["aspect"]): {k: str(r[k]) for k in ("before", "after", "note")} for _, r in rows.iterrows()}


def test_certificate_expired_after_a_healthy_capture() -> None:
    """Same name, healthy leaf before; expired leaf and 100% cert_expired after (by SNI: the port moved)."""
    c = analyzer.compare(SAMPLES / "tls13-curl-alpn.pcap", SAMPLES / "cert-expired.pcap", by="sni", ca_bundle=ROOT_CA)
    got = aspects(c, "server.test")
    assert {"certificate", "chain", "failures", "client stacks"} <= set(got)
    before_leaf = c.before.handshakes["cert_sha256"].dropna().iloc[0]
    after_leaf = c.after.handshakes["cert_sha256"].dropna().iloc[0]
    assert before_leaf[:16] in got["certificate"]["before"] and after_leaf[:16] in got["certificate"]["after"]
    assert "expired" in got["certificate"]["note"]
    assert "verdicts ok" in got["chain"]["before"] and "verdicts expired" in got["chain"]["after"]
    assert got["failures"]["before"].startswith("0 of 2 failed")
    assert got["failures"]["after"].startswith("14 of 14 failed (100%): cert_expired 14")
    assert "cert_expired 0% -> 100%" in got["failures"]["note"]
    assert "new: " in got["client stacks"]["note"]  # JA4 is the client identity
    assert c.servers.loc[0, "status"] == "changed"


def test_incomplete_chain_fixed() -> None:
    c = analyzer.compare(
        SAMPLES / "cert-missing-intermediate.pcap", SAMPLES / "tls13-curl-alpn.pcap", by="sni", ca_bundle=ROOT_CA
    )
    got = aspects(c, "server.test")
    assert "chain_incomplete" in got["chain"]["before"] and "verdicts ok" in got["chain"]["after"]
    assert got["chain"]["before"].count(">") == 0 and got["chain"]["after"].count(">") == 1  # intermediate now sent
    assert "cert_chain_incomplete 100% -> 0%" in got["failures"]["note"]
    assert "certificate" not in got  # same leaf


def test_new_server_and_unchanged_ones() -> None:
    c = analyzer.compare(SAMPLES / "go-ok.pcap", SAMPLES / "multi-linktype.pcapng")
    status = dict(zip(c.servers["server"], c.servers["status"], strict=True))
    assert status == {
        "127.0.0.1:4470 (server.test)": "unchanged",
        "127.0.0.1:4471 (server.test)": "unchanged",
        "127.0.0.1:4450 (server.test)": "new",
    }
    assert list(c.changes["aspect"]) == ["presence"]


def test_versions_gone_when_the_capture_stops_early() -> None:
    c = analyzer.compare(SAMPLES / "tls13-curl-alpn.pcap", SAMPLES / "truncated-after-clienthello.pcap")
    got = aspects(c, "127.0.0.1:4430 (server.test)")
    assert got["versions"]["before"] == "TLS 1.2 1, TLS 1.3 1" and got["versions"]["after"] == "none"
    assert "gone: TLS 1.2, TLS 1.3" in got["versions"]["note"]


def test_identical_captures_and_results_accepted() -> None:
    a = analyzer.analyze(SAMPLES / "cert-expired.pcap", ca_bundle=ROOT_CA)
    c = analyzer.compare(a, SAMPLES / "cert-expired.pcap.gz", ca_bundle=ROOT_CA)
    assert c.changes.empty and set(c.servers["status"]) == {"unchanged"}
    assert c.before is a
    assert "no differences" in str(c)
    with pytest.raises(ValueError, match="by must be"):
        analyzer.compare(a, a, by="nope")


def test_endpoint_key_matches_a_capture_without_sni() -> None:
    """The mid-connection capture has no SNI: by endpoint it is the same server as the full one."""
    c = analyzer.compare(SAMPLES / "tls12-openssl-bulk.pcap", SAMPLES / "mid-connection-tls12.pcap", by="endpoint")
    assert list(c.servers["server"]) == ["127.0.0.1:4412"]


def test_cli_compare(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp"
    before, after = str(SAMPLES / "tls13-curl-alpn.pcap"), str(SAMPLES / "cert-expired.pcap")
    args = ["compare", before, after, "--by", "sni", "--ca-bundle", str(ROOT_CA[0])]
    assert cli.main([*args, "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 changed" in printed and "cert_expired 0% -> 100%" in printed
    page = (out / "compare.html").read_text()
    assert "<script" not in page and "Changes per server" in page and 'src="data:image/png;base64,' in page
    assert (out / "compare.md").exists() and (out / "cause-shift.png").exists()
    with open(out / "changes.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == len(analyzer.compare(before, after, by="sni").changes)
    assert cli.main([*args, "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("server,aspect,before,after,note")
    assert cli.main(["compare", before, str(tmp_path / "missing.pcap")]) == 2
