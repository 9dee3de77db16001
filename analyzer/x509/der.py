"""Minimal DER TLV reading and writing: enough to mend certificates a strict parser refuses (explicit defaults)."""

from __future__ import annotations

from dataclasses import dataclass

SEQUENCE = 0x30
BOOLEAN = 0x01
INTEGER = 0x02
OCTET_STRING = 0x04
OID = 0x06
EXTENSIONS = 0xA3  # [3] EXPLICIT in TBSCertificate
_BASIC_CONSTRAINTS = bytes.fromhex("551d13")  # 2.5.29.19
_FALSE = b"\x00"


class DerError(ValueError):
    """Bytes that are not the DER this module understands (multi-byte tags, indefinite or overlong lengths)."""


@dataclass(frozen=True, slots=True)
class Tlv:
    tag: int
    content: bytes

    def encode(self) -> bytes:
        return encode(self.tag, self.content)


def encode(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        head = bytes([size])
    else:
        raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + head + content


def read(data: bytes, pos: int = 0) -> tuple[Tlv, int]:
    """The TLV at pos and the position after it."""
    if pos + 2 > len(data):
        raise DerError("truncated TLV")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DerError("multi-byte tag")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        size = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise DerError("unsupported length")
        size = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + size > len(data):
        raise DerError("content runs past the end")
    return Tlv(tag, bytes(data[pos : pos + size])), pos + size


def children(content: bytes) -> list[Tlv]:
    out: list[Tlv] = []
    pos = 0
    while pos < len(content):
        item, pos = read(content, pos)
        out.append(item)
    return out


def sequence(items: list[Tlv]) -> bytes:
    return encode(SEQUENCE, b"".join(i.encode() for i in items))


def tbs_bytes(der: bytes) -> bytes | None:
    """The TBSCertificate element (tag and length included) exactly as encoded in a certificate, or None."""
    try:
        cert, _ = read(der)
        tbs, _ = read(cert.content)
    except DerError:
        return None
    return tbs.encode()


def mend_certificate(der: bytes) -> tuple[bytes, list[str]] | None:
    """A re-encoding of the certificate that a strict parser accepts: a negative serial read as unsigned, and no
    explicitly encoded DEFAULT FALSE booleans (Extension.critical, BasicConstraints.cA), which BER-tolerant clients
    accept. The signature no longer covers the result: read fields from it, and check signatures over tbs_bytes() of
    the original. None when there is nothing to mend or the structure is unexpected."""
    try:
        cert, _ = read(der)
        parts = children(cert.content)
        tbs = children(parts[0].content)
        notes: list[str] = []
        serial_at = 1 if tbs and tbs[0].tag == 0xA0 else 0
        serial = tbs[serial_at]
        if serial.tag == INTEGER and serial.content and serial.content[0] & 0x80:
            notes.append("its serial number is negative (RFC 5280 requires a positive one)")
            tbs[serial_at] = Tlv(INTEGER, b"\x00" + serial.content)
        for index, field in enumerate(tbs):
            if field.tag != EXTENSIONS:
                continue
            (wrapper,) = children(field.content)
            mended = [_mend_extension(ext, notes) for ext in children(wrapper.content)]
            tbs[index] = Tlv(EXTENSIONS, sequence(mended))
        if not notes:
            return None
        parts[0] = Tlv(SEQUENCE, b"".join(t.encode() for t in tbs))
        return sequence(parts), notes
    except (DerError, ValueError, IndexError):
        return None


def _mend_extension(ext: Tlv, notes: list[str]) -> Tlv:
    fields = children(ext.content)
    oid = fields[0].content if fields and fields[0].tag == OID else b""
    if len(fields) == 3 and fields[1].tag == BOOLEAN and fields[1].content == _FALSE:
        notes.append("an extension encodes the default critical FALSE explicitly")
        fields = [fields[0], fields[2]]
    if oid == _BASIC_CONSTRAINTS and fields[-1].tag == OCTET_STRING:
        value, _ = read(fields[-1].content)
        inner = children(value.content)
        if inner and inner[0].tag == BOOLEAN and inner[0].content == _FALSE:
            notes.append("basicConstraints encodes the default cA FALSE explicitly")
            fields[-1] = Tlv(OCTET_STRING, sequence(inner[1:]))
    return Tlv(SEQUENCE, b"".join(f.encode() for f in fields))


def mend_ocsp_response(der: bytes) -> tuple[bytes, bytes] | None:
    """(a re-encoding a strict parser accepts, the original signed tbsResponseData) for an OCSPResponse that encodes
    the DEFAULT version v1 explicitly (seen from real responders); None when there is nothing to mend."""
    try:
        response, _ = read(der)
        outer = children(response.content)  # responseStatus, [0] responseBytes
        (response_bytes,) = children(outer[1].content)
        kind, octets = children(response_bytes.content)
        basic, _ = read(octets.content)
        basic_parts = children(basic.content)
        tbs = basic_parts[0]
        fields = children(tbs.content)
        if not fields or fields[0].encode() != _EXPLICIT_V1:
            return None
        basic_parts[0] = Tlv(SEQUENCE, b"".join(f.encode() for f in fields[1:]))
        new_basic = sequence(basic_parts)
        new_bytes = sequence([kind, Tlv(OCTET_STRING, new_basic)])
        outer[1] = Tlv(outer[1].tag, new_bytes)
        return sequence(outer), tbs.encode()
    except (DerError, ValueError, IndexError):
        return None


_EXPLICIT_V1 = bytes.fromhex("a003020100")
