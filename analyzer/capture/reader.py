"""Capture files to blocks of frame columns: pcap (us/ns, both byte orders), pcapng, gzip/zstd; no dissection."""

from __future__ import annotations

import importlib
import mmap
import os
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

import numpy as np

from analyzer.errors import CaptureError

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),  # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),  # little-endian, nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
MAX_RECORD = 1 << 20  # larger captured lengths are treated as damage, not as packets
TS_NS_MAX = (1 << 63) - 1  # nanoseconds since 1970 in an int64: until 2262
DEFAULT_BLOCK = 1 << 16
# a block also ends after this many bytes of capture: its pages are resident until it is processed,
# so this, not the file size, bounds the capture's share of memory (65,536 full-size frames would be ~100 MB)
BLOCK_BYTES = 16 << 20

SPB_TYPE, EPB_TYPE, IDB_TYPE, OPB_TYPE, DSB_TYPE = 3, 6, 1, 2, 0x0000000A


@dataclass(frozen=True, slots=True)
class FrameBlock:
    """Columns for a run of consecutive frames; packet bytes stay in ``data`` (the mapped file)."""

    data: np.ndarray  # uint8 view of the whole (decompressed) file
    frame: np.ndarray  # int64, 1-based frame numbers as Wireshark counts them
    ts_ns: np.ndarray  # int64 nanoseconds since the epoch
    off: np.ndarray  # int64 offset of the first packet byte in ``data``
    caplen: np.ndarray  # int64 captured length
    linktype: np.ndarray  # int32 link-layer type per frame

    def __len__(self) -> int:
        return len(self.frame)


@dataclass(slots=True)
class DecryptionSecrets:
    """A pcapng Decryption Secrets Block (kept for key-log decryption)."""

    secrets_type: int
    data: bytes


@dataclass(slots=True)
class CaptureInfo:
    path: str
    format: str = ""
    compressed: str | None = None
    size_bytes: int = 0
    frames: int = 0
    linktypes: set[int] = field(default_factory=set)
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    secrets: list[DecryptionSecrets] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _describe(head: bytes) -> str:
    if not head:
        return "an empty file"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive"
    if head.startswith(b"%PDF"):
        return "a PDF document"
    if head.lstrip().startswith((b"<", b"{", b"[")):
        return "text (HTML/XML/JSON)"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head[:64]):
        return f"a text file starting {head[:24].decode('ascii', 'replace')!r}"
    return f"unknown magic bytes {head[:4].hex()}"


def _gunzip(path: str, out: IO[bytes]) -> str | None:
    """Decompress a gzip file (one member or several, as ``cat a.gz b.gz`` makes) into ``out`` as it
    goes, so that everything before a damaged or missing part is kept; what went wrong, or None."""
    import zlib

    member = zlib.decompressobj(31)
    fed = False  # the current member has had input
    with open(path, "rb") as src:
        while chunk := src.read(1 << 20):
            while chunk:
                before = member.copy()
                try:
                    out.write(member.decompress(chunk))
                except zlib.error as exc:
                    # zlib gives nothing of a chunk it fails on: again in small pieces, to keep what
                    # precedes the damage
                    for i in range(0, len(chunk), 512):
                        try:
                            out.write(before.decompress(chunk[i : i + 512]))
                        except zlib.error:
                            break
                    return f"the gzip stream is damaged ({exc})"
                fed = True
                if not member.eof:
                    break
                chunk = member.unused_data  # the next member, or padding after the last one
                member, fed = zlib.decompressobj(31), False
                if not chunk.strip(b"\0"):
                    chunk = b""
    if fed and not member.eof:
        return "the gzip stream ends early"
    return None


def _decompress_to_temp(path: str, kind: str) -> tuple[IO[bytes], str | None]:
    """The decompressed capture in a temporary file, and what went wrong if the compressed stream is
    truncated or damaged: what decompressed before that point is kept and read (the reader then also
    warns about a record cut in the middle)."""
    import tempfile  # only compressed captures need it

    tmp = tempfile.TemporaryFile(prefix="tls-analyzer-")  # noqa: SIM115 - returned open
    problem: str | None = None
    if kind == "gzip":
        problem = _gunzip(path, tmp)
    else:
        exe = shutil.which("zstd")
        if exe is None:
            raise CaptureError(f"{path}: zstd-compressed capture and no `zstd` program to decompress it")
        done = subprocess.run([exe, "-dc", path], stdout=tmp, stderr=subprocess.PIPE, check=False)
        if done.returncode:
            lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
            detail = lines[-1].removeprefix(f"{path} : ")[:120] if lines else ""
            problem = "the zstd stream is damaged or ends early" + (f" ({detail})" if detail else "")
    tmp.flush()
    tmp.seek(0)
    return tmp, problem


Walk = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]


