"""Tier 1: L2-L4 header skim of a FrameBlock into TCP packet columns (no per-packet objects): one C pass
(analyzer/capture/_walk.c) or numpy gathers, then numpy grouping by connection."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from analyzer.capture.reader import FrameBlock

# the optional compiled helper (setup.py, analyzer/capture/_walk.c): the header fields of a block's
# frames in one pass in C, identical to the numpy gathers below (tests/test_walk.py), ~3x faster
_tcp_headers: Callable[..., tuple[int, int, int, int, int, int]] | None
try:
    _tcp_headers = importlib.import_module("analyzer.capture._walk").tcp_headers
except (ImportError, AttributeError):  # no C compiler at install time (or TLS_ANALYZER_PURE): numpy
    _tcp_headers = None

LINKTYPE_NAMES = {
    0: "BSD loopback",
    1: "Ethernet",
    12: "raw IP",
    14: "raw IP",
    101: "raw IP",
    108: "OpenBSD loopback",
    113: "Linux cooked (SLL)",
    228: "raw IPv4",
    229: "raw IPv6",
    276: "Linux cooked (SLL2)",
}
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
# a block whose connections' runs average fewer packets than this (a SYN flood, a scan) reaches the
# per-packet loop as Python lists converted LIST_CHUNK packets at a time; other blocks a window per run
# (analyzer/engine.py; here, not there, so that the tests can move it: tests/test_packet_loop.py)
SHORT_RUNS = 8
LIST_CHUNK = 4096  # packets of such a block converted at a time (65,536 as lists would hold ~19 MB)
IPV6_EXT = {0, 43, 44, 51, 60, 135, 139, 140}


@dataclass(slots=True)
class SkimStats:
    """Counts of what the header pass met but does not analyse; turned into warnings at the end."""

    frames: int = 0
    tcp: int = 0
    non_ip: int = 0
    non_tcp: int = 0
    ip_fragments: int = 0
    truncated_headers: int = 0
    first_fragment_frame: int | None = None
    unknown_linktypes: dict[int, int] = field(default_factory=dict)

    @classmethod
    def merged(cls, parts: list[SkimStats]) -> SkimStats:
        """The counts of several packet passes (groups of files, in file order) as one."""
        out = cls()
        for p in parts:
            out.frames += p.frames
            out.tcp += p.tcp
            out.non_ip += p.non_ip
            out.non_tcp += p.non_tcp
            out.ip_fragments += p.ip_fragments
            out.truncated_headers += p.truncated_headers
            if out.first_fragment_frame is None:
                out.first_fragment_frame = p.first_fragment_frame
            for lt, n in p.unknown_linktypes.items():
                out.unknown_linktypes[lt] = out.unknown_linktypes.get(lt, 0) + n
        return out


@dataclass(frozen=True, slots=True)
class TcpColumns:
    """One entry per TCP segment of a block, ordered by flow then capture order.

    Flows are canonical: endpoint A is the lower (address, port). ``dir`` is 0 for A->B.
    ``starts`` gives the first index of each flow's run (plus a final sentinel).
    """

    frame: np.ndarray
    ts_ns: np.ndarray
    dir: np.ndarray  # uint8
    flags: np.ndarray  # uint8
    seq: np.ndarray  # int64 (uint32 values)
    ack: np.ndarray
    poff: np.ndarray  # int64 offset of the TCP payload in the block's data
    plen: np.ndarray  # int64 captured payload bytes
    wlen: np.ndarray  # int64 payload bytes on the wire (IP length says); > plen when snaplen cut it
    starts: np.ndarray
    keys: list[tuple[int, ...]]  # per flow: (family, A address..., A port, B address..., B port)

    def __len__(self) -> int:
        return len(self.frame)


def _g8(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """The byte at each position (positions past the end read the last byte; masks discard them)."""
    out: np.ndarray = data[np.minimum(pos, len(data) - 1)].astype(np.int64)
    return out


def _g16(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Big-endian 16-bit integers at each position, from two byte gathers (cheaper than one 2-D gather);
    positions too close to the end read clamped bytes, which the callers' masks discard."""
    if len(data) < 2:
        data = np.zeros(2, dtype=np.uint8)
    p = np.minimum(pos, len(data) - 2)
    out: np.ndarray = (data[p].astype(np.int64) << 8) | data[p + 1]
    return out


