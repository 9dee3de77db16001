"""Per-direction TCP byte-stream reassembly: retransmission, overlap, reordering, wrap, gaps; bounded."""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.picklable import Frozen

MOD = 1 << 32
HALF = 1 << 31
DEFAULT_LIMIT = 256 * 1024  # out-of-order bytes held per direction before a gap is declared


@dataclass(frozen=True, slots=True)
class Gap(Frozen):
    """Bytes missing from the stream (lost by the capture, or cut by the snap length)."""

    offset: int  # stream offset where the hole starts
    length: int


class Reassembler:
    """Feeds segments in capture order; returns in-order bytes and gaps as they become known.

    Offsets are 64-bit stream positions relative to the first byte (ISN+1 when the SYN was
    seen, otherwise the first segment's sequence number), so sequence-number wrap is invisible.
    """

    __slots__ = ("_base", "_next", "_pending", "_pending_bytes", "limit", "overlaps", "retransmissions")

    def __init__(self, isn: int | None = None, limit: int = DEFAULT_LIMIT) -> None:
        self._base: int | None = None if isn is None else (isn + 1) % MOD
        self._next = 0  # next expected stream offset
        self._pending: dict[int, bytes] = {}
        self._pending_bytes = 0
        self.limit = limit
        self.retransmissions = 0
        self.overlaps = 0

    def state(self) -> tuple[int | None, int, dict[int, bytes], int, int, int, int]:
        """Its slots as plain values (analyzer/spill.py)."""
        return (
            self._base,
            self._next,
            self._pending,
            self._pending_bytes,
            self.limit,
            self.overlaps,
            self.retransmissions,
        )

    def restore(self, values: tuple[int | None, int, dict[int, bytes], int, int, int, int]) -> None:
        (
            self._base,
            self._next,
            self._pending,
            self._pending_bytes,
            self.limit,
            self.overlaps,
            self.retransmissions,
        ) = values

    @property
    def started(self) -> bool:
        return self._base is not None

    @property
    def offset(self) -> int:
        return self._next

    def _rel(self, seq: int) -> int:
        """Stream offset of ``seq``, unwrapped to the one nearest the next expected offset."""
        assert self._base is not None
        cur = (self._base + self._next) % MOD
        d = (seq - cur) % MOD
        if d >= HALF:
            d -= MOD
        return self._next + d

    def add(self, seq: int, data: bytes, wire_len: int | None = None) -> list[bytes | Gap]:
        """Add one segment; ``wire_len`` > len(data) means the capture cut the payload."""
        if self._base is None:
            self._base = seq
        wire = len(data) if wire_len is None else wire_len
        if wire <= 0:
            return []
        rel = self._rel(seq)
        out = self._insert(rel, data) if data else []
        if wire > len(data) and self._next == rel + len(data):
            out.extend(self.skip_to(rel + wire))  # the capture cut this segment: a hole of known size
        return out

    def _insert(self, rel: int, data: bytes) -> list[bytes | Gap]:
        end = rel + len(data)
        if end <= self._next:
            self.retransmissions += 1
            return []
        if rel < self._next:
            self.overlaps += 1
            data = data[self._next - rel :]
            rel = self._next
        if rel == self._next:
            self._next = end
            out: list[bytes | Gap] = [data]
            out.extend(self._drain())
            return out
        old = self._pending.get(rel)
        if old is None or len(old) < len(data):
            self._pending_bytes += len(data) - (len(old) if old else 0)
            self._pending[rel] = data
        if self._pending_bytes > self.limit:
            return self.skip_to(min(self._pending))
        return []

    def _drain(self) -> list[bytes | Gap]:
        out: list[bytes | Gap] = []
        while self._pending:
            progressed = False
            for rel in sorted(self._pending):
                if rel > self._next:
                    break
                data = self._pending.pop(rel)
                self._pending_bytes -= len(data)
                end = rel + len(data)
                if end > self._next:
                    if rel < self._next:
                        self.overlaps += 1
                    out.append(data[self._next - rel :])
                    self._next = end
                progressed = True
            if not progressed:
                break
        return out

    def skip_to(self, rel: int) -> list[bytes | Gap]:
        """Give up waiting for bytes before ``rel``: report the hole and continue after it."""
        if rel <= self._next:
            return []
        out: list[bytes | Gap] = [Gap(self._next, rel - self._next)]
        self._next = rel
        out.extend(self._drain())
        return out

    @property
    def waiting(self) -> bool:
        """Segments are held behind a hole (finish() would deliver them)."""
        return bool(self._pending)

    def finish(self) -> list[bytes | Gap]:
        """At the end of the capture: segments still waiting behind a hole are delivered after it."""
        out: list[bytes | Gap] = []
        while self._pending:
            out.extend(self.skip_to(min(self._pending)))
        return out