def walk_records_py(buf: mmap.mmap, off: int, count: int, big_endian: bool, limit: int) -> Walk:
    """Up to ``count`` consecutive pcap records from ``off``: offsets, seconds, fractions, captured
    lengths, and where the walk stopped (before a damaged record, or at the end)."""
    u32 = struct.Struct(">I" if big_endian else "<I").unpack_from
    size = len(buf)
    hdrs: list[int] = []
    append = hdrs.append
    n = 0
    while n < count and off + 16 <= size:
        incl = u32(buf, off + 8)[0]
        if incl > limit or off + 16 + incl > size:
            break
        append(off)
        off += 16 + incl
        n += 1
    h = np.asarray(hdrs, dtype=np.int64)
    data = np.frombuffer(buf, dtype=np.uint8)
    words = (
        data[h[:, None] + np.arange(12, dtype=np.int64)[None, :]]
        .copy()
        .view(np.dtype((">" if big_endian else "<") + "u4"))
    )
    words = words.reshape(len(h), 3).astype(np.int64)
    return h, words[:, 0], words[:, 1], words[:, 2], off


def walk_records_c(buf: mmap.mmap, off: int, count: int, big_endian: bool, limit: int) -> Walk:
    offs, sec, frac, incl, nxt = _walk.walk_pcap(buf, off, count, int(big_endian), limit)
    i64 = np.int64
    return np.frombuffer(offs, i64), np.frombuffer(sec, i64), np.frombuffer(frac, i64), np.frombuffer(incl, i64), nxt


walk_records = walk_records_py
try:  # the optional compiled helper (setup.py): identical results, several times faster
    _walk = importlib.import_module("analyzer.capture._walk")
    walk_records = walk_records_c
except ImportError:  # no C compiler at install time: the pure-Python walk
    pass


