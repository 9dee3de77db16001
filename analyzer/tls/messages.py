"""Sans-IO parsers for TLS handshake messages and alerts: bytes in, frozen dataclasses out."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, NamedTuple, TypeVar

from analyzer.errors import ParseError
from analyzer.picklable import Frozen
from analyzer.tls.buffer import Buffer

HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")

EXT_SERVER_NAME = 0
EXT_STATUS_REQUEST = 5
EXT_SUPPORTED_GROUPS = 10
EXT_EC_POINT_FORMATS = 11
EXT_SIGNATURE_ALGORITHMS = 13
EXT_ALPN = 16
EXT_SCT = 18
EXT_SUPPORTED_VERSIONS = 43
EXT_PSK_MODES = 45
EXT_CERTIFICATE_AUTHORITIES = 47
EXT_KEY_SHARE = 51
EXT_KEY_SHARE_DRAFT = 40  # TLS 1.3 drafts before 23


def printable(raw: bytes) -> str:
    """Text from the wire made safe to show: ASCII printable kept, anything else as \\xNN."""
    if raw.isascii():
        text = raw.decode("ascii")
        if text.isprintable() and "\\" not in text:
            return text
    out = []
    for b in raw:
        out.append(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}")
    return "".join(out)


_T = TypeVar("_T")
_SHARED: dict[object, object] = {}
SHARED_MAX = 1 << 16  # distinct values kept; beyond it values are simply not shared
SHARED_BYTES_MAX = 64 << 20  # and at most about this much memory (certificate DER, lists, extensions)
_shared_bytes = [0]
# extensions whose bytes differ in every hello (names, key shares, tickets, PSKs, padding, ECH)
VARYING_EXTENSIONS = frozenset({0, 21, 35, 40, 41, 44, 51, 0xFE0D, 0xFF01})


def shared(value: _T) -> _T:
    """One copy of a value that repeats across connections: a client stack's cipher list and constant
    extensions, a server's certificate chain. Thousands of connections then hold references to the
    same objects instead of copies (memory follows distinct stacks and servers, not connections)."""
    key = (type(value), value)  # an Extension and a plain tuple of the same items are not interchangeable
    got = _SHARED.get(key)
    if got is not None:
        return got  # type: ignore[return-value]
    if len(_SHARED) < SHARED_MAX:
        cost = _cost(value)
        if _shared_bytes[0] + cost > SHARED_BYTES_MAX:
            return value  # hostile input (many distinct large lists) must not grow memory without bound
        _shared_bytes[0] += cost
        _SHARED[key] = value
    return value


def _cost(value: object) -> int:
    """Roughly the bytes a shared value holds: DER, an extension's data, a list of numbers."""
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, Extension):
        return 64 + len(value.data)
    if isinstance(value, tuple):
        return 64 + 36 * len(value)
    return 64


def clear_shared() -> None:
    """Forget the shared values (called when an analysis ends; objects still in use keep theirs)."""
    _SHARED.clear()
    _DECODED.clear()
    _shared_bytes[0] = 0


# a constant ClientHello extension (same type and bytes, VARYING_EXTENSIONS aside) to the field it
# decoded to: the hellos of one client stack repeat them, and their bytes are hashed once anyway
_DECODED: dict[object, tuple[str, object]] = {}
DECODED_DATA_MAX = 512  # real constant extensions are a few dozen bytes: larger ones are not kept


class Extension(NamedTuple):
    """One extension, raw (a named tuple: created by the thousand, immutable like the dataclasses)."""

    type: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ClientHello(Frozen):
    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suites: tuple[int, ...]
    compression_methods: tuple[int, ...]
    extensions: tuple[Extension, ...]
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    supported_groups: tuple[int, ...] = ()
    ec_point_formats: tuple[int, ...] = ()
    signature_algorithms: tuple[int, ...] = ()
    supported_versions: tuple[int, ...] = ()
    key_share_groups: tuple[int, ...] = ()
    psk_modes: tuple[int, ...] = ()
    status_request: bool = False
    sslv2: bool = False
    problems: tuple[str, ...] = ()  # malformations tolerated while parsing

    @property
    def extension_types(self) -> tuple[int, ...]:
        return tuple(e.type for e in self.extensions)

    @property
    def max_version(self) -> int:
        """Highest version offered (supported_versions if present, else legacy_version); GREASE ignored."""
        real = [v for v in self.supported_versions if (v & 0x0F0F) != 0x0A0A]
        return max(real) if real else self.legacy_version


