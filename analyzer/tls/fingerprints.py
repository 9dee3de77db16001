"""Client TLS fingerprints (JA3, JA4, JA4_r) computed from already-parsed ClientHello fields."""

# Pure functions over ints and strings: no byte parsing, no I/O. The parser decides what the fields
# are; this module only turns them into the published fingerprint formats.
#
# JA3: https://github.com/salesforce/ja3 (README.md).
# JA4: https://github.com/FoxIO-LLC/ja4 technical_details/JA4.md, checked against FoxIO's reference
# implementations (python/ja4.py, rust/ja4/src/tls.rs) where the text leaves a case open.
from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["GREASE", "is_grease", "ja3", "ja3_string", "ja4", "ja4_raw"]

GREASE: frozenset[int] = frozenset(0x0A0A + 0x1010 * i for i in range(16))
"""The 16 GREASE code points of RFC 8701 (0x0a0a, 0x1a1a, ... 0xfafa)."""

_EXT_SNI = 0x0000
_EXT_ALPN = 0x0010

# JA4.md "TLS and DTLS Version". Anything else is "00".
_JA4_VERSIONS: dict[int, str] = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}
_JA4_TRANSPORTS = frozenset({"t", "q", "d"})
_EMPTY_HASH = "000000000000"
_HEX = "0123456789abcdef"


def is_grease(v: int) -> bool:
    """True if ``v`` is one of the RFC 8701 GREASE values."""
    return v in GREASE


# --------------------------------------------------------------------------------------------- JA3


def ja3_string(
    legacy_version: int,
    ciphers: Sequence[int],
    extensions: Sequence[int],
    groups: Sequence[int],
    point_formats: Sequence[int],
) -> str:
    """The JA3 text: ``version,ciphers,extensions,groups,point_formats``.

    Values are decimal, joined by ``-`` inside a field, in wire order, GREASE removed from every
    list; an empty list leaves its field empty (``769,4-5,,,``).
    """
    _check_u16("legacy_version", legacy_version)
    fields = [str(legacy_version)]
    for name, values in (
        ("ciphers", ciphers),
        ("extensions", extensions),
        ("groups", groups),
        ("point_formats", point_formats),
    ):
        fields.append("-".join(str(v) for v in _without_grease(name, values)))
    return ",".join(fields)


def ja3(
    legacy_version: int,
    ciphers: Sequence[int],
    extensions: Sequence[int],
    groups: Sequence[int],
    point_formats: Sequence[int],
) -> str:
    """The JA3 fingerprint: lower-case MD5 hex digest of :func:`ja3_string`."""
    text = ja3_string(legacy_version, ciphers, extensions, groups, point_formats)
    # MD5 is what JA3 is defined as; it identifies, it does not protect anything.
    return hashlib.md5(text.encode("ascii"), usedforsecurity=False).hexdigest()


# --------------------------------------------------------------------------------------------- JA4


def ja4(
    *,
    transport: str,
    versions: Sequence[int],
    legacy_version: int,
    sni: str | None,
    ciphers: Sequence[int],
    extensions: Sequence[int],
    alpn: Sequence[str | bytes],
    sig_algs: Sequence[int],
) -> str:
    """The JA4 fingerprint, e.g. ``t13d1516h2_8daaf6152771_e5627efa2ab1``.

    transport       "t" (TLS over TCP), "q" (QUIC) or "d" (DTLS).
    versions        the supported_versions extension's list, wire order (empty: extension absent).
    legacy_version  ClientHello.legacy_version, used when ``versions`` has no non-GREASE value.
    sni             the server name, or None; SNI counts as present when this is a non-empty
                    string or when ``extensions`` contains 0x0000.
    ciphers         cipher suites, wire order.
    extensions      extension types, wire order (including SNI 0x0000 and ALPN 0x0010).
    alpn            the ALPN protocol names, wire order; only the first one is used. A ``bytes``
                    item is the exact wire value; a ``str`` item is read back into bytes with
                    ``\\xNN`` standing for byte NN and any other character as its UTF-8 encoding
                    (the inverse of the parser's printable form).
    sig_algs        the signature_algorithms extension's list, wire order.

    GREASE values are dropped from every integer list.
    """
    a, cipher_list, ext_list, sig_list = _ja4_parts(
        transport, versions, legacy_version, sni, ciphers, extensions, alpn, sig_algs
    )
    b = _sha12(",".join(cipher_list)) if cipher_list else _EMPTY_HASH
    if ext_list:
        c_text = ",".join(ext_list)
        if sig_list:
            c_text += "_" + ",".join(sig_list)
        c = _sha12(c_text)
    else:
        c = _EMPTY_HASH
    return f"{a}_{b}_{c}"


