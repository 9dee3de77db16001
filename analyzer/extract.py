"""Evidence extraction: the packets of chosen connections, read with scapy's raw readers, as a pcap or a PacketList."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from scapy.plist import PacketList

    from analyzer.result import AnalysisResult

PathLike = str | os.PathLike[str]
SLACK_NS = 1_000  # duration_ms is a float: allow a microsecond of rounding at the end of the span
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
IPV6_EXT = {0, 43, 60}  # hop-by-hop, routing, destination options: (len + 1) * 8 bytes
AF_INET6_BSD = (10, 24, 28, 30)  # Linux, NetBSD/OpenBSD, FreeBSD, macOS values of AF_INET6 in loopback headers


@dataclass(frozen=True, slots=True)
class ConnectionSpan:
    """What identifies a connection's packets: its two endpoints and [start, end] in ns."""

    conn_id: str
    client: tuple[str, int]
    server: tuple[str, int]
    start_ns: int
    end_ns: int

    def matches(self, src: tuple[str, int], dst: tuple[str, int], ts_ns: int) -> bool:
        if not self.start_ns <= ts_ns <= self.end_ns:
            return False
        return (src == self.client and dst == self.server) or (src == self.server and dst == self.client)


@dataclass(slots=True)
class Frame:
    """One captured frame of a chosen connection, as read (bytes untouched)."""

    conn_id: str
    linktype: int
    ts_ns: int
    data: bytes
    wirelen: int
    file: str


@dataclass(slots=True)
class ExtractSummary:
    """What write_pcap wrote."""

    path: str
    packets: int
    connections: list[str]
    linktypes: list[int]
    format: str  # 'pcap' or 'pcapng'
    missing: list[str] = field(default_factory=list)  # chosen connections without a packet found

    def __str__(self) -> str:
        text = f"wrote {self.packets} packet(s) of {len(self.connections)} connection(s) to {self.path} ({self.format})"
        if self.missing:
            text += f"; no packets found for {', '.join(self.missing)}"
        return text


def spans(result: AnalysisResult, conn_ids: Iterable[str]) -> list[ConnectionSpan]:
    """The 4-tuple and time span [ts, ts + duration_ms] of each chosen connection (KeyError for an unknown id)."""
    hs = result.handshakes.set_index("conn_id", drop=False)
    out = []
    for cid in dict.fromkeys(conn_ids):
        if cid not in hs.index:
            raise KeyError(f"no connection {cid!r} in this result")
        row: Any = hs.loc[cid]
        start = int(pd.Timestamp(row["ts"]).value)
        duration: float = 0.0 if pd.isna(row["duration_ms"]) else float(row["duration_ms"])
        end = start + round(duration * 1e6) + SLACK_NS
        out.append(
            ConnectionSpan(
                cid,
                (str(row["client_ip"]), int(row["client_port"])),
                (str(row["server_ip"]), int(row["server_port"])),
                start,
                end,
            )
        )
    return out


def conn_ids_for(result: AnalysisResult, conn_ids: Sequence[str] = (), cause: str | None = None) -> list[str]:
    """The chosen ids: those given, plus every failed connection with ``cause`` (in capture order)."""
    chosen = list(conn_ids)
    if cause is not None:
        hs = result.handshakes
        chosen += list(hs.loc[hs["failure_cause"] == cause, "conn_id"])
    return list(dict.fromkeys(chosen))


def _l3_offset(linktype: int, data: bytes) -> int | None:
    """Where the IP header starts for the link types the analyzer reads; None when the frame carries no IP."""
    if linktype == 1:  # Ethernet, 802.1Q / QinQ
        off, etype = 12, None
        while off + 2 <= len(data):
            etype = struct.unpack_from("!H", data, off)[0]
            if etype in VLAN_TPIDS:
                off += 4
                continue
            break
        return off + 2 if etype in (0x0800, 0x86DD) else None
    if linktype == 113:  # Linux cooked v1
        return 16 if len(data) >= 16 and struct.unpack_from("!H", data, 14)[0] in (0x0800, 0x86DD) else None
    if linktype == 276:  # Linux cooked v2
        return 20 if len(data) >= 20 and struct.unpack_from("!H", data, 0)[0] in (0x0800, 0x86DD) else None
    if linktype in (0, 108):  # BSD loopback (host order), OpenBSD loopback (network order)
        if len(data) < 4:
            return None
        fam = {struct.unpack_from("<I", data)[0], struct.unpack_from(">I", data)[0]}
        return 4 if fam & {2, *AF_INET6_BSD} else None
    if linktype in (12, 14, 101, 228, 229):  # raw IP
        return 0
    return None


