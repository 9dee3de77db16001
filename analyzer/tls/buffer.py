"""A read cursor over bytes from the wire with bounds-checked pull_* helpers (aioquic style)."""

from __future__ import annotations

import struct

from analyzer.errors import NeedMoreData, ParseError


class Buffer:
    """Reads big-endian integers and length-prefixed blocks; never reads past its end."""

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes | memoryview, start: int = 0, end: int | None = None) -> None:
        self._data = data
        self._pos = start
        self._end = len(data) if end is None else end

    @property
    def pos(self) -> int:
        return self._pos

    def remaining(self) -> int:
        return self._end - self._pos

    def eof(self) -> bool:
        return self._pos >= self._end

    def _take(self, n: int) -> int:
        p = self._pos
        if p + n > self._end:
            raise NeedMoreData(f"need {n} bytes at offset {p}, have {self._end - p}")
        self._pos = p + n
        return p

    def pull_uint8(self) -> int:
        p = self._take(1)
        return self._data[p]

    def pull_uint16(self) -> int:
        p = self._take(2)
        d = self._data
        return (d[p] << 8) | d[p + 1]

    def pull_uint24(self) -> int:
        p = self._take(3)
        d = self._data
        return (d[p] << 16) | (d[p + 1] << 8) | d[p + 2]

    def pull_uint32(self) -> int:
        p = self._take(4)
        return int.from_bytes(self._data[p : p + 4], "big")

    def pull_bytes(self, n: int) -> bytes:
        p = self._take(n)
        return bytes(self._data[p : p + n])

    def pull_block(self, length_size: int) -> Buffer:
        """A sub-buffer for a vector prefixed by a 1/2/3-byte length; the cursor moves past it."""
        n = (self.pull_uint8, self.pull_uint16, self.pull_uint24)[length_size - 1]()
        p = self._take(n)
        return Buffer(self._data, p, p + n)

    def pull_vector(self, length_size: int) -> bytes:
        n = (self.pull_uint8, self.pull_uint16, self.pull_uint24)[length_size - 1]()
        return self.pull_bytes(n)

    def pull_uint16_list(self, length_size: int) -> tuple[int, ...]:
        n = (self.pull_uint8, self.pull_uint16, self.pull_uint24)[length_size - 1]()
        if n % 2:
            raise ParseError("odd length in a list of 16-bit values")
        p = self._take(n)
        return struct.unpack_from(f">{n // 2}H", self._data, p)

    def rest(self) -> bytes:
        p = self._pos
        self._pos = self._end
        return bytes(self._data[p : self._end])
