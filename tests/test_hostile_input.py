"""Damaged, truncated and hostile captures: a warning with the frame number, never a traceback or a hang.

Fuzz invariant: for any bytes after a valid capture header, ``analyze`` returns a result whose tables
keep their schema, and every failed row has a cause; it raises nothing but CaptureError.
"""

from __future__ import annotations

import pathlib
import random
import struct
import subprocess
import sys

import pytest
from conftest import ZEEK_TRACES

import analyzer
from analyzer import schema

SOURCE = ZEEK_TRACES / "tls" / "tls13draft16-ff52.a01.pcap"


INCIDENT = pathlib.Path(__file__).resolve().parent.parent / "samples" / "incident-mixed.pcapng"


def damaged(data: bytes, rng: random.Random, start: int, most: int) -> bytearray:
    """A copy of ``data`` with 1 to ``most`` random bytes overwritten at or after offset ``start``
    (the file header before it stays valid)."""
    out = bytearray(data)
    for _ in range(rng.randint(1, most)):
        out[rng.randrange(start, len(out))] = rng.randrange(256)
    return out


def check(result: analyzer.AnalysisResult) -> None:
    assert list(result.handshakes.columns) == [c.name for c in schema.HANDSHAKES]
    failed = result.handshakes[result.handshakes.outcome == "failed"]
    assert failed.failure_cause.notna().all()
    bugs = [w for w in result.warnings if "internal error" in w or "could not build" in w or "diagnosis failed" in w]
    assert not bugs, bugs


def test_not_a_capture(tmp_path: pathlib.Path) -> None:
    for content, found in [
        (b"", "empty"),
        (b"GET / HTTP/1.1\r\n", "text"),
        (b"PK\x03\x04rest", "ZIP"),
        (b"\x00\x01\x02\x03\x04", "magic"),
    ]:
        p = tmp_path / "x.pcap"
        p.write_bytes(content)
        with pytest.raises(analyzer.CaptureError, match=found) as exc:
            analyzer.analyze(p)
        assert str(p) in str(exc.value)
        assert isinstance(exc.value, ValueError)