@dataclass(frozen=True, slots=True)
class ServerHello(Frozen):
    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression_method: int
    extensions: tuple[Extension, ...]
    selected_version: int
    is_hrr: bool = False
    alpn: str | None = None
    key_share_group: int | None = None
    sslv2: bool = False
    certificate_der: bytes | None = None  # SSLv2 carries the server certificate in its hello

    @property
    def extension_types(self) -> tuple[int, ...]:
        return tuple(e.type for e in self.extensions)


@dataclass(frozen=True, slots=True)
class CertificateEntry(Frozen):
    der: bytes
    extensions: tuple[Extension, ...] = ()


@dataclass(frozen=True, slots=True)
class Certificate(Frozen):
    entries: tuple[CertificateEntry, ...]
    request_context: bytes = b""

    @property
    def chain(self) -> tuple[bytes, ...]:
        return tuple(e.der for e in self.entries)


@dataclass(frozen=True, slots=True)
class CertificateRequest(Frozen):
    certificate_types: tuple[int, ...] = ()
    signature_algorithms: tuple[int, ...] = ()
    authorities: tuple[bytes, ...] = ()  # DER-encoded distinguished names the server accepts
    request_context: bytes = b""


@dataclass(frozen=True, slots=True)
class CertificateStatus(Frozen):
    status_type: int
    ocsp_response: bytes


@dataclass(frozen=True, slots=True)
class ServerKeyExchange(Frozen):
    group: int | None = None  # named group for (EC)DHE
    dh_bits: int | None = None  # prime size for finite-field DHE


class HandshakeMessage(NamedTuple):
    msg_type: int
    body: bytes


# --------------------------------------------------------------------------- plain records

# the messages a connection's TLS state holds, by tag: pack() writes a message as its tag and its
# field values, with nothing but tuples, numbers, strings and bytes, which ``marshal`` writes several
# times faster than pickle writes the objects (the spill file, analyzer/spill.py)
PACKED: tuple[type, ...] = (
    ClientHello,
    ServerHello,
    CertificateEntry,
    Certificate,
    CertificateRequest,
    CertificateStatus,
    ServerKeyExchange,
)
_TAGS: dict[type, int] = {cls: i for i, cls in enumerate(PACKED)}
_NAMES: dict[type, tuple[str, ...]] = {cls: tuple(f.name for f in fields(cls)) for cls in PACKED}


def pack(msg: object) -> tuple[Any, ...] | None:
    """A message as (tag, field values...) in plain values; KeyError for a class it does not know."""
    if msg is None:
        return None
    cls = type(msg)
    out: list[Any] = [_TAGS[cls]]
    for name in _NAMES[cls]:
        value = getattr(msg, name)
        if name == "extensions":
            value = tuple([(e.type, e.data) for e in value])
        elif name == "entries":
            value = tuple([pack(e) for e in value])
        out.append(value)
    return tuple(out)


def unpack(values: tuple[Any, ...] | None) -> Any:
    """pack() undone: the same message, equal field by field."""
    if values is None:
        return None
    cls = PACKED[values[0]]
    args = list(values[1:])
    for i, name in enumerate(_NAMES[cls]):
        if name == "extensions":
            args[i] = tuple([Extension(t, d) for t, d in args[i]])
        elif name == "entries":
            args[i] = tuple([unpack(e) for e in args[i]])
    return cls(*args)


# --------------------------------------------------------------------------- extensions