def ja4_raw(
    *,
    transport: str,
    versions: Sequence[int],
    legacy_version: int,
    sni: str | None,
    ciphers: Sequence[int],
    extensions: Sequence[int],
    alpn: Sequence[str | bytes],
    sig_algs: Sequence[int],
) -> str:
    """The unhashed JA4 ("JA4_r"): the same ``a`` part, then the lists :func:`ja4` hashes.

    ``a_ciphers_extensions[_sigalgs]``: sorted 4-hex-digit ciphers, sorted extensions without SNI
    and ALPN, then signature algorithms in wire order (the ``_sigalgs`` part is left out when there
    are none). An empty list is left empty here, where :func:`ja4` writes ``000000000000``.
    Arguments as for :func:`ja4`.
    """
    a, cipher_list, ext_list, sig_list = _ja4_parts(
        transport, versions, legacy_version, sni, ciphers, extensions, alpn, sig_algs
    )
    raw = f"{a}_{','.join(cipher_list)}_{','.join(ext_list)}"
    if sig_list:
        raw += "_" + ",".join(sig_list)
    return raw


def _ja4_parts(
    transport: str,
    versions: Sequence[int],
    legacy_version: int,
    sni: str | None,
    ciphers: Sequence[int],
    extensions: Sequence[int],
    alpn: Sequence[str | bytes],
    sig_algs: Sequence[int],
) -> tuple[str, list[str], list[str], list[str]]:
    """JA4_a, then the sorted cipher list, the sorted extension list and the sig-alg list as hex."""
    if transport not in _JA4_TRANSPORTS:
        raise ValueError(f"JA4 transport must be 't', 'q' or 'd', not {transport!r}")
    _check_u16("legacy_version", legacy_version)
    if isinstance(alpn, (str, bytes)):
        # A bare string is a Sequence[str] of its characters: almost certainly a caller's mistake.
        raise TypeError("alpn must be a sequence of protocol names, not a single str/bytes")

    real_versions = _without_grease("versions", versions)
    # "the highest value in the extension": a plain numeric maximum, as the spec says and as
    # FoxIO's implementations do (for DTLS, whose numbers run downwards, this is the oldest).
    version = max(real_versions) if real_versions else legacy_version
    version_code = _JA4_VERSIONS.get(version, "00")

    cipher_values = _without_grease("ciphers", ciphers)
    ext_values = _without_grease("extensions", extensions)
    sig_values = _without_grease("sig_algs", sig_algs)

    sni_present = bool(sni) or _EXT_SNI in ext_values
    a = (
        f"{transport}{version_code}{'d' if sni_present else 'i'}"
        f"{min(len(cipher_values), 99):02d}{min(len(ext_values), 99):02d}"
        f"{_alpn_code(alpn[0] if alpn else None)}"
    )
    cipher_list = sorted(f"{v:04x}" for v in cipher_values)
    ext_list = sorted(f"{v:04x}" for v in ext_values if v not in (_EXT_SNI, _EXT_ALPN))
    sig_list = [f"{v:04x}" for v in sig_values]
    return a, cipher_list, ext_list, sig_list


def _alpn_code(first: str | bytes | None) -> str:
    """The two ALPN characters of JA4_a for the first ALPN value (JA4.md "ALPN Extension Value")."""
    raw = _alpn_bytes(first) if isinstance(first, str) else first
    if not raw:
        return "00"
    head, tail = raw[0], raw[-1]  # one byte long: that byte is both first and last
    if _is_alnum(head) and _is_alnum(tail):
        return chr(head) + chr(tail)
    # Otherwise the first and last characters of the hex form of the whole value.
    return _HEX[head >> 4] + _HEX[tail & 0x0F]


def _alpn_bytes(text: str) -> bytes:
    """Bytes of an ALPN value given as text: ``\\xNN`` is byte NN, other characters UTF-8."""
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and text[i + 1 : i + 2] == "x" and _is_hex2(text[i + 2 : i + 4]):
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            try:  # U+DC80..U+DCFF: a byte kept by bytes.decode("utf-8", "surrogateescape")
                out += ch.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                out += ch.encode("utf-8", "surrogatepass")
            i += 1
    return bytes(out)


def _is_hex2(s: str) -> bool:
    return len(s) == 2 and all(c in "0123456789abcdefABCDEF" for c in s)


def _is_alnum(b: int) -> bool:
    """ASCII 0-9, A-Z, a-z only (str.isalnum would also accept other scripts)."""
    return 0x30 <= b <= 0x39 or 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A


def _sha12(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12]


# ------------------------------------------------------------------------------------------ shared


def _without_grease(name: str, values: Sequence[int]) -> list[int]:
    """The values minus GREASE, order kept; each must be a 16-bit unsigned integer."""
    if (
        type(values) is tuple
        and all(type(v) is int for v in values)
        and (not values or (min(values) >= 0 and max(values) <= 0xFFFF))
    ):
        return [v for v in values if v not in GREASE]  # fast path: what the parser hands over
    out = []
    for v in values:
        _check_u16(name, v)
        if v not in GREASE:
            out.append(v)
    return out


def _check_u16(name: str, v: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
    if not 0 <= v <= 0xFFFF:
        raise ValueError(f"{name}: {v} is not a 16-bit value")
