"""Tests for analyzer.tls.fingerprints against published JA3/JA4 vectors and the spec's edge cases."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from analyzer.tls.fingerprints import GREASE, is_grease, ja3, ja3_string, ja4, ja4_raw

# ------------------------------------------------------------------------------------------ helpers


def _hexlist(text: str) -> list[int]:
    """'1301,1302' -> [0x1301, 0x1302]; '' -> []."""
    return [int(v, 16) for v in text.split(",")] if text else []


def _declist(text: str) -> list[int]:
    """'47-53-5' -> [47, 53, 5]; '' -> []."""
    return [int(v) for v in text.split("-")] if text else []


@dataclass(frozen=True)
class Hello:
    """ClientHello fields as ja4()/ja4_raw() take them."""

    transport: str
    versions: Sequence[int]
    legacy_version: int
    sni: str | None
    ciphers: Sequence[int]
    extensions: Sequence[int]
    alpn: Sequence[str | bytes]
    sig_algs: Sequence[int]

    def ja4(self) -> str:
        return ja4(**self.__dict__)

    def ja4_raw(self) -> str:
        return ja4_raw(**self.__dict__)


def _from_ro(
    ja4_ro: str, *, sni: str | None, alpn: Sequence[str | bytes], versions: Sequence[int] = (0x0304, 0x0303)
) -> Hello:
    """A Hello rebuilt from a published JA4_ro string (original order: ciphers, extensions incl.
    SNI and ALPN, sig algs). The transport comes from its first character."""
    parts = ja4_ro.split("_")
    sigs = parts[3] if len(parts) > 3 else ""
    return Hello(
        transport=parts[0][0],
        versions=versions,
        legacy_version=0x0303,
        sni=sni,
        ciphers=_hexlist(parts[1]),
        extensions=_hexlist(parts[2]),
        alpn=alpn,
        sig_algs=_hexlist(sigs),
    )


def _a(fingerprint: str) -> str:
    return fingerprint.split("_")[0]


# ------------------------------------------------------------------------------------------ GREASE


def test_grease_table_is_rfc8701() -> None:
    assert len(GREASE) == 16
    assert sorted(GREASE) == [(n << 12) | 0x0A00 | (n << 4) | 0x0A for n in range(16)]
    assert 0x0A0A in GREASE and 0xFAFA in GREASE
    assert is_grease(0x2A2A)
    assert not is_grease(0x0A1A)  # both bytes must match
    assert not is_grease(0x0B0B)
    assert not is_grease(0x0A)


# --------------------------------------------------------------------------------------------- JA3
# salesforce/ja3 README.md, "How it works": the two example strings and their MD5s.

README_JA3 = "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
README_JA3_MD5 = "ada70206e40642a3e4461f35503241d5"
README_JA3_NO_EXT = "769,4-5-10-9-100-98-3-6-19-18-99,,,"
README_JA3_NO_EXT_MD5 = "de350869b8c85de67a350c8d186f11e6"


def _ja3_args(text: str) -> tuple[int, list[int], list[int], list[int], list[int]]:
    version, ciphers, exts, groups, formats = text.split(",")
    return int(version), _declist(ciphers), _declist(exts), _declist(groups), _declist(formats)


@pytest.mark.parametrize(
    ("text", "md5"),
    [(README_JA3, README_JA3_MD5), (README_JA3_NO_EXT, README_JA3_NO_EXT_MD5)],
)
def test_ja3_salesforce_readme_examples(text: str, md5: str) -> None:
    args = _ja3_args(text)
    assert ja3_string(*args) == text
    assert ja3(*args) == md5


def test_ja3_removes_grease_from_every_list_and_keeps_wire_order() -> None:
    version, ciphers, exts, groups, formats = _ja3_args(README_JA3)
    greased = ja3_string(
        version,
        [0x0A0A, *ciphers[:3], 0xDADA, *ciphers[3:]],
        [0x1A1A, *exts, 0xFAFA],
        [0x2A2A, *groups],
        formats,
    )
    assert greased == README_JA3
    # Not sorted: a different wire order is a different JA3.
    assert ja3_string(version, list(reversed(ciphers)), exts, groups, formats) != README_JA3


def test_ja3_empty_lists() -> None:
    assert ja3_string(771, [], [], [], []) == "771,,,,"
    assert ja3_string(771, [0x0A0A], [0x0A0A], [0x0A0A], []) == "771,,,,"
    assert ja3(771, [], [], [], []) == hashlib.md5(b"771,,,,").hexdigest()


def test_ja3_rejects_values_that_are_not_16_bit() -> None:
    with pytest.raises(ValueError):
        ja3_string(771, [0x10000], [], [], [])
    with pytest.raises(ValueError):
        ja3_string(-1, [], [], [], [])


# ------------------------------------------------------------------------------- JA4: the spec example
# FoxIO-LLC/ja4 technical_details/JA4.md, sections "Cipher hash", "Extension hash", "Example",
# "Raw Output": the ClientHello fields in wire order and the resulting fingerprints.

SPEC_CIPHERS = "1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035"
SPEC_EXTENSIONS = "001b,0000,0033,0010,4469,0017,002d,000d,0005,0023,0012,002b,ff01,000b,000a,0015"
SPEC_SIG_ALGS = "0403,0804,0401,0503,0805,0501,0806,0601"
SPEC_JA4 = "t13d1516h2_8daaf6152771_e5627efa2ab1"
SPEC_JA4_R = (
    "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_"
    "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_"
    "0403,0804,0401,0503,0805,0501,0806,0601"
)

SPEC_HELLO = Hello(
    transport="t",
    versions=[0x0304, 0x0303],
    legacy_version=0x0303,
    sni="example.com",
    ciphers=_hexlist(SPEC_CIPHERS),
    extensions=_hexlist(SPEC_EXTENSIONS),
    alpn=["h2"],
    sig_algs=_hexlist(SPEC_SIG_ALGS),
)


def test_ja4_spec_example() -> None:
    assert SPEC_HELLO.ja4() == SPEC_JA4
    assert SPEC_HELLO.ja4_raw() == SPEC_JA4_R


def test_ja4_spec_example_without_signature_algorithms() -> None:
    # JA4.md: "If there are no signature algorithms in the hello packet, then the string ends
    # without an underscore and is hashed" ... "= 6d807ffa2a79".
    hello = Hello(**{**SPEC_HELLO.__dict__, "sig_algs": []})
    assert hello.ja4() == "t13d1516h2_8daaf6152771_6d807ffa2a79"
    assert hello.ja4_raw() == SPEC_JA4_R.rsplit("_", 1)[0]


def test_ja4_grease_anywhere_changes_nothing() -> None:
    hello = Hello(
        transport="t",
        versions=[0x7A7A, 0x0304, 0x0303],
        legacy_version=0x0303,
        sni="example.com",
        ciphers=[0x0A0A, *SPEC_HELLO.ciphers, 0x9A9A],
        extensions=[0x2A2A, *SPEC_HELLO.extensions, 0xBABA],
        alpn=["h2"],
        sig_algs=[0xCACA, *SPEC_HELLO.sig_algs],
    )
    assert hello.ja4() == SPEC_JA4
    assert hello.ja4_raw() == SPEC_JA4_R


# ------------------------------------------------------------------- JA4: FoxIO's published test data
# Each case: the JA4_ro string (original order) and JA4_r/JA4 published for one ClientHello in
# FoxIO-LLC/ja4 python/test/testdata/<file>.json, with the SNI ("domain") given there. Where
# rust/ja4/src/snapshots/ja4__insta@<file>.snap holds the same stream, its ja4 value agrees.
# The raw strings do not carry the ALPN text or supported_versions; ALPN is taken as "h2" or
# "http/1.1" to match the a part, versions as (0x0304, 0x0303) for "13" and absent for "12".


@dataclass(frozen=True)
class Vector:
    source: str
    ja4_ro: str
    ja4_r: str
    ja4: str
    sni: str | None
    alpn: tuple[str, ...]
    versions: tuple[int, ...] = (0x0304, 0x0303)


FOXIO_VECTORS = [
    Vector(  # the stream JA4.md's example was taken from (same JA4_ro)
        "python/test/testdata/tls-sni.pcapng.json stream 2",
        "t13d1516h2_1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035_"
        "001b,0000,0033,0010,4469,0017,002d,000d,0005,0023,0012,002b,ff01,000b,000a,0015_"
        "0403,0804,0401,0503,0805,0501,0806,0601",
        SPEC_JA4_R,
        SPEC_JA4,
        "accounts.google.com",
        ("h2",),
    ),
    Vector(
        "python/test/testdata/tls-sni.pcapng.json stream 5 (ALPN h1)",
        "t13d1516h1_1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035_"
        "000d,0033,0000,ff01,002b,0023,002d,0005,0012,000b,0017,4469,0010,001b,000a,0015_"
        "0403,0804,0401,0503,0805,0501,0806,0601",
        "t13d1516h1" + SPEC_JA4_R[len("t13d1516h2") :],
        "t13d1516h1_8daaf6152771_e5627efa2ab1",
        "lp-push-server-452.lastpass.com",
        ("http/1.1",),
    ),
    Vector(
        "python/test/testdata/tls-sni.pcapng.json stream 6 (no ALPN)",
        "t13d151400_1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035_"
        "0033,002b,001b,0000,0012,002d,000d,000a,0005,0023,0017,ff01,000b,0015_"
        "0403,0804,0401,0503,0805,0501,0806,0601",
        "t13d151400_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_"
        "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,ff01_"
        "0403,0804,0401,0503,0805,0501,0806,0601",
        "t13d151400_8daaf6152771_de4a06bb82e3",
        "mtalk.google.com",
        (),
    ),
    Vector(  # TLS 1.2, no supported_versions, no ALPN; rust snapshot latest.pcapng stream 3 agrees
        "python/test/testdata/latest.pcapng.json stream 3",
        "t12d190800_c02c,c02b,c030,c02f,c024,c023,c028,c027,c00a,c009,c014,c013,009d,009c,003d,003c,"
        "0035,002f,000a_0000,0005,000a,000b,000d,0023,0017,ff01_"
        "0804,0805,0806,0401,0501,0201,0403,0503,0203,0202,0601,0603",
        "t12d190800_000a,002f,0035,003c,003d,009c,009d,c009,c00a,c013,c014,c023,c024,c027,c028,c02b,"
        "c02c,c02f,c030_0005,000a,000b,000d,0017,0023,ff01_"
        "0804,0805,0806,0401,0501,0201,0403,0503,0203,0202,0601,0603",
        "t12d190800_d83cc789557e_7af1ed941c26",
        "discovery.cem.cloud.us",
        (),
        (),
    ),
    Vector(  # pre_shared_key (0029) present; rust snapshot latest.pcapng stream 5 agrees
        "python/test/testdata/latest.pcapng.json stream 5",
        "t13d1516h2_1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035_"
        "000d,0010,0000,000b,0023,4469,ff01,0033,000a,002d,002b,0005,0017,0012,001b,0029_"
        "0403,0804,0401,0503,0805,0501,0806,0601",
        "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_"
        "0005,000a,000b,000d,0012,0017,001b,0023,0029,002b,002d,0033,4469,ff01_"
        "0403,0804,0401,0503,0805,0501,0806,0601",
        "t13d1516h2_8daaf6152771_9b887d9acb53",
        "app.slack.com",
        ("h2",),
    ),
    Vector(  # rust snapshot badcurveball.pcap agrees
        "python/test/testdata/badcurveball.pcap.json stream 0",
        "t13d1615h2_1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035,000a_"
        "0000,0017,ff01,000a,000b,0023,0010,0005,000d,0012,0033,002d,002b,001b,0015_"
        "0403,0804,0401,0503,0805,0501,0806,0601,0201",
        "t13d1615h2_000a,002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_"
        "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,ff01_"
        "0403,0804,0401,0503,0805,0501,0806,0601,0201",
        "t13d1615h2_46e7e9700bed_45f260be83e2",
        "bad.curveballtest.com",
        ("h2",),
    ),
    Vector(  # rust snapshot sigalg-grease.pcapng agrees
        "python/test/testdata/sigalg-grease.pcapng.json stream 0",
        "t13d1517h2_1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035_"
        "fe0d,0010,0017,0033,44cd,ff01,000a,000d,0023,002b,000b,ca34,002d,0000,0005,001b,0012_"
        "0904,0905,0906,0403,0804,0401,0503,0805,0501,0806,0601",
        "t13d1517h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_"
        "0005,000a,000b,000d,0012,0017,001b,0023,002b,002d,0033,44cd,ca34,fe0d,ff01_"
        "0904,0905,0906,0403,0804,0401,0503,0805,0501,0806,0601",
        "t13d1517h2_8daaf6152771_cb7bf5808d99",
        "optimizationguide-pa.googleapis.com",
        ("h2",),
    ),
]


@pytest.mark.parametrize("vec", FOXIO_VECTORS, ids=[v.source for v in FOXIO_VECTORS])
def test_ja4_foxio_published_vectors(vec: Vector) -> None:
    hello = _from_ro(vec.ja4_ro, sni=vec.sni, alpn=vec.alpn, versions=vec.versions)
    assert hello.ja4_raw() == vec.ja4_r
    assert hello.ja4() == vec.ja4


def test_ja4_sigalg_grease_vector_with_grease_in_the_sig_algs() -> None:
    # The capture is named for GREASE in signature_algorithms; the published lists already omit it.
    vec = FOXIO_VECTORS[-1]
    base = _from_ro(vec.ja4_ro, sni=vec.sni, alpn=vec.alpn)
    hello = Hello(**{**base.__dict__, "sig_algs": [0x5A5A, *base.sig_algs]})
    assert hello.ja4() == vec.ja4


def test_ja4_quic_vector() -> None:
    # FoxIO-LLC/ja4 rust/ja4/src/snapshots/ja4__insta@chrome-cloudflare-quic-with-secrets.pcapng.snap
    # (udp stream 0, SNI cloudflare-quic.com) publishes q13d0310h3_55b375c5d22e_cd85d2d88918 but
    # not the raw lists. These lists (SNI 0000 and ALPN 0010 added back to make 10 extensions)
    # reproduce both published hashes, so they are the hashed input; wire order is unknown.
    hello = Hello(
        transport="q",
        versions=[0x0304],
        legacy_version=0x0303,
        sni="cloudflare-quic.com",
        ciphers=[0x1301, 0x1302, 0x1303],
        extensions=[0x0000, 0x0010, *_hexlist("000a,000d,001b,002b,002d,0033,0039,4469")],
        alpn=["h3"],
        sig_algs=_hexlist("0403,0804,0401,0503,0805,0501,0806,0601,0201"),
    )
    assert hello.ja4() == "q13d0310h3_55b375c5d22e_cd85d2d88918"


# ---------------------------------------------------------------------------- JA4: one rule at a time


def _hello(**changes: object) -> Hello:
    return Hello(**{**SPEC_HELLO.__dict__, **changes})


def test_ja4_empty_lists() -> None:
    hello = Hello("t", [], 0x0303, None, [], [], [], [])
    assert hello.ja4() == "t12i000000_000000000000_000000000000"
    assert hello.ja4_raw() == "t12i000000__"


def test_ja4_only_sni_and_alpn_extensions_hash_as_empty() -> None:
    # Both are counted in JA4_a but left out of the hashed list, which is then empty.
    hello = _hello(extensions=[0x0000, 0x0010], sig_algs=[])
    assert hello.ja4() == "t13d1502h2_8daaf6152771_000000000000"
    assert hello.ja4_raw().endswith("_")


def test_ja4_no_extensions_left_but_sig_algs_given_is_still_zeros() -> None:
    # JA4.md: "If there are no extensions in the sorted extensions list, then the value of JA4_c
    # is set to 000000000000" (taken literally; a real hello cannot have sig algs without 000d).
    hello = _hello(extensions=[0x0000], alpn=[])
    assert hello.ja4().endswith("_000000000000")
    assert hello.ja4_raw() == "t13d150100_" + SPEC_JA4_R.split("_")[1] + "__" + SPEC_SIG_ALGS


def test_ja4_sni_flag() -> None:
    assert _a(_hello().ja4())[3] == "d"
    # The spec keys on the extension's presence: an IP literal sent as SNI still gives "d".
    assert _a(_hello(sni="192.0.2.1").ja4())[3] == "d"
    assert _a(_hello(sni="2001:db8::1").ja4())[3] == "d"
    # The extension is in the list even though the name could not be read.
    assert _a(_hello(sni=None).ja4())[3] == "d"
    no_sni_ext = [e for e in SPEC_HELLO.extensions if e != 0x0000]
    assert _a(_hello(sni=None, extensions=no_sni_ext).ja4()) == "t13i1515h2"
    # A name without 0000 in the list still counts as SNI present.
    assert _a(_hello(sni="example.com", extensions=no_sni_ext).ja4())[3] == "d"
    assert _a(_hello(sni="", extensions=no_sni_ext).ja4())[3] == "i"


def test_ja4_counts_are_capped_at_99() -> None:
    ciphers = list(range(0x0100, 0x0100 + 150))
    extensions = [0x0000, 0x0010, *range(0x1000, 0x1000 + 118)]  # 120 extensions
    hello = _hello(ciphers=ciphers, extensions=extensions)
    fp, raw = hello.ja4(), hello.ja4_raw()
    assert _a(fp) == "t13d9999h2"
    # The hashes still cover every value, not just 99 of them.
    _, raw_ciphers, raw_exts, _ = raw.split("_")
    assert len(raw_ciphers.split(",")) == 150
    assert len(raw_exts.split(",")) == 118
    assert fp.split("_")[1] == hashlib.sha256(raw_ciphers.encode()).hexdigest()[:12]
    # 99 exactly is not capped differently; 100 is.
    assert _a(_hello(ciphers=ciphers[:99]).ja4())[4:6] == "99"
    assert _a(_hello(ciphers=ciphers[:100]).ja4())[4:6] == "99"
    assert _a(_hello(ciphers=ciphers[:7]).ja4())[4:6] == "07"


def test_ja4_cipher_hash_keeps_scsv_and_reserved_values() -> None:
    # JA4.md counts and hashes SCSV (00ff, 5600) and reserved values (fe00-feff) like ciphers.
    hello = _hello(ciphers=[0x1301, 0x00FF, 0x5600, 0xFE10])
    assert _a(hello.ja4())[4:6] == "04"
    assert hello.ja4_raw().split("_")[1] == "00ff,1301,5600,fe10"


@pytest.mark.parametrize(
    ("version", "code"),
    [
        (0x0304, "13"),
        (0x0303, "12"),
        (0x0302, "11"),
        (0x0301, "10"),
        (0x0300, "s3"),
        (0x0002, "s2"),
        (0xFEFF, "d1"),
        (0xFEFD, "d2"),
        (0xFEFC, "d3"),
        (0x0305, "00"),
        (0x0200, "00"),
        (0x7F1C, "00"),
    ],
)
def test_ja4_version_codes(version: int, code: str) -> None:
    assert _a(_hello(versions=[version]).ja4())[1:3] == code
    assert _a(_hello(versions=[], legacy_version=version).ja4())[1:3] == code


def test_ja4_version_choice() -> None:
    # supported_versions wins over legacy_version; highest value, wire order irrelevant; GREASE out.
    assert _a(_hello(versions=[0x0303, 0x0304], legacy_version=0x0301).ja4())[1:3] == "13"
    assert _a(_hello(versions=[0xFAFA, 0x0302], legacy_version=0x0303).ja4())[1:3] == "11"
    # Only GREASE in the list: fall back to legacy_version.
    assert _a(_hello(versions=[0x0A0A], legacy_version=0x0303).ja4())[1:3] == "12"
    # "Highest value" is numeric, also for DTLS, whose numbers count down (1.3 = fefc, 1.2 = fefd).
    assert _a(_hello(transport="d", versions=[0xFEFC, 0xFEFD]).ja4())[:3] == "dd2"
    assert _a(_hello(transport="d", versions=[0xFEFC]).ja4())[:3] == "dd3"


@pytest.mark.parametrize(
    ("alpn", "code"),
    [
        (["h2"], "h2"),
        (["http/1.1"], "h1"),
        (["h3", "h2"], "h3"),  # only the first value counts
        (["h"], "hh"),  # a single character is both first and last
        ([], "00"),
        ([""], "00"),
        (["", "h2"], "00"),  # the first value is empty
        # JA4.md's examples for a first or last byte outside 0-9 A-Z a-z:
        ([b"\xab"], "ab"),
        ([b"\xab\xcd"], "ad"),
        ([b"\x30\xab"], "3b"),
        ([b"\x30\x31\xab\xcd"], "3d"),
        ([b"\x30\xab\xcd\x31"], "01"),
        # the same values in the parser's printable form (\xNN for a non-printable byte)
        (["\\xab"], "ab"),
        (["\\xab\\xcd"], "ad"),
        (["0\\xab"], "3b"),
        (["01\\xab\\xcd"], "3d"),
        (["0\\xab\\xcd1"], "01"),
        # other non-alphanumeric first/last bytes
        (["h2 "], "60"),  # 68 32 20 -> hex "683220"
        (["_x"], "58"),  # 5f 78
        (["\\x5cx"], "58"),  # a backslash, escaped by the printable form: 5c 78
        (["\u00e9"], "c9"),  # UTF-8 c3 a9: one character, two bytes
        (["\udcab"], "ab"),  # a byte kept by bytes.decode("utf-8", "surrogateescape")
        ([b"h2"], "h2"),
        (["0"], "00"),  # "0" is alphanumeric: both characters are "0"
    ],
)
def test_ja4_alpn_code(alpn: list[str | bytes], code: str) -> None:
    assert _a(_hello(alpn=alpn).ja4())[8:10] == code
    assert _a(_hello(alpn=alpn).ja4_raw())[8:10] == code


def test_ja4_transport() -> None:
    assert _hello(transport="q").ja4().startswith("q13d")
    assert _hello(transport="d").ja4().startswith("d13d")
    with pytest.raises(ValueError):
        _hello(transport="tcp").ja4()
    with pytest.raises(ValueError):
        _hello(transport="T").ja4_raw()


def test_ja4_rejects_a_bare_string_for_alpn() -> None:
    with pytest.raises(TypeError):
        _hello(alpn="h2").ja4()
    with pytest.raises(TypeError):
        _hello(alpn=b"h2").ja4_raw()


def test_ja4_rejects_values_that_are_not_16_bit() -> None:
    with pytest.raises(ValueError):
        _hello(ciphers=[0x1_0000]).ja4()
    with pytest.raises(ValueError):
        _hello(sig_algs=[-1]).ja4()
    with pytest.raises(ValueError):
        _hello(legacy_version=0x1_0303).ja4()
    with pytest.raises(TypeError):
        _hello(extensions=["0x0000"]).ja4()


def test_ja4_hex_is_lower_case_and_four_digits() -> None:
    raw = _hello(ciphers=[0x000A, 0xC02B], sig_algs=[0x0201]).ja4_raw()
    assert raw.split("_")[1] == "000a,c02b"
    assert raw.split("_")[3] == "0201"