def _pull_extensions(buf: Buffer, problems: list[str] | None = None) -> tuple[Extension, ...]:
    """The extensions block. Strict by default; with ``problems`` given, lenient like the peers
    that still answered: a block length past the message end, or a last extension cut short, is
    noted there and what is whole is kept."""
    if buf.eof():
        return ()
    declared = buf.pull_uint16()
    if declared > buf.remaining() and problems is not None:
        problems.append(f"extensions length {declared} exceeds the {buf.remaining()} bytes left in the message")
        declared = buf.remaining()
    block = buf.pull_bytes(declared)
    out = []
    pos, end = 0, len(block)
    while pos < end:
        if pos + 4 > end:
            if problems is None:
                raise ParseError("truncated extension header")
            problems.append(f"{end - pos} stray bytes at the end of the extensions")
            break
        etype = (block[pos] << 8) | block[pos + 1]
        n = (block[pos + 2] << 8) | block[pos + 3]
        pos += 4
        if pos + n > end:
            if problems is None:
                raise ParseError(f"extension {etype} overruns the extensions block")
            problems.append(f"extension {etype} overruns the extensions block; kept cut short")
            out.append(Extension(etype, block[pos:end]))
            break
        ext = Extension(etype, block[pos : pos + n])
        out.append(ext if etype in VARYING_EXTENSIONS else shared(ext))
        pos += n
    return tuple(out)


def _sni(data: bytes) -> str | None:
    buf = Buffer(data)
    if buf.remaining() < 2:
        return None
    names = buf.pull_block(2)
    while not names.eof():
        name_type = names.pull_uint8()
        name = names.pull_vector(2)
        if name_type == 0:
            return printable(name)
    return None


def _alpn_list(data: bytes) -> tuple[str, ...]:
    buf = Buffer(data)
    protos = buf.pull_block(2)
    out = []
    while not protos.eof():
        out.append(printable(protos.pull_vector(1)))
    return tuple(out)


def _key_share_groups(data: bytes) -> tuple[int, ...]:
    buf = Buffer(data)
    shares = buf.pull_block(2)
    out = []
    while not shares.eof():
        out.append(shares.pull_uint16())
        shares.pull_vector(2)
    return tuple(out)


def _uint8_list(data: bytes) -> tuple[int, ...]:
    return tuple(Buffer(data).pull_vector(1))


def _u16_list(data: bytes, length_size: int = 2) -> tuple[int, ...]:
    return Buffer(data).pull_uint16_list(length_size)


# --------------------------------------------------------------------------- hellos

# the ClientHello field each constant extension decodes to (the cache of parse_client_hello; key
# shares vary per hello and are never cached)
EXTENSION_FIELDS = {
    EXT_ALPN: "alpn",
    EXT_SUPPORTED_GROUPS: "supported_groups",
    EXT_EC_POINT_FORMATS: "ec_point_formats",
    EXT_SIGNATURE_ALGORITHMS: "signature_algorithms",
    EXT_SUPPORTED_VERSIONS: "supported_versions",
    EXT_PSK_MODES: "psk_modes",
    EXT_STATUS_REQUEST: "status_request",
}


