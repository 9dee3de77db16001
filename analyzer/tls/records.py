"""Sans-IO TLS record layer and handshake-message reassembly for one direction of a stream."""

from __future__ import annotations

from typing import NamedTuple

from analyzer.tls.messages import HandshakeMessage

CT_CCS, CT_ALERT, CT_HANDSHAKE, CT_APPDATA, CT_HEARTBEAT = 20, 21, 22, 23, 24
CT_SSL2 = 0x80  # pseudo content type for an SSLv2 record
MAX_RECORD = (1 << 14) + 2048  # TLSCiphertext limit (RFC 5246 6.2.3)
MAX_HANDSHAKE_MESSAGE = 1 << 20
MAX_BUFFER = MAX_RECORD + 5


class Record(NamedTuple):
    content_type: int
    version: int
    payload: bytes

    @property
    def length(self) -> int:
        return len(self.payload)


def looks_like_tls_record(head: bytes) -> bool:
    """True for the start of a TLS record (content type 20-24, version 3.x, sane length)."""
    if len(head) < 5:
        return False
    ct, major, minor = head[0], head[1], head[2]
    length = (head[3] << 8) | head[4]
    return 20 <= ct <= 24 and major == 3 and minor <= 4 and 0 < length <= MAX_RECORD


def looks_like_sslv2_hello(head: bytes) -> bool:
    """An SSLv2-format CLIENT-HELLO (also used by old clients to offer SSL 3.0 / TLS)."""
    if len(head) < 5 or not head[0] & 0x80:
        return False
    length = ((head[0] & 0x7F) << 8) | head[1]
    return head[2] == 1 and head[3] in (0, 3) and length >= 9


def looks_like_client_hello(head: bytes) -> bool:
    return (looks_like_tls_record(head) and head[0] == CT_HANDSHAKE and len(head) > 5 and head[5] == 1) or (
        looks_like_sslv2_hello(head)
    )


def looks_like_tls(head: bytes) -> bool:
    return looks_like_tls_record(head) or looks_like_sslv2_hello(head)


class RecordLayer:
    """Splits one direction's byte stream into records; stops (with ``error`` set) on non-TLS bytes."""

    __slots__ = ("_buf", "_sslv2", "error", "lost", "records")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._sslv2: bool | None = None  # None until the first record says which format
        self.error: str | None = None
        self.lost = False  # a gap desynchronised the record boundaries
        self.records = 0

    def state(self) -> tuple[bytes, bool | None, str | None, bool, int]:
        """Its slots as plain values (analyzer/spill.py)."""
        return bytes(self._buf), self._sslv2, self.error, self.lost, self.records

    def restore(self, values: tuple[bytes, bool | None, str | None, bool, int]) -> None:
        buf, self._sslv2, self.error, self.lost, self.records = values
        self._buf = bytearray(buf)

    def feed(self, data: bytes) -> list[Record]:
        if self.error is not None:
            return []
        if self.lost:
            if not looks_like_tls_record(data):
                return []  # wait for a segment that starts on a record boundary
            self.lost = False
            self._buf.clear()
        if self._buf:  # a record was split across segments: join (rare in the handshake phase)
            self._buf += data
            data = bytes(self._buf)
            self._buf.clear()
        out: list[Record] = []
        pos = self._sslv2_records(data, out) if self._sslv2 is not False else 0
        n = len(data)
        while pos + 5 <= n:
            ct = data[pos]
            length = (data[pos + 3] << 8) | data[pos + 4]
            if not (20 <= ct <= 26 and data[pos + 1] == 3 and data[pos + 2] <= 4 and length <= MAX_RECORD):
                self.error = f"not a TLS record header: {data[pos : pos + 5].hex()}"
                return out
            end = pos + 5 + length
            if end > n:
                break
            out.append(Record(ct, (3 << 8) | data[pos + 2], data[pos + 5 : end]))
            pos = end
        if pos < n:
            if n - pos > MAX_BUFFER:
                self.error = "record buffer overflow"
            else:
                self._buf += data[pos:]
        self.records += len(out)
        return out

    def _sslv2_records(self, data: bytes, out: list[Record]) -> int:
        """SSLv2-format records at the start of a stream; returns where TLS records (if any) begin."""
        pos, n = 0, len(data)
        while pos < n:
            if self._sslv2 is None:
                if n - pos < 5:
                    return pos
                head = data[pos : pos + 5]
                self._sslv2 = looks_like_sslv2_hello(head) or bool(head[0] & 0x80 and head[2] == 4)
                if not self._sslv2:
                    return pos
            if n - pos < 2:
                break
            if not data[pos] & 0x80 and 20 <= data[pos] <= 24:
                self._sslv2 = False  # the peer switched to TLS records (e.g. after a v2 hello)
                return pos
            hlen = 2 if data[pos] & 0x80 else 3
            length = ((data[pos] & (0x7F if hlen == 2 else 0x3F)) << 8) | data[pos + 1]
            if n - pos < hlen + length:
                break
            out.append(Record(CT_SSL2, 0x0002, data[pos + hlen : pos + hlen + length]))
            pos += hlen + length
        # an incomplete SSLv2 record: keep it for the next segment, nothing more to parse here
        self._buf += data[pos:]
        return n

    def gap(self) -> None:
        """Bytes were lost: the next record boundary is unknown until a segment starts with one."""
        self._buf.clear()
        self.lost = True

    @property
    def pending(self) -> int:
        return len(self._buf)


class HandshakeAssembler:
    """Joins handshake records into messages (a message may span records, a record hold several)."""

    __slots__ = ("_buf", "error")

    def __init__(self) -> None:
        self._buf = bytearray()
        self.error: str | None = None

    def state(self) -> tuple[bytes, str | None]:
        """Its slots as plain values (analyzer/spill.py)."""
        return bytes(self._buf), self.error

    def restore(self, values: tuple[bytes, str | None]) -> None:
        buf, self.error = values
        self._buf = bytearray(buf)

    def feed(self, payload: bytes) -> list[HandshakeMessage]:
        if self.error is not None:
            return []
        buf = self._buf
        buf += payload
        out: list[HandshakeMessage] = []
        pos = 0
        while len(buf) - pos >= 4:
            length = (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3]
            if length > MAX_HANDSHAKE_MESSAGE:
                self.error = f"handshake message of {length} bytes exceeds the {MAX_HANDSHAKE_MESSAGE} limit"
                buf.clear()
                return out
            if len(buf) - pos < 4 + length:
                break
            out.append(HandshakeMessage(buf[pos], bytes(buf[pos + 4 : pos + 4 + length])))
            pos += 4 + length
        del buf[:pos]
        return out

    def reset(self) -> None:
        self._buf.clear()