def tcp_endpoints(linktype: int, data: bytes) -> tuple[tuple[str, int], tuple[str, int]] | None:
    """((src ip, port), (dst ip, port)) of a TCP frame, addresses as inet_ntop text; None for anything else
    (non-TCP, non-first IP fragments, frames cut before the ports)."""
    off = _l3_offset(linktype, data)
    if off is None or off >= len(data):
        return None
    version = data[off] >> 4
    if version == 4:
        if len(data) < off + 20:
            return None
        ihl = (data[off] & 0x0F) * 4
        proto = data[off + 9]
        frag_offset = struct.unpack_from("!H", data, off + 6)[0] & 0x1FFF
        if proto != 6 or frag_offset:
            return None
        src = socket.inet_ntop(socket.AF_INET, data[off + 12 : off + 16])
        dst = socket.inet_ntop(socket.AF_INET, data[off + 16 : off + 20])
        l4 = off + ihl
    elif version == 6:
        if len(data) < off + 40:
            return None
        nxt = data[off + 6]
        src = socket.inet_ntop(socket.AF_INET6, data[off + 8 : off + 24])
        dst = socket.inet_ntop(socket.AF_INET6, data[off + 24 : off + 40])
        l4 = off + 40
        while nxt != 6:
            if len(data) < l4 + 8:
                return None
            if nxt in IPV6_EXT:
                nxt, l4 = data[l4], l4 + (data[l4 + 1] + 1) * 8
            elif nxt == 51:  # AH
                nxt, l4 = data[l4], l4 + (data[l4 + 1] + 2) * 4
            elif nxt == 44:  # fragment: only the first fragment carries the ports
                if struct.unpack_from("!H", data, l4 + 2)[0] & 0xFFF8:
                    return None
                nxt, l4 = data[l4], l4 + 8
            else:
                return None
    else:
        return None
    if len(data) < l4 + 4:
        return None
    sport, dport = struct.unpack_from("!HH", data, l4)
    return (src, sport), (dst, dport)


@contextlib.contextmanager
def _readable(path: str) -> Iterator[str]:
    """scapy reads pcap, pcapng and gzip; a zstd file is decompressed to a temporary file first."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"\x28\xb5\x2f\xfd":
        yield path
        return
    with tempfile.NamedTemporaryFile(suffix=".pcap") as tmp:
        subprocess.run(["zstd", "-dc", path], stdout=tmp, check=True)
        tmp.flush()
        yield tmp.name


def _raw_frames(path: str) -> Iterator[tuple[int, int, bytes, int]]:
    """(linktype, ts_ns, data, wirelen) of every frame, via scapy's RawPcapReader / RawPcapNgReader."""
    from scapy.utils import RawPcapNgReader, RawPcapReader

    quiet = logging.getLogger("scapy.runtime")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # scapy notes a Decryption Secrets Block it cannot use: not our reader's concern
    try:
        yield from _raw_frames_of(path, RawPcapReader, RawPcapNgReader)
    finally:
        quiet.setLevel(level)


def _raw_frames_of(path: str, raw_reader: Any, ng_reader: Any) -> Iterator[tuple[int, int, bytes, int]]:
    with _readable(path) as readable, raw_reader(readable) as reader:
        last_ts = 0
        if isinstance(reader, ng_reader):
            for data, meta in reader:
                # a Simple Packet Block has no timestamp: the previous one, as the analyzer reads it
                ts = last_ts if meta.tshigh is None else ((meta.tshigh << 32) | meta.tslow) * 10**9 // meta.tsresol
                last_ts = ts
                yield meta.linktype, ts, data, meta.wirelen or len(data)
        else:
            mult = 1 if reader.nano else 1000
            for data, meta in reader:
                yield reader.linktype, meta.sec * 10**9 + meta.usec * mult, data, meta.wirelen or len(data)


def frames(files: Sequence[PathLike], chosen: Sequence[ConnectionSpan]) -> Iterator[Frame]:
    """The frames of the chosen connections, in file order: matched by 4-tuple and time span (time tested first)."""
    if not chosen:
        return
    lo = min(s.start_ns for s in chosen)
    hi = max(s.end_ns for s in chosen)
    by_port: dict[int, list[ConnectionSpan]] = {}
    for s in chosen:
        by_port.setdefault(s.client[1], []).append(s)
    for path in files:
        name = os.fspath(path)
        for linktype, ts, data, wirelen in _raw_frames(name):
            if not lo <= ts <= hi:
                continue
            ends = tcp_endpoints(linktype, data)
            if ends is None:
                continue
            src, dst = ends
            for s in by_port.get(src[1], []) + by_port.get(dst[1], []):
                if s.matches(src, dst, ts):
                    yield Frame(s.conn_id, linktype, ts, bytes(data), wirelen, name)
                    break


