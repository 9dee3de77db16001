"""TCP reassembly: retransmission, overlap, reordering, sequence wrap, gaps, bounded buffering."""

from __future__ import annotations

import random

from analyzer.tcp.reassembly import Gap, Reassembler


def stream(r: Reassembler, segments: list[tuple[int, bytes]]) -> tuple[bytes, list[Gap]]:
    out = bytearray()
    gaps: list[Gap] = []
    for seq, data in segments:
        for piece in r.add(seq, data):
            if isinstance(piece, Gap):
                gaps.append(piece)
            else:
                out += piece
    for piece in r.finish():
        if isinstance(piece, Gap):
            gaps.append(piece)
        else:
            out += piece
    return bytes(out), gaps


DATA = bytes(range(256)) * 40


def segments(start: int, data: bytes, size: int = 100) -> list[tuple[int, bytes]]:
    return [((start + i) % (1 << 32), data[i : i + size]) for i in range(0, len(data), size)]


def test_in_order_with_isn() -> None:
    assert stream(Reassembler(isn=999), segments(1000, DATA)) == (DATA, [])


def test_retransmissions_and_overlaps_are_not_duplicated() -> None:
    segs = segments(1000, DATA)
    noisy = []
    for i, s in enumerate(segs):
        if i % 5 == 0 and i:
            seq, data = segs[i - 1]
            noisy.append((seq + 50, data[50:] + s[1][:30]))  # repacketised: overlaps both neighbours
        noisy.append(s)
        if i % 3 == 0:
            noisy.append(s)  # exact retransmission
    r = Reassembler(isn=999)
    assert stream(r, noisy) == (DATA, [])
    assert r.retransmissions > 0 and r.overlaps > 0


def test_out_of_order_is_reordered() -> None:
    segs = segments(1000, DATA)
    rng = random.Random(3)
    shuffled = segs[:1] + rng.sample(segs[1:], len(segs) - 1)
    assert stream(Reassembler(isn=999), shuffled) == (DATA, [])


def test_sequence_number_wrap() -> None:
    isn = (1 << 32) - 1500
    got, gaps = stream(Reassembler(isn=isn), segments(isn + 1, DATA))
    assert got == DATA and not gaps


def test_capture_starting_mid_stream_uses_first_segment() -> None:
    segs = segments(5000, DATA)
    assert stream(Reassembler(), segs[3:]) == (DATA[300:], [])


def test_gap_is_reported_and_stream_continues() -> None:
    segs = segments(1000, DATA)
    del segs[10]  # the capture lost 100 bytes
    got, gaps = stream(Reassembler(isn=999), segs)
    assert gaps == [Gap(1000, 100)]
    assert got == DATA[:1000] + DATA[1100:]


def test_snaplen_cut_segment_is_a_gap_of_known_size() -> None:
    r = Reassembler(isn=99)
    out = r.add(100, b"abcd", wire_len=10) + r.add(110, b"xyz")
    assert out == [b"abcd", Gap(4, 6), b"xyz"]


def test_buffer_is_bounded() -> None:
    r = Reassembler(isn=0, limit=1000)
    out = []
    for i in range(50):  # the segment at offset 0 never arrives
        out += r.add(1 + 100 + i * 100, b"x" * 100)
    assert any(isinstance(p, Gap) for p in out)
    assert r._pending_bytes <= 1000
