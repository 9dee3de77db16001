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

    def feed(self, data: bytes) -> list[Record]:
        if self.error is not None:
            return []
        buf = self._buf
        if self.lost:
            if not looks_like_tls_record(data):
                return []  # wait for a segment that starts on a record boundary
            self.lost = False
            buf.clear()
        buf += data
        out: list[Record] = []
        pos = 0
        n = len(buf)
        while pos < n:
            if self._sslv2 is None or self._sslv2:
                if self._sslv2 is None:
                    if n - pos < 5:
                        break
                    head = bytes(buf[pos : pos + 5])
                    if looks_like_sslv2_hello(head) or (head[0] & 0x80 and head[2] == 4):
                        self._sslv2 = True
                    else:
                        self._sslv2 = False
                        continue
                if n - pos < 2:
                    break
                if not buf[pos] & 0x80 and 20 <= buf[pos] <= 24:
                    self._sslv2 = False  # the peer switched to TLS records (e.g. after a v2 hello)
                    continue
                hlen = 2 if buf[pos] & 0x80 else 3
                length = ((buf[pos] & (0x7F if hlen == 2 else 0x3F)) << 8) | buf[pos + 1]
                if n - pos < hlen + length:
                    break
                out.append(Record(CT_SSL2, 0x0002, bytes(buf[pos + hlen : pos + hlen + length])))
                pos += hlen + length
                continue
            if n - pos < 5:
                break
            ct, major, minor = buf[pos], buf[pos + 1], buf[pos + 2]
            length = (buf[pos + 3] << 8) | buf[pos + 4]
            if not (20 <= ct <= 26 and major == 3 and minor <= 4 and length <= MAX_RECORD):
                self.error = f"not a TLS record header: {bytes(buf[pos : pos + 5]).hex()}"
                break
            if n - pos < 5 + length:
                break
            out.append(Record(ct, (major << 8) | minor, bytes(buf[pos + 5 : pos + 5 + length])))
            pos += 5 + length
        del buf[:pos]
        if len(buf) > MAX_BUFFER:
            self.error = "record buffer overflow"
            buf.clear()
        self.records += len(out)
        return out

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
