"""Every failure cause of ../shared/spec/failure-causes.md is produced by a real capture in the tests,
except `other` (the rule table's last resort), shown here on a real capture edited by hand."""

from __future__ import annotations

import csv
import pathlib
import re

import pytest
from conftest import ROOT, SHARED, ZEEK_TRACES
from forge import pcap, read_pcap

import analyzer

# the spec and the Zeek traces live beside the project (../shared); a bare clone skips these
pytestmark = pytest.mark.skipif(not (SHARED / "spec").exists() or not ZEEK_TRACES.exists(), reason="needs ../shared")


def spec_causes() -> set[str]:
    text = (SHARED / "spec" / "failure-causes.md").read_text()
    return set(re.findall(r"^\| `([a-z0-9_]+)` \|", text.split("`failure_cause` (empty unless", 1)[1], flags=re.M))


def causes_in(path: pathlib.Path, column: str) -> set[str]:
    with open(path, newline="") as fh:
        return {row[column] for row in csv.DictReader(fh) if row[column]}


def test_every_cause_has_a_real_capture() -> None:
    covered = causes_in(ROOT / "tests" / "expected" / "samples.csv", "failure_cause")
    covered |= causes_in(ROOT / "samples" / "workload-mixed.labels.csv", "intended_cause")
    missing = spec_causes() - covered
    assert missing == {"other"}, f"causes without a real capture: {sorted(missing)}"


def test_other_is_the_last_resort(tmp_path: pathlib.Path) -> None:
    """A client's fatal decrypt_error after it finished the handshake fits no cause: `other`, with the alert."""
    packets = read_pcap(str(ZEEK_TRACES / "tls" / "tls1.2.pcap"))
    out = []
    for ts, frame in packets:
        ihl = (frame[14] & 0x0F) * 4
        tcp = 14 + ihl
        sport = int.from_bytes(frame[tcp : tcp + 2], "big")
        payload = frame[tcp + (frame[tcp + 12] >> 4) * 4 :]
        if sport != 443 and payload[:1] == b"\x17":  # the client's first application data
            alert = bytes.fromhex("15030300020233")  # fatal decrypt_error, in clear
            ip_len = (len(frame) - 14 - len(payload) + len(alert)).to_bytes(2, "big")
            out.append((ts, frame[:16] + ip_len + frame[18 : len(frame) - len(payload)] + alert))
            break
        out.append((ts, frame))
    path = tmp_path / "other.pcap"
    path.write_bytes(pcap(out))
    row = analyzer.analyze(path).handshakes.iloc[0]
    assert (row.outcome, row.failure_cause, row.alert, row.alert_sender) == (
        "failed",
        "other",
        "decrypt_error",
        "client",
    )
    assert "decrypt_error" in row.failure_detail
