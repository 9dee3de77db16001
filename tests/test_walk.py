"""The compiled helpers (the pcap walk, the header pass) and their Python/numpy fallbacks give identical
results (both paths are supported)."""

from __future__ import annotations

import mmap

import numpy as np
import pytest
from conftest import SAMPLES, ZEEK_TRACES

from analyzer import packets
from analyzer.capture import reader

CAPTURES = [p for p in [*ZEEK_TRACES.glob("tls/*.pcap"), *SAMPLES.glob("*.pcap")] if p.stat().st_size > 24]


@pytest.mark.skipif(reader.walk_records is reader.walk_records_py, reason="compiled helper not built")
@pytest.mark.parametrize("path", CAPTURES[:40], ids=lambda p: p.name)
def test_c_and_python_walks_agree(path) -> None:
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        big = buf[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d")
        if buf[:4] not in reader.PCAP_MAGICS:
            pytest.skip("not a pcap")
        for count in (1, 7, 1 << 16):
            off = 24
            while True:
                a = reader.walk_records_py(buf, off, count, big, 65535)
                b = reader.walk_records_c(buf, off, count, big, 65535)
                for x, y in zip(a[:4], b[:4], strict=True):
                    assert np.array_equal(x, y)
                assert a[4] == b[4]
                if not len(a[0]):
                    break
                off = a[4]
            del a, b


def test_walk_stops_before_damage(tmp_path) -> None:
    data = bytearray(b"\xd4\xc3\xb2\xa1" + bytes(20))
    for i in range(3):
        data += (i).to_bytes(4, "little") + bytes(4) + (4).to_bytes(4, "little") * 2 + b"abcd"
    data += bytes(8) + (10**9).to_bytes(4, "little") + bytes(4)  # impossible length
    p = tmp_path / "d.pcap"
    p.write_bytes(bytes(data))
    with open(p, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        walks = [reader.walk_records_py(buf, 24, 100, False, 65535)]
        if reader.walk_records is reader.walk_records_c:
            walks.append(reader.walk_records_c(buf, 24, 100, False, 65535))
        for offs, sec, _frac, incl, nxt in walks:
            assert offs.tolist() == [24, 44, 64] and sec.tolist() == [0, 1, 2] and incl.tolist() == [4, 4, 4]
            assert nxt == 84
            del offs, sec, incl


# --- the compiled header pass (tcp_headers) against the numpy gathers of analyzer/packets.py

HEADER_CAPTURES = sorted(p for p in [*ZEEK_TRACES.rglob("*.pcap*"), *SAMPLES.glob("*.pcap*")] if p.stat().st_size > 24)
needs_c_headers = pytest.mark.skipif(packets._tcp_headers is None, reason="compiled helper not built")


def _both(blk: reader.FrameBlock) -> None:
    """Both header passes over one block: the same fields and the same counts."""
    stats_np, stats_c = packets.SkimStats(), packets.SkimStats()
    got_np = packets._fields_numpy(blk, stats_np)
    got_c = packets._fields_c(blk, stats_c)
    for x, y in zip(got_np, got_c, strict=True):
        xs, ys = (x, y) if isinstance(x, list) else ([x], [y])
        for u, v in zip(xs, ys, strict=True):
            assert np.array_equal(np.asarray(u, dtype=np.int64), np.asarray(v, dtype=np.int64))
    assert stats_np == stats_c


@needs_c_headers
@pytest.mark.parametrize("path", HEADER_CAPTURES, ids=lambda p: p.name)
def test_c_and_numpy_header_passes_agree(path) -> None:
    """Every sample and Zeek trace (pcap and pcapng; Ethernet, VLAN, SLL, raw IP, loopback; IPv4 and
    IPv6): per block, the same TCP segments with the same fields, and the same counts of the rest."""
    blocks = list(reader.CaptureReader(path).blocks(block_size=97))
    assert blocks
    for blk in blocks:
        _both(blk)


def _forge_ip(rng: np.random.Generator, data: np.ndarray, off: int, caplen: int) -> None:
    """Overwrite an Ethernet frame's network header with edge cases: IPv4 with odd versions, header
    lengths, fragment fields, protocols and total lengths; IPv6 with chains of extension headers
    (hop-by-hop, routing, fragment, AH, destination) of random lengths and fragment fields."""
    l3 = off + 14
    if caplen < 14 + 60:
        return
    put = lambda at, *vals: data.__setitem__(slice(at, at + len(vals)), vals)  # noqa: E731
    if rng.random() < 0.5:
        put(off + 12, 0x08, 0x00)
        put(l3, int(rng.choice([0x45, 0x44, 0x46, 0x4F, 0x40, 0x55, 0x65])))
        total = int(rng.choice([0, 1, 20, 40, caplen - 14, caplen + 100, 65535]))
        put(l3 + 2, total >> 8 & 0xFF, total & 0xFF)
        put(l3 + 6, *[int(x) for x in rng.choice([(0, 0), (0x40, 0), (0x20, 0), (0, 1), (0x1F, 0xFF), (0x80, 0)])])
        put(l3 + 9, int(rng.choice([6, 6, 17, 1, 0])))
    else:
        put(off + 12, 0x86, 0xDD)
        put(l3, 0x60 if rng.random() < 0.9 else 0x40)
        plen = int(rng.choice([0, 20, caplen - 54, caplen, 65535]))
        put(l3 + 4, plen >> 8 & 0xFF, plen & 0xFF)
        chain = [int(x) for x in rng.choice([0, 43, 44, 51, 60, 6, 17], size=rng.integers(0, 9))] + [6]
        if rng.random() < 0.2:  # longer than the 8 headers either pass follows
            chain = [int(x) for x in rng.choice([0, 60], size=rng.integers(7, 11))] + [6]
        put(l3 + 6, chain[0])
        pos = l3 + 40
        for nh in chain[1:]:
            if pos + 8 > off + caplen:
                break
            put(pos, nh, 0 if len(chain) > 7 else int(rng.integers(0, 3)))
            if rng.random() < 0.5:  # a fragment header's offset/M field, as if this one were 44
                put(pos + 2, *[int(x) for x in rng.choice([(0, 0), (0, 1), (0, 8), (0xFF, 0xF8), (0, 6)])])
            pos += 8 * (1 + int(data[pos + 1]))
    if rng.random() < 0.3:  # TCP data offset
        put(l3 + 20 + 12, int(rng.integers(0, 256)))


@needs_c_headers
def test_c_and_numpy_header_passes_agree_on_damaged_frames() -> None:
    """Frames with damaged headers and cut lengths (what a hostile capture holds): both passes read the
    same bytes, clamped to the buffer, and keep or drop the same frames. Hand-made damage on real
    frames: random header bytes, captured lengths cut short (the last frame's to the buffer's end),
    every link type, IPv6 extension-header chains and fragments."""
    rng = np.random.default_rng(7)
    sources = [p for p in HEADER_CAPTURES if p.suffix == ".pcap"][:25]
    linktypes = np.array([0, 1, 12, 101, 108, 113, 228, 229, 276, 147], dtype=np.int32)
    checked = 0
    for path in sources:
        for blk in list(reader.CaptureReader(path).blocks(block_size=64))[:3]:
            for _ in range(8):
                data = blk.data.copy()
                n = len(blk)
                off = blk.off.copy()
                caplen = blk.caplen.copy()
                for i in rng.choice(n, size=max(1, n // 3)):  # damage up to 96 header bytes
                    span = int(min(96, caplen[i]))
                    if span:
                        pos = off[i] + rng.integers(0, span, size=rng.integers(1, 6))
                        data[pos] = rng.integers(0, 256, size=len(pos))
                for i in rng.choice(n, size=max(1, n // 2)):  # forged IP headers where Ethernet frames have them
                    _forge_ip(rng, data, int(off[i]), int(caplen[i]))
                cut = rng.random(n) < 0.2
                caplen[cut] = rng.integers(0, 60, size=int(cut.sum()))
                if rng.random() < 0.3:  # the last frame runs to the end of the buffer
                    data = data[: int(off[-1] + caplen[-1])].copy()
                lt = blk.linktype if rng.random() < 0.5 else rng.choice(linktypes, size=n).astype(np.int32)
                _both(reader.FrameBlock(data, blk.frame, blk.ts_ns, off, caplen, lt))
                checked += 1
    assert checked > 100


@needs_c_headers
def test_header_pass_buffer_is_released_when_an_analysis_ends() -> None:
    """The compiled pass's buffer (~10 MB for a full block) is not left behind in a notebook's kernel."""
    import analyzer

    result = analyzer.analyze(SAMPLES / "incident-mixed.pcapng")
    assert len(result.handshakes) == 57
    assert getattr(packets._scratch, "cols", None) is None


@needs_c_headers
def test_c_header_pass_refuses_frames_outside_the_buffer() -> None:
    """The reader never hands over such a frame; were a bug to, the C pass must refuse, not read past memory."""
    data = np.zeros(100, dtype=np.uint8)
    lt = np.ones(1, dtype=np.int32)
    cols = np.empty(packets.N_FIELDS * 4096, dtype=np.int64)
    for off, caplen in ((90, 20), (-1, 10), (0, -5), (2**62, 2**62)):
        with pytest.raises(ValueError, match="outside the buffer"):
            packets._tcp_headers(data, np.array([off], np.int64), np.array([caplen], np.int64), lt, cols)
    assert packets._tcp_headers(data, np.array([40], np.int64), np.array([60], np.int64), lt, cols)[0] == 0
