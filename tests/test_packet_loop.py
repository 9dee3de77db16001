"""The per-packet loop gives the same tables whether a block reaches it as lists converted a piece at a
time (blocks of short runs: SYN floods, scans) or a window per run (everything else)."""

from __future__ import annotations

import pytest
from conftest import SAMPLES, ZEEK_TRACES

import analyzer
from analyzer import packets

TABLES = ("handshakes", "alerts", "events", "chains", "certificates")
# every sample (each has TLS connections), and the Zeek TLS traces with TLS over TCP (not OCSP over
# HTTP, not DTLS)
CAPTURES = [
    *sorted(SAMPLES.glob("*.pcap*")),
    *sorted(p for p in ZEEK_TRACES.glob("tls/*.pcap") if not p.name.startswith(("ocsp-", "dtls"))),
]


@pytest.mark.parametrize("path", [p for p in CAPTURES if p.exists()], ids=lambda p: p.name)
def test_block_lists_and_run_windows_give_the_same_tables(path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packets, "SHORT_RUNS", 0)  # never: a window per run
    windows = analyzer.analyze(path)
    monkeypatch.setattr(packets, "SHORT_RUNS", 10**9)  # always: the block's lists, a piece at a time
    monkeypatch.setattr(packets, "LIST_CHUNK", 7)  # small pieces: runs cross their ends
    lists = analyzer.analyze(path)
    assert len(windows.handshakes) > 0
    for table in TABLES:
        assert getattr(windows, table).equals(getattr(lists, table)), table
    assert windows.warnings == lists.warnings
