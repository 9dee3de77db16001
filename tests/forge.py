"""Re-encode real captures in other file formats and link types (the TLS bytes stay the real ones)."""

from __future__ import annotations

import struct
from collections.abc import Iterator

Packet = tuple[int, bytes]  # (timestamp ns, Ethernet frame)


def read_pcap(path: str) -> list[Packet]:
    with open(path, "rb") as fh:
        data = fh.read()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    assert struct.unpack_from(endian + "I", data, 20)[0] == 1, "forge expects an Ethernet capture"
    off, out = 24, []
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack_from(endian + "IIII", data, off)
        out.append((sec * 1_000_000_000 + frac * (1 if nano else 1000), data[off + 16 : off + 16 + incl]))
        off += 16 + incl
    return out


def pcap(packets: list[Packet], linktype: int = 1, endian: str = "<", nano: bool = False) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)]
    for ts, frame in packets:
        frac = ts % 1_000_000_000 if nano else (ts % 1_000_000_000) // 1000
        out.append(struct.pack(endian + "IIII", ts // 1_000_000_000, frac, len(frame), len(frame)) + frame)
    return b"".join(out)


def _block(btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def pcapng(streams: list[tuple[int, int, list[Packet]]], simple_first: bool = False) -> bytes:
    """``streams``: (linktype, tsresol exponent, packets) per interface; packets are interleaved by time."""
    out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))]
    out.append(_block(0x12345678, b"an unknown block the reader must skip"))
    for lt, res, _ in streams:
        opts = struct.pack("<HHB3x", 9, 1, res) + struct.pack("<HH", 0, 0)
        out.append(_block(1, struct.pack("<HHI", lt, 0, 262144) + opts))
    merged = sorted((ts, i, frame) for i, (_, _, pk) in enumerate(streams) for ts, frame in pk)
    for n, (ts, iface, frame) in enumerate(merged):
        if simple_first and n == 0 and iface == 0:
            out.append(_block(3, struct.pack("<I", len(frame)) + frame))
            continue
        ticks = ts // (10 ** (9 - streams[iface][1]))
        out.append(
            _block(6, struct.pack("<IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame)) + frame)
        )
    return b"".join(out)


def relink(packets: list[Packet], kind: str) -> Iterator[Packet]:
    """Rewrite the Ethernet header of each frame as another link layer."""
    for ts, frame in packets:
        et, l3 = frame[12:14], frame[14:]
        if kind == "vlan":
            yield ts, frame[:12] + b"\x81\x00\x00\x64" + et + l3
        elif kind == "qinq":
            yield ts, frame[:12] + b"\x88\xa8\x00\x0a\x81\x00\x00\x64" + et + l3
        elif kind == "sll":
            yield ts, struct.pack(">HHH", 0, 1, 6) + frame[6:12] + b"\x00\x00" + et + l3
        elif kind == "sll2":
            yield ts, et + b"\x00\x00" + struct.pack(">IHBB", 1, 1, 0, 6) + frame[6:12] + b"\x00\x00" + l3
        elif kind == "raw":
            yield ts, l3
        elif kind == "null":
            fam = 2 if et == b"\x08\x00" else 30
            yield ts, struct.pack("<I", fam) + l3
        else:
            raise ValueError(kind)