def parse_client_hello(body: bytes) -> ClientHello:
    """Parse a ClientHello body (after the 4-byte handshake header)."""
    buf = Buffer(body)
    legacy_version = buf.pull_uint16()
    random = buf.pull_bytes(32)
    session_id = buf.pull_vector(1)
    ciphers = shared(buf.pull_uint16_list(2))
    compression = shared(tuple(buf.pull_vector(1)))
    problems: list[str] = []
    extensions = _pull_extensions(buf, problems)
    fields: dict[str, object] = {"problems": tuple(problems)} if problems else {}
    decoded = _DECODED
    for ext in extensions:
        known = decoded.get(ext)
        if known is not None:  # a constant extension met before (the same client stack): no parsing
            fields[known[0]] = known[1]
            continue
        try:
            if ext.type == EXT_SERVER_NAME:
                fields["sni"] = _sni(ext.data)
                continue
            if ext.type == EXT_ALPN:
                fields["alpn"] = shared(_alpn_list(ext.data))
            elif ext.type == EXT_SUPPORTED_GROUPS:
                fields["supported_groups"] = shared(_u16_list(ext.data))
            elif ext.type == EXT_EC_POINT_FORMATS:
                fields["ec_point_formats"] = shared(_uint8_list(ext.data))
            elif ext.type == EXT_SIGNATURE_ALGORITHMS:
                fields["signature_algorithms"] = shared(_u16_list(ext.data))
            elif ext.type == EXT_SUPPORTED_VERSIONS:
                fields["supported_versions"] = shared(_u16_list(ext.data, 1))
            elif ext.type in (EXT_KEY_SHARE, EXT_KEY_SHARE_DRAFT):
                fields["key_share_groups"] = shared(_key_share_groups(ext.data))
            elif ext.type == EXT_PSK_MODES:
                fields["psk_modes"] = shared(_uint8_list(ext.data))
            elif ext.type == EXT_STATUS_REQUEST:
                fields["status_request"] = True
            else:
                continue
        except ParseError:
            continue  # a malformed extension body does not hide the rest of the hello
        if ext.type not in VARYING_EXTENSIONS and len(ext.data) <= DECODED_DATA_MAX and len(decoded) < SHARED_MAX:
            name = EXTENSION_FIELDS[ext.type]
            decoded[ext] = (name, fields[name])
    return ClientHello(
        legacy_version,
        random,
        session_id,
        ciphers,
        compression,
        extensions,
        **fields,  # type: ignore[arg-type]
    )


def parse_sslv2_client_hello(msg: bytes) -> ClientHello:
    """Parse an SSLv2-format ClientHello message (after the 2-byte record header, starting at msg type 1)."""
    buf = Buffer(msg)
    if buf.pull_uint8() != 1:
        raise ParseError("SSLv2 record is not a CLIENT-HELLO")
    version = buf.pull_uint16()
    cipher_len = buf.pull_uint16()
    sid_len = buf.pull_uint16()
    challenge_len = buf.pull_uint16()
    if cipher_len % 3:
        raise ParseError("SSLv2 cipher-spec list not a multiple of 3")
    specs = buf.pull_bytes(cipher_len)
    session_id = buf.pull_bytes(sid_len)
    challenge = buf.pull_bytes(challenge_len)
    ciphers = []
    for i in range(0, cipher_len, 3):
        kind = int.from_bytes(specs[i : i + 3], "big")
        ciphers.append(kind if kind >> 16 else kind & 0xFFFF)  # TLS suites appear as 0x00XXXX
    random = challenge.rjust(32, b"\x00")[-32:]
    return ClientHello(version, random, session_id, tuple(ciphers), (0,), (), sslv2=True)


def parse_sslv2_server_hello(msg: bytes) -> ServerHello:
    """Parse an SSLv2 SERVER-HELLO (msg type 4); the chosen cipher is the first the server lists."""
    buf = Buffer(msg)
    if buf.pull_uint8() != 4:
        raise ParseError("SSLv2 record is not a SERVER-HELLO")
    buf.pull_uint8()  # session id hit
    buf.pull_uint8()  # certificate type
    version = buf.pull_uint16()
    cert_len = buf.pull_uint16()
    cipher_len = buf.pull_uint16()
    conn_id_len = buf.pull_uint16()
    cert = buf.pull_bytes(cert_len)
    specs = buf.pull_bytes(cipher_len)
    conn_id = buf.pull_bytes(conn_id_len)
    cipher = int.from_bytes(specs[:3], "big") if len(specs) >= 3 else 0
    return ServerHello(
        version,
        conn_id.rjust(32, b"\x00")[-32:],
        b"",
        cipher,
        0,
        (),
        selected_version=0x0002,
        sslv2=True,
        certificate_der=cert or None,
    )