def _g32(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    if len(data) < 4:
        data = np.zeros(4, dtype=np.uint8)
    p = np.minimum(pos, len(data) - 4)
    out: np.ndarray = (
        (data[p].astype(np.int64) << 24) | (data[p + 1].astype(np.int64) << 16) | (data[p + 2].astype(np.int64) << 8)
    ) | data[p + 3]
    return out


def _link_types(blk: FrameBlock) -> list[int]:
    """The link types of a block's frames: one is the rule (np.unique would also import numpy.ma, 7 ms)."""
    lt = blk.linktype
    return sorted(set(lt.tolist())) if len(lt) and (lt != lt[0]).any() else lt[:1].tolist()


def _link_layer(blk: FrameBlock, stats: SkimStats) -> tuple[np.ndarray, np.ndarray]:
    """Offset of the network header and the IP family (4, 6, or 0) of every frame."""
    data, off = blk.data, blk.off
    n = len(off)
    l3 = np.zeros(n, dtype=np.int64)
    fam = np.zeros(n, dtype=np.int64)
    lts = _link_types(blk)
    for lt in lts:
        m = blk.linktype == lt if len(lts) > 1 else np.ones(n, dtype=bool)
        o = off[m]
        if lt == 1:  # Ethernet, with up to two VLAN tags
            et = _g16(data, o + 12)
            pos = o + 14
            for _ in range(2):
                tagged = np.isin(et, VLAN_TPIDS)
                et = np.where(tagged, _g16(data, pos + 2), et)
                pos = np.where(tagged, pos + 4, pos)
        elif lt == 113:
            et, pos = _g16(data, o + 14), o + 16
        elif lt == 276:
            et, pos = _g16(data, o), o + 20
        elif lt in (101, 12, 14, 228, 229):
            ver = _g8(data, o) >> 4
            et, pos = np.where(ver == 4, 0x0800, np.where(ver == 6, 0x86DD, 0)), o
        elif lt in (0, 108):
            le = _g8(data, o) | (_g8(data, o + 1) << 8) | (_g8(data, o + 2) << 16) | (_g8(data, o + 3) << 24)
            be = _g32(data, o)
            famv = np.where(le < 256, le, be) if lt == 0 else be
            et = np.where(famv == 2, 0x0800, np.where(np.isin(famv, (10, 24, 28, 30)), 0x86DD, 0))
            pos = o + 4
        else:
            stats.unknown_linktypes[lt] = stats.unknown_linktypes.get(lt, 0) + int(m.sum())
            continue
        l3[m] = pos
        fam[m] = np.where(et == 0x0800, 4, np.where(et == 0x86DD, 6, 0))
    return l3, fam


def _ipv6_ext_walk(data: np.ndarray, l3: int, end: int) -> tuple[int, int, bool]:
    """Skip IPv6 extension headers (slow path, rare): (transport offset, protocol, is_fragment)."""
    nh = int(data[l3 + 6])
    pos = l3 + 40
    frag = False
    for _ in range(8):
        if nh not in IPV6_EXT or pos + 8 > end:
            break
        if nh == 44:
            frag_field = (int(data[pos + 2]) << 8) | int(data[pos + 3])
            frag = frag or (frag_field & 0xFFF9) != 0
            nh, pos = int(data[pos]), pos + 8
        elif nh == 51:
            nh, pos = int(data[pos]), pos + (int(data[pos + 1]) + 2) * 4
        else:
            nh, pos = int(data[pos]), pos + (int(data[pos + 1]) + 1) * 8
    return pos, nh, frag


# odd 64-bit multipliers, one per word of a canonical 4-tuple (A's address, B's, the ports), for the
# shard hash: any fixed mix will do, as long as every process computes the same shard for every
# packet of a connection
SHARD_MIX = tuple(
    np.uint64(m)
    for m in (
        0x9E3779B97F4A7C15,
        0xC2B2AE3D27D4EB4F,
        0x165667B19E3779F9,
        0x27D4EB2F165667C5,
        0x94D049BB133111EB,
        0xBF58476D1CE4E5B9,
        0xD6E8FEB86659FD93,
        0xFF51AFD7ED558CCD,
        0xC4CEB9FE1A85EC53,
    )
)


def shard_of(a: list[np.ndarray], b: list[np.ndarray], k_ports: np.ndarray, n: int) -> np.ndarray:
    """Which of ``n`` shards each packet's connection belongs to, from its canonical 4-tuple (address
    words of A and B, ports as (A << 16) | B): a --jobs worker keeps one shard (Engine.shard)."""
    words = [*a, *b, k_ports]
    h = np.zeros(len(k_ports), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for w, m in zip(words, SHARD_MIX, strict=True):
            h = (h ^ w.astype(np.uint64)) * m
    h ^= h >> np.uint64(31)
    return (h % np.uint64(n)).astype(np.int64)


# per TCP segment of a block, in frame order: frame index, family, A's address words, B's, A's port,
# B's, swapped (the sender is B), flags, seq, ack, payload offset, captured and wire payload lengths
Fields = tuple[
    np.ndarray,
    np.ndarray,
    list[np.ndarray],
    list[np.ndarray],
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
]


def _fields_numpy(blk: FrameBlock, stats: SkimStats) -> Fields:
    """The header fields of a block's TCP segments by numpy gathers (a pass per field); counts what is not TCP."""
    data = blk.data
    end = blk.off + blk.caplen
    l3, fam = _link_layer(blk, stats)
    stats.non_ip += int(np.count_nonzero(fam == 0))

    # --- IPv4
    v4 = fam == 4
    b0 = _g8(data, l3)
    ihl = (b0 & 0x0F) * 4
    v4 &= ((b0 >> 4) == 4) & (ihl >= 20) & (l3 + ihl <= end)
    total = _g16(data, l3 + 2)
    fragf = _g16(data, l3 + 6)
    proto = np.where(v4, _g8(data, l3 + 9), -1)
    is_frag4 = v4 & ((fragf & 0x3FFF) != 0)
    tcp_off = np.where(v4, l3 + ihl, 0)
    ip_end = np.where(v4, np.where(total > 0, l3 + total, end), end)

    # --- IPv6
    v6 = (fam == 6) & ((b0 >> 4) == 6) & (l3 + 40 <= end)
    nh6 = _g8(data, l3 + 6)
    plen6 = _g16(data, l3 + 4)
    proto = np.where(v6, nh6, proto)
    tcp_off = np.where(v6, l3 + 40, tcp_off)
    ip_end = np.where(v6, np.where(plen6 > 0, l3 + 40 + plen6, end), ip_end)
    is_frag = is_frag4.copy()
    ext_idx = np.flatnonzero(v6 & np.isin(nh6, list(IPV6_EXT)))
    for i in ext_idx.tolist():
        pos, nh, frag = _ipv6_ext_walk(data, int(l3[i]), int(end[i]))
        tcp_off[i], proto[i], is_frag[i] = pos, nh, frag

    ip = v4 | v6
    nfrag = int(np.count_nonzero(is_frag & ip))
    if nfrag:
        stats.ip_fragments += nfrag
        if stats.first_fragment_frame is None:
            stats.first_fragment_frame = int(blk.frame[np.flatnonzero(is_frag & ip)[0]])
    tcp = ip & (proto == 6) & ~is_frag
    stats.non_tcp += int(np.count_nonzero(ip & (proto != 6) & ~is_frag))
    short = tcp & (tcp_off + 20 > end)
    stats.truncated_headers += int(np.count_nonzero(short))
    tcp &= ~short
    idx = np.flatnonzero(tcp)
    stats.tcp += len(idx)

    t = tcp_off[idx]
    l3i, fami = l3[idx], fam[idx]
    sport, dport = _g16(data, t), _g16(data, t + 2)
    seq, ack = _g32(data, t + 4), _g32(data, t + 8)
    doff = (_g8(data, t + 12) >> 4) * 4
    flags = _g8(data, t + 13)
    pstart = t + np.maximum(doff, 20)
    cap_end = end[idx]
    wire_end = ip_end[idx]
    plen = np.maximum(0, np.minimum(cap_end, wire_end) - pstart)
    wlen = np.maximum(0, wire_end - pstart)

    # addresses as 4 x 32-bit words (IPv4 in the last word), then canonical A/B ordering
    is6 = fami == 6
    src = [np.zeros(len(idx), dtype=np.int64) for _ in range(3)] + [_g32(data, l3i + 12)]
    dst = [np.zeros(len(idx), dtype=np.int64) for _ in range(3)] + [_g32(data, l3i + 16)]
    six = np.flatnonzero(is6)
    if len(six):  # IPv6 addresses as four 32-bit words, only for the IPv6 packets
        l6 = l3i[six]
        for k in range(4):
            src[k][six] = _g32(data, l6 + 8 + 4 * k)
            dst[k][six] = _g32(data, l6 + 24 + 4 * k)
    gt = np.zeros(len(idx), dtype=bool)
    eq = np.ones(len(idx), dtype=bool)
    for x, y in (*zip(src, dst, strict=True), (sport, dport)):
        gt |= eq & (x > y)
        eq &= x == y
    swap = gt
    a = [np.where(swap, y, x) for x, y in zip(src, dst, strict=True)]
    b = [np.where(swap, x, y) for x, y in zip(src, dst, strict=True)]
    pa, pb = np.where(swap, dport, sport), np.where(swap, sport, dport)

    return idx, fami, a, b, pa, pb, swap, flags, seq, ack, pstart, plen, wlen


# the compiled pass writes into one buffer per thread, reused from block to block: a fresh 10 MB
# allocation per block of 65,536 frames left glibc's heap 17 MiB larger at the peak of a
# 1,000,000-flow run
N_FIELDS = 19  # rows of the buffer, in the order of the C enum (C_IDX ... C_WLEN): as Fields, A and B 4 rows each
_scratch = threading.local()


def release_buffer() -> None:
    """Hand this thread's header-pass buffer back (an analysis ends; a notebook's kernel lives on)."""
    _scratch.__dict__.pop("cols", None)


def _fields_c(blk: FrameBlock, stats: SkimStats) -> Fields:
    """_fields_numpy in one pass of the compiled helper (same values, same counts)."""
    assert _tcp_headers is not None
    for lt in _link_types(blk):
        if lt not in LINKTYPE_NAMES:
            stats.unknown_linktypes[lt] = stats.unknown_linktypes.get(lt, 0) + int(np.count_nonzero(blk.linktype == lt))
    n = len(blk)
    scratch = getattr(_scratch, "cols", None)
    if scratch is None or len(scratch) < N_FIELDS * n:
        scratch = _scratch.cols = np.empty(N_FIELDS * max(n, 4096), dtype=np.int64)
    m, non_ip, non_tcp, frags, first_frag, truncated = _tcp_headers(
        blk.data,
        np.ascontiguousarray(blk.off, dtype=np.int64),
        np.ascontiguousarray(blk.caplen, dtype=np.int64),
        np.ascontiguousarray(blk.linktype, dtype=np.int32),
        scratch,
    )
    cols = scratch[: N_FIELDS * n].reshape(N_FIELDS, n)[:, :m]  # views: skim() copies what it keeps
    stats.non_ip += non_ip
    stats.non_tcp += non_tcp
    stats.truncated_headers += truncated
    stats.tcp += m
    if frags:
        stats.ip_fragments += frags
        if stats.first_fragment_frame is None:
            stats.first_fragment_frame = int(blk.frame[first_frag])
    a, b = list(cols[2:6]), list(cols[6:10])
    return cols[0], cols[1], a, b, cols[10], cols[11], cols[12].astype(bool), *cols[13:N_FIELDS]


def skim(blk: FrameBlock, stats: SkimStats, shard: tuple[int, int] | None = None) -> TcpColumns:
    """The TCP segments of a block, grouped by connection (canonical 4-tuple) in capture order; with
    ``shard`` (k, n) only those of the connections in shard k of n (the counts still cover them all)."""
    stats.frames += len(blk)
    fields = _fields_c if _tcp_headers is not None else _fields_numpy
    idx, fami, a, b, pa, pb, swap, flags, seq, ack, pstart, plen, wlen = fields(blk, stats)
    is6 = fami == 6
    k_ports = (pa << 16) | pb
    if shard is not None:
        keep = np.flatnonzero(shard_of(a, b, k_ports, shard[1]) == shard[0])
        a, b = [x[keep] for x in a], [x[keep] for x in b]
        pa, pb, k_ports, fami, swap = pa[keep], pb[keep], k_ports[keep], fami[keep], swap[keep]
        is6, idx, flags, seq, ack = is6[keep], idx[keep], flags[keep], seq[keep], ack[keep]
        pstart, plen, wlen = pstart[keep], plen[keep], wlen[keep]
    if is6.any():
        sort_keys = [k_ports, (b[2] << 32) | b[3], (b[0] << 32) | b[1], (a[2] << 32) | a[3], (a[0] << 32) | a[1], fami]
    else:
        sort_keys = [k_ports, (a[3] << 32) | b[3]]
    order = np.lexsort(sort_keys)
    sk = [k[order] for k in sort_keys]
    change = np.zeros(len(order), dtype=bool)
    if len(order):
        change[0] = True
        for k in sk:
            change[1:] |= k[1:] != k[:-1]
    starts = np.flatnonzero(change)
    firsts = order[starts]
    keys = list(
        zip(
            fami[firsts].tolist(),
            a[0][firsts].tolist(),
            a[1][firsts].tolist(),
            a[2][firsts].tolist(),
            a[3][firsts].tolist(),
            pa[firsts].tolist(),
            b[0][firsts].tolist(),
            b[1][firsts].tolist(),
            b[2][firsts].tolist(),
            b[3][firsts].tolist(),
            pb[firsts].tolist(),
            strict=True,
        )
    )
    return TcpColumns(
        frame=blk.frame[idx][order],
        ts_ns=blk.ts_ns[idx][order],
        dir=swap[order].astype(np.uint8),
        flags=flags[order].astype(np.uint8),
        seq=seq[order],
        ack=ack[order],
        poff=pstart[order],
        plen=plen[order],
        wlen=wlen[order],
        starts=np.append(starts, len(order)).astype(np.int64),
        keys=keys,
    )
