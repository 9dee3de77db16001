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
