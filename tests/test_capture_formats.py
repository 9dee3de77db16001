"""Every file format and link type the reader supports gives the same rows as the original capture."""

from __future__ import annotations

import gzip
import pathlib
import shutil

import pandas as pd
import pytest
from conftest import ZEEK_TRACES
from forge import pcap, pcapng, read_pcap, relink

import analyzer

SOURCE = ZEEK_TRACES / "tls" / "google-cert-repeat.pcap"  # 8 real TLS 1.2 connections, Ethernet
KEY = [
    "client_ip",
    "client_port",
    "server_ip",
    "server_port",
    "sni",
    "version",
    "cipher",
    "outcome",
    "cert_sha256",
    "ja3",
    "ja4",
]

pytestmark = pytest.mark.skipif(not SOURCE.exists(), reason="needs ../shared/conformance")


def rows(path: pathlib.Path) -> pd.DataFrame:
    r = analyzer.analyze(path)
    assert not r.warnings, r.warnings
    return r.handshakes[KEY].sort_values("client_port").reset_index(drop=True)


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    ref = rows(SOURCE)
    assert len(ref) == 8 and (ref.outcome == "established").all()
    return ref


@pytest.mark.parametrize(
    ("name", "linktype", "kind"),
    [
        ("vlan", 1, "vlan"),
        ("qinq", 1, "qinq"),
        ("sll", 113, "sll"),
        ("sll2", 276, "sll2"),
        ("raw", 101, "raw"),
        ("null", 0, "null"),
    ],
)
def test_link_types(tmp_path: pathlib.Path, reference: pd.DataFrame, name: str, linktype: int, kind: str) -> None:
    p = tmp_path / f"{name}.pcap"
    p.write_bytes(pcap(list(relink(read_pcap(str(SOURCE)), kind)), linktype=linktype))
    pd.testing.assert_frame_equal(rows(p), reference)


@pytest.mark.parametrize(("endian", "nano"), [("<", True), (">", False), (">", True)])
def test_pcap_variants(tmp_path: pathlib.Path, reference: pd.DataFrame, endian: str, nano: bool) -> None:
    p = tmp_path / "v.pcap"
    p.write_bytes(pcap(read_pcap(str(SOURCE)), endian=endian, nano=nano))
    pd.testing.assert_frame_equal(rows(p), reference)
    ts = analyzer.analyze(p).handshakes["ts"].min()
    assert ts == analyzer.analyze(SOURCE).handshakes["ts"].min()


def test_pcapng_two_interfaces_mixed_link_types_and_resolutions(
    tmp_path: pathlib.Path, reference: pd.DataFrame
) -> None:
    pk = read_pcap(str(SOURCE))
    ports = sorted(reference.client_port)
    # half the connections seen on an Ethernet interface (us), the other half on a cooked one (ns)
    first_half = {p for p in ports[:4]}

    def port(frame: bytes) -> int:
        ihl = (frame[14] & 0x0F) * 4
        s, d = int.from_bytes(frame[14 + ihl : 16 + ihl], "big"), int.from_bytes(frame[16 + ihl : 18 + ihl], "big")
        return s if s != 443 else d

    eth = [p for p in pk if port(p[1]) in first_half]
    sll = list(relink([p for p in pk if port(p[1]) not in first_half], "sll2"))
    p = tmp_path / "two.pcapng"
    p.write_bytes(pcapng([(1, 6, eth), (276, 9, sll)], simple_first=True))
    got = rows(p)
    pd.testing.assert_frame_equal(got, reference)


def test_gzip(tmp_path: pathlib.Path, reference: pd.DataFrame) -> None:
    p = tmp_path / "c.pcap.gz"
    with open(SOURCE, "rb") as src, gzip.open(p, "wb") as dst:
        shutil.copyfileobj(src, dst)
    pd.testing.assert_frame_equal(rows(p), reference)


def test_gzip_of_several_members(tmp_path: pathlib.Path, reference: pd.DataFrame) -> None:
    """``cat a.gz b.gz`` (and zero padding after the last member) decompresses as one capture."""
    raw = SOURCE.read_bytes()
    p = tmp_path / "c.pcap.gz"
    p.write_bytes(gzip.compress(raw[:5000]) + gzip.compress(raw[5000:]) + bytes(16))
    pd.testing.assert_frame_equal(rows(p), reference)


def test_damaged_or_cut_gzip_keeps_what_decompressed(tmp_path: pathlib.Path, reference: pd.DataFrame) -> None:
    """A compressed capture cut short or damaged mid-stream: the connections before the damage are
    still reported, with a warning that says what happened; damage in the gzip header is a clear
    CaptureError, never a zlib traceback."""
    packed = gzip.compress(SOURCE.read_bytes(), compresslevel=9)
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes(packed[: len(packed) * 3 // 4])
    r = analyzer.analyze(cut)
    assert any("the gzip stream ends early; read as far as it decompressed" in w for w in r.warnings), r.warnings
    assert 0 < len(r.handshakes) < len(reference) + 1
    damaged = bytearray(packed)
    for pos in range(len(packed) * 2 // 3, len(packed) * 2 // 3 + 64):
        damaged[pos] ^= 0x5A
    bad = tmp_path / "bad.pcap.gz"
    bad.write_bytes(bytes(damaged))
    r = analyzer.analyze(bad)
    assert any("the gzip stream is damaged" in w for w in r.warnings), r.warnings
    assert len(r.handshakes) >= 1
    damaged[10:40] = bytes(30)  # the start of the deflate data
    bad.write_bytes(bytes(damaged))
    with pytest.raises(analyzer.CaptureError, match="gzip stream is damaged"):
        analyzer.analyze(bad)


@pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd program")
def test_cut_zstd_is_a_warning_or_a_clear_error(tmp_path: pathlib.Path) -> None:
    import subprocess

    packed = subprocess.run(["zstd", "-q", "-c", str(SOURCE)], capture_output=True, check=True).stdout
    cut = tmp_path / "cut.pcap.zst"
    for keep in (len(packed) // 3, len(packed) - 10):
        cut.write_bytes(packed[:keep])
        try:
            r = analyzer.analyze(cut)
        except analyzer.CaptureError as exc:
            assert "the zstd stream is damaged or ends early" in str(exc)
        else:
            assert any("the zstd stream is damaged or ends early" in w for w in r.warnings), r.warnings


def test_timestamps_going_backwards_are_tolerated(tmp_path: pathlib.Path, reference: pd.DataFrame) -> None:
    pk = read_pcap(str(SOURCE))
    jittered = [(ts - 2_000_000_000 if i % 7 == 3 else ts, frame) for i, (ts, frame) in enumerate(pk)]
    p = tmp_path / "back.pcap"
    p.write_bytes(pcap(jittered))
    pd.testing.assert_frame_equal(rows(p), reference)


def test_two_sensors_one_direction_each(tmp_path: pathlib.Path, reference: pd.DataFrame) -> None:
    """Each direction captured by a different sensor, merged into one pcapng: roles and rows are unchanged."""
    pk = read_pcap(str(SOURCE))

    def from_client(frame: bytes) -> bool:
        ihl = (frame[14] & 0x0F) * 4
        return int.from_bytes(frame[16 + ihl : 18 + ihl], "big") == 443

    up = [p for p in pk if from_client(p[1])]
    down = list(relink([p for p in pk if not from_client(p[1])], "sll"))
    p = tmp_path / "merged.pcapng"
    p.write_bytes(pcapng([(1, 6, up), (113, 9, down)]))
    pd.testing.assert_frame_equal(rows(p), reference)