class CaptureReader:
    """Opens one capture and yields FrameBlocks; collects warnings instead of raising on damage."""

    def __init__(self, path: str | os.PathLike[str], first_frame: int = 1) -> None:
        self.path = os.fspath(path)
        self.info = CaptureInfo(self.path)
        self._first_frame = first_frame
        try:
            fh: IO[bytes] = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise CaptureError(f"{self.path}: cannot open ({exc.strerror})") from exc
        head = fh.read(4)
        if head[:2] == GZIP_MAGIC or head == ZSTD_MAGIC:
            kind = "gzip" if head[:2] == GZIP_MAGIC else "zstd"
            fh.close()
            fh, problem = _decompress_to_temp(self.path, kind)
            self.info.compressed = kind
            head = fh.read(4)
            if problem is not None:
                if len(head) < 4:
                    fh.close()
                    raise CaptureError(f"{self.path}: {problem}; nothing could be decompressed")
                kept = fh.seek(0, os.SEEK_END)
                self.info.warnings.append(
                    f"{os.path.basename(self.path)}: {problem}; read as far as it decompressed ({kept:,} bytes)"
                )
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        self.info.size_bytes = size
        self._fh = fh
        if head in PCAP_MAGICS:
            self.info.format = "pcap"
        elif head == PCAPNG_SHB:
            self.info.format = "pcapng"
        else:
            fh.seek(0)
            found = _describe(fh.read(64))
            fh.close()
            raise CaptureError(f"{self.path}: not a pcap or pcapng capture (found {found})")
        self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        self._released = 0
        self.data = np.frombuffer(self._map, dtype=np.uint8) if self._map is not None else np.zeros(0, np.uint8)

    def close(self) -> None:
        self._fh.close()

    def _release(self, upto: int) -> None:
        """Drop already-processed pages of the mapped file from this process's resident memory (they stay
        in the page cache): memory follows active flows, not the size of the capture."""
        if self._map is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        end = (upto // mmap.PAGESIZE) * mmap.PAGESIZE
        if end > self._released:
            try:
                self._map.madvise(mmap.MADV_DONTNEED, self._released, end - self._released)
            except (OSError, ValueError):
                return
            self._released = end

    def warn(self, msg: str) -> None:
        if len(self.info.warnings) < 1000:
            self.info.warnings.append(f"{os.path.basename(self.path)}: {msg}")

    def blocks(
        self, block_size: int = DEFAULT_BLOCK, progress: Callable[[int], None] | None = None
    ) -> Iterator[FrameBlock]:
        if self._map is None:
            return
        walk = self._walk_pcap if self.info.format == "pcap" else self._walk_pcapng
        yield from walk(block_size, progress)

    # ------------------------------------------------------------------ pcap

    def _walk_pcap(self, block_size: int, progress: Callable[[int], None] | None) -> Iterator[FrameBlock]:
        assert self._map is not None
        buf = self._map
        size = len(buf)
        endian, mult = PCAP_MAGICS[bytes(buf[:4])]
        if size < 24:
            self.warn("file ends inside the pcap header")
            return
        snaplen, linktype = struct.unpack_from(endian + "II", buf, 16)
        linktype &= 0x0FFFFFFF  # upper bits may carry FCS information
        self.info.linktypes.add(linktype)
        u32 = struct.Struct(endian + "I").unpack_from
        off = 24
        frame = self._first_frame
        limit = max(snaplen, 65535) if snaplen else MAX_RECORD
        limit = min(limit, MAX_RECORD)
        count = min(block_size, 4096)  # first block small; then sized to BLOCK_BYTES from the frames seen
        while off < size:
            start = off
            hdrs, sec, frac, incl, off = walk_records(buf, off, count, endian == ">", limit)
            n = len(hdrs)
            asked, count = count, max(256, min(block_size, n * BLOCK_BYTES // max(1, off - start)))
            if n:
                block_start = int(hdrs[0])
                yield self._pcap_block(hdrs, sec, frac, incl, mult, linktype, frame)
                self._release(block_start + int(hdrs[-1]) - block_start)  # the consumer is done with it
                frame += n
                if progress:
                    progress(off)
            if n == asked:
                continue
            if off >= size:
                break
            # damage: a truncated tail or an impossible record header
            if off + 16 > size:
                self.warn(f"frame {frame} at offset {off}: file ends inside a record header (truncated capture)")
                break
            incl = u32(buf, off + 8)[0]
            if off + 16 + incl > size and incl <= limit:
                self.warn(
                    f"frame {frame} at offset {off}: record of {incl} bytes cut off after "
                    f"{size - off - 16} (truncated capture); frame skipped"
                )
                break
            nxt = self._resync_pcap(off, endian, limit)
            if nxt is None:
                self.warn(f"frame {frame} at offset {off}: impossible record length {incl}; rest of file unreadable")
                break
            self.warn(f"frame {frame} at offset {off}: damaged record header; skipped {nxt - off} bytes to resync")
            off = nxt
        self.info.frames = frame - self._first_frame

    def _resync_pcap(self, start: int, endian: str, limit: int) -> int | None:
        """Find the next offset where two consecutive plausible record headers chain (bounded scan)."""
        assert self._map is not None
        buf = self._map
        size = len(buf)
        hdr = struct.Struct(endian + "IIII").unpack_from
        for pos in range(start + 1, min(size - 16, start + (4 << 20))):
            sec, frac, incl, orig = hdr(buf, pos)
            if incl == 0 or incl > limit or orig < incl or frac >= 1_000_000_000:
                continue
            nxt = pos + 16 + incl
            if nxt == size:
                return pos
            if nxt + 16 <= size:
                sec2, _frac2, incl2, orig2 = hdr(buf, nxt)
                if 0 < incl2 <= limit and orig2 >= incl2 and abs(sec2 - sec) < 86400:
                    return pos
        return None

    def _pcap_block(
        self, h: np.ndarray, sec: np.ndarray, frac: np.ndarray, incl: np.ndarray, mult: int, linktype: int, frame: int
    ) -> FrameBlock:
        ts = sec * 1_000_000_000 + frac * mult
        self._note_ts(ts)
        n = len(h)
        return FrameBlock(
            self.data,
            np.arange(frame, frame + n, dtype=np.int64),
            ts,
            h + 16,
            incl,
            np.full(n, linktype, dtype=np.int32),
        )

    def _note_ts(self, ts: np.ndarray) -> None:
        if len(ts):
            lo, hi = int(ts.min()), int(ts.max())
            i = self.info
            i.first_ts_ns = lo if i.first_ts_ns is None else min(i.first_ts_ns, lo)
            i.last_ts_ns = hi if i.last_ts_ns is None else max(i.last_ts_ns, hi)

    # ------------------------------------------------------------------ pcapng

    def _walk_pcapng(self, block_size: int, progress: Callable[[int], None] | None) -> Iterator[FrameBlock]:
        assert self._map is not None
        buf = self._map
        size = len(buf)
        off = 0
        frame = self._first_frame
        endian = "<"
        ifaces: list[tuple[int, int, int, int]] = []  # (linktype, snaplen, ts numerator, ts denominator)
        offs: list[int] = []
        lens: list[int] = []
        tss: list[int] = []
        lts: list[int] = []
        bad_ts, first_bad_ts = 0, 0

        def flush() -> FrameBlock:
            ts = np.asarray(tss, dtype=np.int64)
            self._note_ts(ts)
            n = len(offs)
            blk = FrameBlock(
                self.data,
                np.arange(frame, frame + n, dtype=np.int64),
                ts,
                np.asarray(offs, dtype=np.int64),
                np.asarray(lens, dtype=np.int64),
                np.asarray(lts, dtype=np.int32),
            )
            for column in (offs, lens, tss, lts):
                column.clear()
            return blk

        while off + 12 <= size:
            btype_raw = bytes(buf[off : off + 4])
            if btype_raw == PCAPNG_SHB:
                bom = bytes(buf[off + 8 : off + 12])
                if bom == b"\x4d\x3c\x2b\x1a":
                    endian = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    endian = ">"
                else:
                    self.warn(f"offset {off}: section header with bad byte-order magic; rest unreadable")
                    break
                ifaces = []
            btype, blen = struct.unpack_from(endian + "II", buf, off)
            if blen < 12 or blen % 4 or off + blen > size:
                if off + blen > size and blen >= 12:
                    self.warn(
                        f"frame {frame + len(offs)} at offset {off}: block of {blen} bytes cut off (truncated capture)"
                    )
                else:
                    self.warn(
                        f"frame {frame + len(offs)} at offset {off}: damaged block length {blen}; rest unreadable"
                    )
                break
            body = off + 8
            if btype in (EPB_TYPE, OPB_TYPE):
                if btype == EPB_TYPE:
                    if_id, ts_hi, ts_lo, cap, _orig = struct.unpack_from(endian + "IIIII", buf, body)
                else:
                    if_id, _drops, ts_hi, ts_lo, cap, _orig = struct.unpack_from(endian + "HHIIII", buf, body)
                data_off = body + 20
                if if_id >= len(ifaces):
                    self.warn(
                        f"frame {frame + len(offs)} at offset {off}: packet names unknown interface {if_id}; skipped"
                    )
                elif data_off + cap > off + blen - 4:
                    self.warn(f"frame {frame + len(offs)} at offset {off}: captured length exceeds its block; skipped")
                else:
                    lt, _snap, num, den = ifaces[if_id]
                    ts = ((ts_hi << 32) | ts_lo) * num // den
                    if ts > TS_NS_MAX:  # a damaged timestamp (or resolution) past year 2262: not a time
                        if not bad_ts:
                            first_bad_ts = frame + len(offs)
                        bad_ts += 1
                        ts = tss[-1] if tss else (self.info.last_ts_ns or 0)
                    offs.append(data_off)
                    lens.append(cap)
                    tss.append(ts)
                    lts.append(lt)
            elif btype == SPB_TYPE:
                if not ifaces:
                    self.warn(f"offset {off}: simple packet block before any interface; skipped")
                else:
                    (orig,) = struct.unpack_from(endian + "I", buf, body)
                    lt, snap, _num, _den = ifaces[0]
                    cap = min(orig, blen - 16, snap or orig)
                    offs.append(body + 4)
                    lens.append(cap)
                    tss.append(tss[-1] if tss else (self.info.last_ts_ns or 0))  # SPB has no timestamp
                    lts.append(lt)
            elif btype == IDB_TYPE:
                lt, _res, snap = struct.unpack_from(endian + "HHI", buf, body)
                num, den = self._tsresol(buf, body + 8, off + blen - 4, endian)
                ifaces.append((lt, snap, num, den))
                self.info.linktypes.add(lt)
            elif btype == DSB_TYPE:
                stype, slen = struct.unpack_from(endian + "II", buf, body)
                if body + 8 + slen <= off + blen:
                    self.info.secrets.append(DecryptionSecrets(stype, bytes(buf[body + 8 : body + 8 + slen])))
            off += blen
            if len(offs) >= block_size or (offs and off - offs[0] >= BLOCK_BYTES):
                blk = flush()
                yield blk
                self._release(int(blk.off[-1]))
                frame += len(blk)
                if progress:
                    progress(off)
        else:
            if off < size:
                self.warn(f"offset {off}: {size - off} trailing bytes after the last block (truncated capture)")
        if offs:
            blk = flush()
            yield blk
            frame += len(blk)
        if bad_ts:
            self.warn(
                f"frame {first_bad_ts}: timestamp out of range (damaged); {bad_ts} such frame(s) given the time "
                "of the frame before them"
            )
        if progress:
            progress(size)
        self.info.frames = frame - self._first_frame

    @staticmethod
    def _tsresol(buf: mmap.mmap, pos: int, end: int, endian: str) -> tuple[int, int]:
        """Timestamp units of an interface as nanoseconds = ticks * num // den (if_tsresol option 9)."""
        num, den = 1000, 1  # default: microseconds
        while pos + 4 <= end:
            code, length = struct.unpack_from(endian + "HH", buf, pos)
            if code == 0:
                break
            if code == 9 and length >= 1:
                v = buf[pos + 4]
                if v & 0x80:
                    num, den = 1_000_000_000, 1 << (v & 0x7F)
                else:
                    exp = v & 0x7F
                    num, den = (10 ** (9 - exp), 1) if exp <= 9 else (1, 10 ** (exp - 9))
            pos += 4 + ((length + 3) & ~3)
        return num, den
