"""Evidence extraction: the written pcap re-analyses to the same rows; result.packets(conn_id) is that connection's."""

from __future__ import annotations

import pathlib
import struct

import pandas as pd
import pytest
from conftest import SAMPLES

import analyzer
from analyzer import cli, extract

ROOT_CA = [SAMPLES / "gen" / "pki" / "root.pem"]
PLACE = ["first_frame", "capture_file"]  # where a row was found, not what it is


def rows(r: analyzer.AnalysisResult, ids: list[str] | None = None, renumbered: bool = False) -> pd.DataFrame:
    """The rows without where they were found; ``renumbered``: frame numbers quoted in the text also masked
    (a subset of the packets numbers its frames from 1 again)."""
    hs = r.handshakes
    if ids is not None:
        hs = hs[hs["conn_id"].isin(ids)]
    hs = hs.drop(columns=PLACE).sort_values("conn_id").reset_index(drop=True)
    if renumbered:
        for col in hs.columns:
            if hs[col].dtype == "string":
                hs[col] = hs[col].str.replace(r"frame \d+", "frame N", regex=True)
    return hs


@pytest.mark.parametrize(
    ("sample", "fmt"),
    [
        ("incident-mixed.pcapng", "pcapng"),  # Ethernet + SLL + SLL2 interfaces: pcapng, one interface each
        ("cert-expired.pcap.gz", "pcap"),  # gzip input, microsecond pcap
        ("client-sent-plaintext.pcap", "pcap"),  # nanosecond pcap
        ("ipv6-openssl.pcap", "pcap"),
        ("snaplen96-tls13.pcap", "pcap"),  # truncated frames keep their original length
    ],
)
def test_whole_capture_round_trip(tmp_path: pathlib.Path, sample: str, fmt: str) -> None:
    r = analyzer.analyze(SAMPLES / sample, ca_bundle=ROOT_CA)
    ids = list(r.handshakes["conn_id"])
    out = tmp_path / "evidence.pcap"
    summary = extract.write_pcap(r, ids, out)
    assert summary.format == fmt and summary.connections == ids and not summary.missing
    again = analyzer.analyze(out, ca_bundle=ROOT_CA)
    pd.testing.assert_frame_equal(rows(again), rows(r))
    assert out.read_bytes()[:4] == (b"\x0a\x0d\x0d\x0a" if fmt == "pcapng" else b"\x4d\x3c\xb2\xa1")  # ns pcap


def test_one_cause_out_of_a_mixed_capture(tmp_path: pathlib.Path) -> None:
    r = analyzer.analyze(SAMPLES / "incident-mixed.pcapng", ca_bundle=ROOT_CA)
    ids = extract.conn_ids_for(r, [], "cert_expired")
    assert ids
    summary = extract.write_pcap(r, ids, tmp_path / "expired.pcap")
    assert summary.format == "pcap" and summary.linktypes == [1]
    again = analyzer.analyze(tmp_path / "expired.pcap", ca_bundle=ROOT_CA)
    assert list(again.handshakes["conn_id"]) == ids  # nothing else came along
    pd.testing.assert_frame_equal(rows(again, renumbered=True), rows(r, ids, renumbered=True))


def test_packets_of_one_connection() -> None:
    r = analyzer.analyze(SAMPLES / "go-ok.pcap")  # Linux cooked v2
    row = r.handshakes.iloc[0]
    pkts = r.packets(str(row["conn_id"]))
    assert len(pkts) == int(row["client_packets"]) + int(row["server_packets"])
    assert r.packets == int(r.packets) and f"{r.packets}" == str(int(r.packets))  # still the packet count
    first = pkts[0]
    assert first.haslayer("TCP") and first["TCP"].flags.S
    assert int(first.time * 10**9) == pd.Timestamp(row["ts"]).value  # nanoseconds kept
    ports = {(p["TCP"].sport, p["TCP"].dport) for p in pkts}
    assert ports == {(row["client_port"], row["server_port"]), (row["server_port"], row["client_port"])}
    with pytest.raises(KeyError):
        r.packets("Cnosuchconnection")