def parse_server_hello(body: bytes) -> ServerHello:
    buf = Buffer(body)
    legacy_version = buf.pull_uint16()
    if legacy_version >> 8 == 0x7F and (legacy_version & 0xFF) < 22:
        # TLS 1.3 drafts before 22: no session id, no compression, version is the real one
        random = buf.pull_bytes(32)
        cipher = buf.pull_uint16()
        extensions = _pull_extensions(buf)
        session_id, compression = b"", 0
    else:
        random = buf.pull_bytes(32)
        session_id = buf.pull_vector(1)
        cipher = buf.pull_uint16()
        compression = buf.pull_uint8()
        extensions = _pull_extensions(buf)
    selected = legacy_version
    alpn = None
    group = None
    for ext in extensions:
        try:
            if ext.type == EXT_SUPPORTED_VERSIONS and len(ext.data) == 2:
                selected = int.from_bytes(ext.data, "big")
            elif ext.type == EXT_ALPN:
                protos = _alpn_list(ext.data)
                alpn = protos[0] if protos else None
            elif ext.type in (EXT_KEY_SHARE, EXT_KEY_SHARE_DRAFT) and len(ext.data) >= 2:
                group = int.from_bytes(ext.data[:2], "big")
        except ParseError:
            continue
    return ServerHello(
        legacy_version,
        random,
        session_id,
        cipher,
        compression,
        extensions,
        selected,
        is_hrr=random == HRR_RANDOM,
        alpn=alpn,
        key_share_group=group,
    )


# --------------------------------------------------------------------------- certificates


def parse_certificate(body: bytes, tls13: bool = False) -> Certificate:
    """TLS <= 1.2: a list of DER certificates. TLS 1.3: context, then entries with extensions."""
    buf = Buffer(body)
    context = buf.pull_vector(1) if tls13 else b""
    certs = buf.pull_block(3)
    entries = []
    while not certs.eof():
        der = shared(certs.pull_vector(3))
        exts = _pull_extensions(certs) if tls13 else ()
        entries.append(CertificateEntry(der, exts))
    return Certificate(tuple(entries), context)


def _distinguished_names(data: Buffer) -> tuple[bytes, ...]:
    out = []
    while not data.eof():
        out.append(data.pull_vector(2))
    return tuple(out)


def parse_certificate_request(body: bytes, version: int) -> CertificateRequest:
    buf = Buffer(body)
    if version >= 0x0304 or version >> 8 == 0x7F:
        context = buf.pull_vector(1)
        sig_algs: tuple[int, ...] = ()
        authorities: tuple[bytes, ...] = ()
        for ext in _pull_extensions(buf):
            if ext.type == EXT_SIGNATURE_ALGORITHMS:
                sig_algs = _u16_list(ext.data)
            elif ext.type == EXT_CERTIFICATE_AUTHORITIES:
                authorities = _distinguished_names(Buffer(ext.data).pull_block(2))
        return CertificateRequest((), sig_algs, authorities, context)
    types = tuple(buf.pull_vector(1))
    algs = buf.pull_uint16_list(2) if version >= 0x0303 else ()
    names = _distinguished_names(buf.pull_block(2))
    return CertificateRequest(types, algs, names)


def parse_certificate_status(body: bytes) -> CertificateStatus:
    buf = Buffer(body)
    status_type = buf.pull_uint8()
    return CertificateStatus(status_type, buf.pull_vector(3))


def parse_server_key_exchange(body: bytes, cipher_name: str | None) -> ServerKeyExchange:
    """Only what diagnosis needs: the (EC)DHE group or the DH prime size."""
    buf = Buffer(body)
    name = cipher_name or ""
    if "ECDHE" in name or "ECDH_anon" in name:
        if buf.pull_uint8() == 3:  # named_curve
            return ServerKeyExchange(group=buf.pull_uint16())
        return ServerKeyExchange()
    if "DHE" in name or "DH_anon" in name:
        prime = buf.pull_vector(2)
        return ServerKeyExchange(dh_bits=len(prime.lstrip(b"\x00")) * 8)
    return ServerKeyExchange()


def parse_encrypted_extensions_alpn(body: bytes) -> str | None:
    """The ALPN protocol a TLS 1.3 server chose, from its (decrypted) EncryptedExtensions."""
    for ext in _pull_extensions(Buffer(body), []):
        if ext.type == EXT_ALPN:
            try:
                protos = _alpn_list(ext.data)
            except ParseError:
                return None
            return protos[0] if protos else None
    return None
