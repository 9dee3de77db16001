"""Every sample's rows against the hand-reviewed tests/expected/samples.csv.

Certificates are judged against certifi plus the samples' own root (samples/gen/pki/root.pem), as
their clients were configured. Rows marked `pending` say why the packets alone cannot decide them
(a documented limitation, or a TLS 1.3 certificate only the key log shows); for those the row must exist and the analyzer must still be wrong about it, so the
mark is removed the day it starts being right.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict

import pandas as pd
import pytest
from conftest import ROOT, SAMPLES

import analyzer

EXPECTED = ROOT / "tests" / "expected" / "samples.csv"
PKI_ROOT = SAMPLES / "gen" / "pki" / "root.pem"  # the samples' private root: their clients trusted it
CHECKED = ["outcome", "failure_cause", "alert", "alert_sender", "version", "sni"]
# The fact a responder needs from each cause's detail sentence.
KEY_FACTS = {
    "cert_expired": r"expired \d{4}-\d\d-\d\dT|certificate_expired.*key log",
    "cert_not_yet_valid": r"not valid until \d{4}-",
    "cert_hostname_mismatch": r"not covered by the certificate|no subjectAltName",
    "cert_self_signed": r"self-signed",
    "cert_untrusted_root": r"not a trust anchor",
    "cert_chain_incomplete": r"intermediate",
    "cert_weak": r"bit|SHA-1",
    "cert_revoked": r"revoked",
    "cert_rejected_unknown": r"key log",
    "client_cert_missing": r"empty|no Certificate",
    "client_cert_rejected": r"certificate",
    "protocol_version": r"offered",
    "no_shared_cipher": r"offered \d+ suite",
    "unrecognized_name": r"SNI",
    "no_application_protocol": r"ALPN",
    "inappropriate_fallback": r"inappropriate_fallback",
    "server_rejected_hello": r"fatal alert",
    "tcp_refused": r"RST",
    "tcp_timeout": r"SYN",
    "server_reset": r"reset",
    "server_closed": r"FIN",
    "server_no_response": r"nothing|did not answer",
    "non_tls_server": r'non-TLS bytes "',
    "client_sent_plaintext": r'plaintext "',
    "starttls_refused": r"refused",
    "no_client_hello": r"ClientHello|sent nothing",
    "client_aborted": r"closed with",
    "server_aborted": r"server",
}


def _expected() -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = defaultdict(list)
    with open(EXPECTED, newline="") as fh:
        for row in csv.DictReader(fh):
            out[row["file"]].append(row)
    return out


EXPECTED_ROWS = _expected()


def test_every_sample_is_covered() -> None:
    captures = {
        p.name
        for p in SAMPLES.iterdir()
        if p.suffix in (".pcap", ".pcapng", ".gz") and not p.name.startswith("workload-")
    }
    assert captures == set(EXPECTED_ROWS), "samples and tests/expected/samples.csv disagree"


def _cell(value: object) -> str:
    return value if isinstance(value, str) else ""


@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_sample_rows(name: str) -> None:
    result = analyzer.analyze(SAMPLES / name, ca_bundle=[PKI_ROOT])
    hs = result.handshakes
    rows = EXPECTED_ROWS[name]
    ready = [r for r in rows if "no row" not in r["pending"]]  # rows that exist
    assert len(hs) == len(ready), f"{len(hs)} rows, expected {len(ready)}"
    problems = []
    for want in rows:
        got = hs[(hs.client_port == int(want["client_port"])) & (hs.server_port == int(want["server_port"]))]
        pending = want["pending"]
        if got.empty:
            if "no row" not in pending:
                problems.append(f"{want['client_port']}->{want['server_port']}: no row")
            continue
        row = got.iloc[0]
        diffs = [
            f"{c}: want {want[c]!r} got {_cell(row[c])!r}"
            for c in CHECKED
            if not (pending and c in ("alert", "alert_sender")) and want[c] != _cell(row[c])
        ]
        if pending:
            if not diffs:
                problems.append(f"{want['client_port']}->{want['server_port']}: now right, remove 'pending'")
        elif diffs:
            problems.append(f"{want['client_port']}->{want['server_port']} [{want['client']}]: " + "; ".join(diffs))
        if row.outcome == "failed":
            assert isinstance(row.failure_detail, str) and len(row.failure_detail) > 20
            assert row.confidence in ("certain", "inferred")
            fact = KEY_FACTS.get(str(row.failure_cause))
            if fact and not re.search(fact, row.failure_detail):
                problems.append(
                    f"{want['client_port']}->{want['server_port']}: detail lacks /{fact}/: {row.failure_detail}"
                )
    assert not problems, "\n".join(problems)
    assert isinstance(hs["ts"].dtype, pd.DatetimeTZDtype)
