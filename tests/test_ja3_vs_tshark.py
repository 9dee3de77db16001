"""Our JA3 equals tshark's tls.handshake.ja3 (tests/data/tshark_ja3.tsv, made by tests/tools/make_tshark_ja3.sh)."""

from __future__ import annotations

import csv

import pytest
from conftest import ROOT

import analyzer

ORACLE = ROOT / "tests" / "data" / "tshark_ja3.tsv"


def _first_hellos() -> dict[str, dict[tuple[str, int], str]]:
    out: dict[str, dict[tuple[str, int], str]] = {}
    with open(ORACLE, newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            out.setdefault(row["capture"], {}).setdefault((row["client_ip"], int(row["client_port"])), row["ja3"])
    return out


HELLOS = _first_hellos()

# Where we differ from tshark on purpose. The deliberately malformed ClientHello (extensions length
# one byte past the message end): tshark drops every extension from its JA3; we keep the extensions
# that are whole (and the cut-short last one), as the server that answered it did, and note the damage.
KNOWN_DIFFERENCES = {("samples/server-rejected-hello.pcap", ("127.0.0.1", 49162))}


@pytest.mark.parametrize("capture", sorted(HELLOS))
def test_ja3_matches_tshark(capture: str) -> None:
    path = ROOT / capture
    if not path.exists():
        pytest.skip(f"{capture} not present")
    hs = analyzer.analyze(path).handshakes
    ours = {(r.client_ip, int(r.client_port)): r.ja3 for r in hs.itertuples()}
    for key, ja3 in HELLOS[capture].items():
        if (capture, key) in KNOWN_DIFFERENCES:
            assert ours.get(key) not in (None, ja3), "a known difference went away: update KNOWN_DIFFERENCES"
            continue
        assert ours.get(key) == ja3, f"{capture} {key}"