def test_cli_extract(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    cap = str(SAMPLES / "incident-mixed.pcapng")
    r = analyzer.analyze(cap)
    first = str(r.handshakes["conn_id"].iloc[0])
    out = tmp_path / "x.pcapng"
    assert cli.main(["extract", cap, "--conn", first, "--cause", "tcp_refused", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    again = analyzer.analyze(out)
    want = [first, *r.handshakes.loc[r.handshakes["failure_cause"] == "tcp_refused", "conn_id"]]
    assert sorted(again.handshakes["conn_id"]) == sorted(want)
    assert cli.main(["extract", cap, "--conn", "Cnope", "-o", str(tmp_path / "y.pcap")]) == 2
    assert "no connection 'Cnope'" in capsys.readouterr().err
    assert cli.main(["extract", cap, "--cause", "no_such_cause", "-o", str(tmp_path / "z.pcap")]) == 2
    assert "no connection chosen" in capsys.readouterr().err


def test_mixed_link_types_refuse_plain_pcap(tmp_path: pathlib.Path) -> None:
    r = analyzer.analyze(SAMPLES / "multi-linktype.pcapng")
    with pytest.raises(ValueError, match="several link types"):
        extract.write_pcap(r, list(r.handshakes["conn_id"]), tmp_path / "x.pcap", fmt="pcap")


def _tcp(src: bytes, dst: bytes, sport: int, dport: int) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, src, dst)
    return ip + struct.pack("!HHIIBBHHH", sport, dport, 0, 0, 0x50, 0x02, 0, 0, 0)


def test_endpoints_for_every_link_type() -> None:
    ip = _tcp(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 40000, 443)
    want = (("10.0.0.1", 40000), ("10.0.0.2", 443))
    eth = b"\x00" * 12
    assert extract.tcp_endpoints(1, eth + b"\x08\x00" + ip) == want
    assert extract.tcp_endpoints(1, eth + b"\x81\x00\x00\x05\x81\x00\x00\x06\x08\x00" + ip) == want  # QinQ
    assert extract.tcp_endpoints(113, b"\x00" * 14 + b"\x08\x00" + ip) == want
    assert extract.tcp_endpoints(276, b"\x08\x00" + b"\x00" * 18 + ip) == want
    assert extract.tcp_endpoints(0, struct.pack("<I", 2) + ip) == want
    assert extract.tcp_endpoints(108, struct.pack(">I", 2) + ip) == want
    assert extract.tcp_endpoints(101, ip) == want
    v6 = struct.pack("!IHBB16s16s", 6 << 28, 28, 0, 64, b"\x00" * 15 + b"\x01", b"\x00" * 15 + b"\x02")
    hop = bytes([6, 0]) + b"\x00" * 6  # hop-by-hop options header, then TCP
    tcp = struct.pack("!HHIIBBHHH", 5555, 443, 0, 0, 0x50, 0x02, 0, 0, 0)
    v6 = v6[:6] + bytes([0]) + v6[7:]  # next header: hop-by-hop
    assert extract.tcp_endpoints(229, v6 + hop + tcp) == (("::1", 5555), ("::2", 443))
    assert extract.tcp_endpoints(1, eth + b"\x08\x06" + b"\x00" * 28) is None  # ARP
    udp = bytearray(ip)
    udp[9] = 17
    assert extract.tcp_endpoints(101, bytes(udp)) is None
    frag = bytearray(ip)
    frag[6:8] = b"\x00\x10"  # a later fragment carries no ports
    assert extract.tcp_endpoints(101, bytes(frag)) is None
    assert extract.tcp_endpoints(1, eth + b"\x08\x00" + ip[:22]) is None  # cut before the ports