def test_cli_not_a_capture_is_one_line_exit_2(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_text("hello\n")
    run = subprocess.run([sys.executable, "-m", "analyzer.cli", "analyze", str(p)], capture_output=True, text=True)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert "not a pcap or pcapng" in run.stderr


@pytest.mark.skipif(not SOURCE.exists(), reason="needs ../shared/conformance")
def test_truncated_everywhere(tmp_path: pathlib.Path) -> None:
    data = SOURCE.read_bytes()
    full = analyzer.analyze(SOURCE).handshakes
    p = tmp_path / "t.pcap"
    for cut in range(24, len(data), max(1, len(data) // 60)):
        p.write_bytes(data[:cut])
        r = analyzer.analyze(p)
        check(r)
        assert len(r.handshakes) <= len(full)
    p.write_bytes(data[: len(data) - 7])
    r = analyzer.analyze(p)
    assert any("truncated" in w and "frame" in w for w in r.warnings), r.warnings
    assert len(r.handshakes) == len(full)  # every connection that could be read is still reported


@pytest.mark.skipif(not SOURCE.exists(), reason="needs ../shared/conformance")
def test_random_corruption() -> None:
    data = bytearray(SOURCE.read_bytes())
    rng = random.Random(1234)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = pathlib.Path(d) / "c.pcap"
        for _ in range(150):
            p.write_bytes(bytes(damaged(data, rng, 24, 40)))
            check(analyzer.analyze(p))


@pytest.mark.skipif(not SOURCE.exists(), reason="needs ../shared/conformance")
def test_damaged_record_header_resyncs(tmp_path: pathlib.Path) -> None:
    data = bytearray(SOURCE.read_bytes())
    # destroy the length field of the 5th record header
    off = 24
    for _ in range(4):
        off += 16 + int.from_bytes(data[off + 8 : off + 12], "little")
    data[off + 8 : off + 12] = b"\xff\xff\xff\x7f"
    p = tmp_path / "d.pcap"
    p.write_bytes(bytes(data))
    r = analyzer.analyze(p)
    check(r)
    assert any("frame 5" in w for w in r.warnings), r.warnings
    assert len(r.handshakes) >= 1


def test_garbage_payloads_on_tls_port(tmp_path: pathlib.Path) -> None:
    """Hand-built packets (malformed-input test): TLS-looking junk must not break the observer."""
    from forge import pcap

    rng = random.Random(7)
    frames = []
    for i in range(300):
        payload = bytes([22, 3, 1]) + rng.randbytes(rng.randint(0, 600))
        ip_len = 20 + 20 + len(payload)
        ip = bytes([0x45, 0, ip_len >> 8, ip_len & 0xFF, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
        tcp = (
            (40000 + i % 5).to_bytes(2, "big")
            + (443).to_bytes(2, "big")
            + rng.randbytes(8)
            + bytes([0x50, 0x18, 1, 0, 0, 0, 0, 0])
        )
        frames.append((1_700_000_000_000_000_000 + i * 1000, b"\x00" * 12 + b"\x08\x00" + ip + tcp + payload))
    p = tmp_path / "g.pcap"
    p.write_bytes(pcap(frames))
    r = analyzer.analyze(p)
    check(r)


def test_damaged_captures_split_between_workers_equal_one_process(tmp_path: pathlib.Path) -> None:
    """--jobs on one damaged capture (random bytes overwritten, then cut mid-record): the workers'
    shards give the tables and the warnings (frame numbers included) of one process."""
    import pandas as pd

    data = INCIDENT.read_bytes()
    rng = random.Random(77)
    p = tmp_path / "damaged.pcapng"
    for round_ in range(6):
        mutated = damaged(data, rng, 64, 60)
        p.write_bytes(bytes(mutated[: len(mutated) - rng.randrange(1, 3000)]))
        one, two = analyzer.analyze(p), analyzer.analyze(p, jobs=2)
        check(two)
        for name in ("handshakes", "alerts", "events", "certificates", "chains"):
            pd.testing.assert_frame_equal(getattr(one, name), getattr(two, name), obj=f"{name}, round {round_}")
        assert one.warnings == two.warnings and one.packets == two.packets


def _first_epb(data: bytes) -> int:
    """Offset of the first Enhanced Packet Block of a little-endian pcapng."""
    off = 0
    while off + 8 <= len(data):
        btype, blen = struct.unpack_from("<II", data, off)
        if btype == 6:
            return off
        off += blen
    raise AssertionError("no EPB")


def test_pcapng_timestamp_past_int64_is_a_warning_not_a_traceback(tmp_path: pathlib.Path) -> None:
    data = bytearray(INCIDENT.read_bytes())
    full = analyzer.analyze(INCIDENT)
    at = _first_epb(bytes(data))
    struct.pack_into("<I", data, at + 12, 0xFFFFFFFF)  # timestamp high word: ~585,000 years of microseconds
    p = tmp_path / "future.pcapng"
    p.write_bytes(bytes(data))
    r = analyzer.analyze(p)
    check(r)
    assert any("frame 1: timestamp out of range" in w for w in r.warnings), r.warnings
    assert len(r.handshakes) == len(full.handshakes)


def test_random_corruption_of_a_pcapng(tmp_path: pathlib.Path) -> None:
    data = INCIDENT.read_bytes()
    rng = random.Random(4321)
    p = tmp_path / "c.pcapng"
    for _ in range(60):
        p.write_bytes(bytes(damaged(data, rng, 32, 60)))
        check(analyzer.analyze(p))


def test_cleartext_following_that_stops_while_replaying_the_server_banner() -> None:
    """The server speaks first with bytes no protocol matches, in two segments, then the client speaks
    cleartext: following the conversation begins by replaying the banner, gives up on the first
    segment, and the second (and the client's) must not reach the stopped follower (this raised an
    internal error, found by fuzzing the samples)."""
    from analyzer.tcp.flow import ACK, SKIP, SYN, Flow

    key = (4, 0, 0, 0, 0x7F000001, 25, 0, 0, 0, 0x7F000002, 40000)  # A: server :25, B: client
    flow = Flow(key, 1, 1)
    flow.control(1, SYN, 1000, 1, 1)
    flow.control(0, SYN | ACK, 5000, 2, 2)
    flow.control(1, ACK, 1001, 3, 3)
    banner = bytes(range(256)) * 3  # 768 bytes: the follower gives up past 512 unclassified bytes
    flow.payload(0, 5001, banner, len(banner), 4, 4)
    flow.payload(0, 5001 + len(banner), b"more\r\n", 6, 5, 5)
    flow.payload(1, 1001, b"HELLO there\r\n", 13, 6, 6)
    assert flow.mode == SKIP and flow.watcher is None


def test_values_shared_between_connections_have_a_memory_budget() -> None:
    """Hellos with ever-new large cipher lists or extensions (hostile, or just many stacks) stop being
    kept for sharing once the budget is spent, instead of growing memory without bound."""
    from analyzer.tls import messages as m

    m.clear_shared()
    try:
        for i in range(3000):
            m.shared(tuple(range(i, i + 1000)))  # ~36 KB each: 100 MB if all were kept
            m.shared(m.Extension(13, i.to_bytes(4, "big") * 8000))  # 32 KB of extension data each
        assert m._shared_bytes[0] <= m.SHARED_BYTES_MAX
        assert len(m._SHARED) < 3000
    finally:
        m.clear_shared()