def _pcapng_writer(path: str) -> Any:
    """scapy's PcapNgWriter with nanosecond timestamps (if_tsresol = 9) and one interface per link type."""
    from scapy.utils import PcapNgWriter

    class _NsPcapNgWriter(PcapNgWriter):
        def __init__(self, filename: str) -> None:
            super().__init__(filename)
            self.tsresol = 10**9

        def _write_block_idb(self, linktype: int, ifname: bytes | None = None) -> None:
            body = struct.pack(self.endian + "HHI", linktype, 0, 262144)
            opts = struct.pack(self.endian + "HHB3x", 9, 1, 9)  # if_tsresol: 10^-9 s
            if ifname is not None:
                opts += struct.pack(self.endian + "HH", 2, len(ifname)) + self._add_padding(ifname)
            opts += struct.pack(self.endian + "HH", 0, 0)
            self.f.write(self.build_block(struct.pack(self.endian + "I", 1), body, options=opts))

    return _NsPcapNgWriter(path)


def write_frames(chosen: Sequence[Frame], output: PathLike, fmt: str | None = None) -> tuple[str, list[int]]:
    """Write frames keeping their link type(s) and nanosecond times: pcap for one link type (scapy's PcapWriter),
    pcapng when several (or when ``fmt == 'pcapng'`` / the name ends in .pcapng). Returns (format, link types)."""
    from scapy.utils import PcapWriter

    out = os.fspath(output)
    linktypes = list(dict.fromkeys(f.linktype for f in chosen)) or [1]
    if fmt is None:
        fmt = "pcapng" if out.endswith(".pcapng") or len(linktypes) > 1 else "pcap"
    if fmt == "pcap" and len(linktypes) > 1:
        raise ValueError("the chosen packets have several link types; a pcap holds one: write pcapng")
    if fmt == "pcap":
        snaplen = max([262144, *(len(f.data) for f in chosen)])
        with PcapWriter(out, linktype=linktypes[0], nano=True, snaplen=snaplen, sync=False) as w:
            w.write_header(None)
            for f in chosen:
                w.write_packet(f.data, sec=f.ts_ns // 10**9, usec=f.ts_ns % 10**9, wirelen=f.wirelen)
        return fmt, linktypes
    w = _pcapng_writer(out)
    try:
        w.linktype = linktypes[0]
        w.write_header(None)  # section header + interface 0 (ifname None) for the first link type
        for f in chosen:
            ifname = None if f.linktype == linktypes[0] else f"linktype{f.linktype}".encode()
            w._write_packet(
                f.data,
                linktype=f.linktype,
                sec=Fraction(f.ts_ns, 10**9),
                caplen=len(f.data),
                wirelen=f.wirelen,
                ifname=ifname,
            )
    finally:
        w.close()
    return fmt, linktypes


def write_pcap(
    result: AnalysisResult,
    conn_ids: Sequence[str],
    output: PathLike,
    *,
    files: Sequence[PathLike] | None = None,
    fmt: str | None = None,
) -> ExtractSummary:
    """Write only the packets of ``conn_ids`` (from ``files``, default the result's own) to ``output``;
    re-analysed (with the same trust options), the file gives the same rows for these connections."""
    chosen = spans(result, conn_ids)
    sources = list(files if files is not None else result.files)
    got = list(frames(sources, chosen))
    if len(sources) > 1:
        got.sort(key=lambda f: f.ts_ns)  # several files: one time line (stable: one file keeps its own order)
    written, linktypes = write_frames(got, output, fmt)
    seen = {f.conn_id for f in got}
    return ExtractSummary(
        os.fspath(output),
        len(got),
        [s.conn_id for s in chosen if s.conn_id in seen],
        linktypes,
        written,
        [s.conn_id for s in chosen if s.conn_id not in seen],
    )


def packet_list(result: AnalysisResult, conn_id: str, files: Sequence[PathLike] | None = None) -> PacketList:
    """The packets of one connection as a scapy PacketList (dissected by link type, times exact)."""
    import scapy.layers.inet
    import scapy.layers.inet6
    import scapy.layers.l2  # noqa: F401  (registers Ethernet, SLL, SLL2, loopback, IPv4/IPv6, TCP for dissection)
    from scapy.config import conf
    from scapy.packet import Raw
    from scapy.plist import PacketList
    from scapy.utils import EDecimal

    pkts = []
    for f in frames(files if files is not None else result.files, spans(result, [conn_id])):
        cls = conf.l2types.num2layer.get(f.linktype, Raw)
        p = cls(f.data)
        p.time = EDecimal(f.ts_ns) / EDecimal(10**9)
        p.wirelen = f.wirelen
        pkts.append(p)
    return PacketList(pkts, name=conn_id)


__all__ = ["ConnectionSpan", "ExtractSummary", "conn_ids_for", "frames", "packet_list", "spans", "write_pcap"]
