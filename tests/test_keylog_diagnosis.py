"""With the clients' key logs, TLS 1.3 certificate failures are decided from each connection's own
Certificate: right cause, `certain`, and the leaf tshark decrypted with the same keys."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest
from conftest import ROOT, SAMPLES

import analyzer

PKI_ROOT = SAMPLES / "gen" / "pki" / "root.pem"
LEAVES = ROOT / "tests" / "data" / "keylog" / "tshark_leaf.tsv"


def _keyed_samples() -> list[tuple[dict[str, object], str]]:
    out = []
    for sample in json.loads((SAMPLES / "manifest.json").read_text()):
        keys = SAMPLES / "keylogs" / (str(sample["file"]).split(".pcap")[0] + ".keys")
        if keys.exists() and (SAMPLES / str(sample["file"])).exists():
            out.append((sample, str(keys)))
    return out


def _tshark_leaves() -> dict[tuple[str, int], str]:
    with open(LEAVES, newline="") as fh:
        return {(r["capture"], int(r["dst_port"])): r["leaf_sha256"] for r in csv.DictReader(fh, delimiter="\t")}


KEYED = _keyed_samples()


def _limitations() -> set[tuple[str, int]]:
    """Connections tests/expected/samples.csv documents as undecidable from packets (no row at all)."""
    with open(ROOT / "tests" / "expected" / "samples.csv", newline="") as fh:
        return {(r["file"], int(r["client_port"])) for r in csv.DictReader(fh) if r["pending"].startswith("no row")}


@pytest.mark.parametrize(("sample", "keys"), KEYED, ids=[str(s["file"]) for s, _ in KEYED])
def test_keyed_sample(sample: dict[str, object], keys: str) -> None:
    r = analyzer.analyze(SAMPLES / str(sample["file"]), ca_bundle=[PKI_ROOT], keylog=[keys])
    hs = r.handshakes
    leaves = _tshark_leaves()
    problems = []
    skip = _limitations()
    for conn in sample["connections"]:  # type: ignore[attr-defined]
        if (sample["file"], int(conn["client_port"])) in skip:
            continue
        row = hs[(hs.client_port == conn["client_port"]) & (hs.server_port == conn["server_port"])]
        assert not row.empty, conn
        x = row.iloc[0]
        cause = x.failure_cause if isinstance(x.failure_cause, str) else None
        if x.outcome != conn["intended_outcome"] or cause != conn["intended_cause"]:
            problems.append(f"{conn['client']}: want {conn['intended_cause']} got {x.outcome}/{cause}")
        if str(x.version) == "TLS 1.3" and (cause or "").startswith("cert_"):
            if str(x.keylog_status) == "decrypted" and str(x.confidence) != "certain":
                problems.append(f"{conn['client']}: {cause} decrypted but {x.confidence}")
            tshark_leaf = leaves.get((f"samples/{sample['file']}", int(conn["client_port"])))
            if tshark_leaf is not None and str(x.keylog_status) == "decrypted":
                assert x.cert_sha256 == tshark_leaf
    assert not problems, "\n".join(problems)


def test_four_stacks_decrypted_and_certain() -> None:
    stacks: set[str] = set()
    for sample, keys in KEYED:
        if not str(sample["file"]).startswith("cert-"):
            continue
        hs = analyzer.analyze(SAMPLES / str(sample["file"]), ca_bundle=[PKI_ROOT], keylog=[keys]).handshakes
        done = hs[(hs.version == "TLS 1.3") & (hs.keylog_status == "decrypted") & hs.failure_cause.notna()]
        assert (done.confidence == "certain").all()
        stacks.update(s for s in done.client_stack.dropna())
    assert len(stacks) >= 4, stacks


def test_wrong_keys_are_a_status_not_an_answer(tmp_path) -> None:
    wrong = tmp_path / "wrong.keys"
    text = (SAMPLES / "keylogs" / "cert-expired.keys").read_text().splitlines()
    wrong.write_text("\n".join(line[:-4] + "0000" if not line.startswith("#") and line else line for line in text))
    hs = analyzer.analyze(SAMPLES / "cert-expired.pcap", ca_bundle=[PKI_ROOT], keylog=[wrong]).handshakes
    tls13 = hs[hs.version == "TLS 1.3"]
    assert set(tls13.keylog_status) == {"key_mismatch"}
    plain = analyzer.analyze(SAMPLES / "cert-expired.pcap", ca_bundle=[PKI_ROOT]).handshakes
    pd.testing.assert_series_equal(hs.failure_cause, plain.failure_cause)  # never a silent wrong answer


def test_secrets_embedded_in_pcapng_are_used_without_a_key_log() -> None:
    hs = analyzer.analyze(SAMPLES / "python-ssl-ok-dsb.pcapng").handshakes
    assert len(hs) and set(hs.keylog_status) == {"decrypted"}
    plain = analyzer.analyze(SAMPLES / "python-ssl-ok.pcap").handshakes
    assert set(plain.keylog_status.dropna()) == set()
    r = analyzer.analyze(SAMPLES / "python-ssl-ok-dsb.pcapng")
    assert "keylog_status: decrypted" in r.explain(r.handshakes.conn_id.iloc[0])


def test_hidden_certificate_decided_by_the_key_log() -> None:
    """Cut from cert-expired.pcap: only TLS 1.3 rejections, so only the keys show the certificate."""
    path = SAMPLES / "cert-rejected-unknown-tls13.pcap"
    blind = analyzer.analyze(path, ca_bundle=[PKI_ROOT]).handshakes
    assert sorted(blind.failure_cause) == ["cert_rejected_unknown", "client_aborted"]
    assert blind.failure_detail.str.contains("key log").any()
    keyed = analyzer.analyze(path, ca_bundle=[PKI_ROOT], keylog=[SAMPLES / "keylogs" / "cert-expired.keys"]).handshakes
    assert set(keyed.failure_cause) == {"cert_expired"} and set(keyed.confidence) == {"certain"}


def test_report_says_keys_were_used(tmp_path) -> None:
    from analyzer.report import write_report

    r = analyzer.analyze(
        SAMPLES / "cert-expired.pcap", ca_bundle=[PKI_ROOT], keylog=[SAMPLES / "keylogs" / "cert-expired.keys"]
    )
    write_report(r, tmp_path)
    assert "Key logs were used" in (tmp_path / "report.md").read_text()
