"""STARTTLS / SSL-request / tunnel detection: real traces (whole, byte by byte, coalesced) and refusals by hand.

Invariant (fuzzed at the end): whatever bytes arrive, the watcher returns None, an Upgrade, a Refused or a
NoResponse, or gives up; any exception is a bug. Every Refused detail is printable and at most 80 characters.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import SAMPLES, ZEEK_TRACES

from analyzer.capture.reader import CaptureReader
from analyzer.packets import SkimStats, skim
from analyzer.tcp.reassembly import Gap, Reassembler
from analyzer.tcp.starttls import (
    LDAP_STARTTLS_OID,
    NoResponse,
    Protocol,
    Refused,
    StartTlsWatcher,
    Upgrade,
    quote,
)
from analyzer.tls.records import looks_like_client_hello, looks_like_tls_record

Result = Upgrade | Refused | NoResponse

# ---------------------------------------------------------------------- conversations from captures


@dataclass
class Conversation:
    server_port: int
    client_port: int
    pieces: list[tuple[bool, bytes]]  # (from the client, in-order bytes), in capture order

    @property
    def client(self) -> bytes:
        return b"".join(p for c, p in self.pieces if c)

    @property
    def server(self) -> bytes:
        return b"".join(p for c, p in self.pieces if not c)


def conversations(path: Path) -> list[Conversation]:
    """Every TCP connection with payload: roles from the SYN, bytes through the project's reassembler."""
    reader = CaptureReader(path)
    segs: dict[tuple[int, ...], list[tuple[int, int, int, int, bytes]]] = {}
    try:
        for blk in reader.blocks():
            cols = skim(blk, SkimStats())
            for f in range(len(cols.starts) - 1):
                rows = segs.setdefault(cols.keys[f], [])
                for i in range(int(cols.starts[f]), int(cols.starts[f + 1])):
                    off, n = int(cols.poff[i]), int(cols.plen[i])
                    data = blk.data[off : off + n].tobytes()
                    rows.append((int(cols.frame[i]), int(cols.dir[i]), int(cols.flags[i]), int(cols.seq[i]), data))
    finally:
        reader.close()
    out = []
    for key, rows in segs.items():
        rows.sort()
        client: int | None = None
        isn: list[int | None] = [None, None]
        for _, d, flags, seq, _ in rows:
            if flags & 0x02:
                isn[d] = seq
                if client is None:
                    client = 1 - d if flags & 0x10 else d
        if client is None:
            client = 0 if key[5] > key[10] else 1
        reasm = [Reassembler(isn[0]), Reassembler(isn[1])]
        pieces: list[tuple[bool, bytes]] = []
        for _, d, _, seq, data in rows:
            for piece in reasm[d].add(seq, data) if data else []:
                assert not isinstance(piece, Gap), f"{path.name}: a gap in the trace"
                pieces.append((d == client, piece))
        if pieces:
            ports = (key[5], key[10])
            out.append(Conversation(ports[1 - client], ports[client], pieces))
    return out


def one(path: Path) -> Conversation:
    if not path.exists():
        pytest.skip(f"needs {path}")
    convs = conversations(path)
    assert len(convs) == 1
    return convs[0]


# ---------------------------------------------------------------------- feeding


def as_captured(pieces: list[tuple[bool, bytes]]) -> list[tuple[bool, bytes]]:
    return pieces


def byte_by_byte(pieces: list[tuple[bool, bytes]]) -> list[tuple[bool, bytes]]:
    return [(c, p[i : i + 1]) for c, p in pieces for i in range(len(p))]


def coalesced(pieces: list[tuple[bool, bytes]]) -> list[tuple[bool, bytes]]:
    """Consecutive bytes of one direction in one chunk: last cleartext and first TLS bytes share a segment."""
    out: list[tuple[bool, bytes]] = []
    for c, p in pieces:
        if out and out[-1][0] == c:
            out[-1] = (c, out[-1][1] + p)
        else:
            out.append((c, p))
    return out


def answers_first(pieces: list[tuple[bool, bytes]]) -> list[tuple[bool, bytes]]:
    """Each server piece that follows a client piece is fed before it (an answer seen before its request)."""
    out = list(pieces)
    i = 1
    while i < len(out):
        if out[i - 1][0] and not out[i][0]:
            out[i - 1], out[i] = out[i], out[i - 1]
            i += 2
        else:
            i += 1
    return out


FEEDS: list[Callable[[list[tuple[bool, bytes]]], list[tuple[bool, bytes]]]] = [
    as_captured,
    byte_by_byte,
    coalesced,
    answers_first,
]


def check_result(r: Result) -> None:
    if isinstance(r, Refused | NoResponse):
        assert 0 < len(r.detail) <= 80
        assert r.detail.isprintable() and r.detail.isascii()


def watch(
    pieces: list[tuple[bool, bytes]], port: int | None = None, finish: bool = True
) -> tuple[StartTlsWatcher, list[Result]]:
    w = StartTlsWatcher(port)
    results: list[Result] = []
    for from_client, data in pieces:
        r = w.client_data(data) if from_client else w.server_data(data)
        if r is not None:
            check_result(r)
            results.append(r)
    if finish:
        f = w.finish()
        if f is not None:
            check_result(f)
            results.append(f)
    return w, results


# ---------------------------------------------------------------------- real traces: upgrades

# (trace, protocol, the client's last cleartext, the server's last cleartext, tunnel target)
UPGRADES = [
    ("ftp/ftp-auth-tls.pcap", Protocol.FTP, b"AUTH TLS\r\n", b"234 Proceed with negotiation.\r\n", None),
    ("mysql/encrypted.pcap", Protocol.MYSQL, None, b"mysql_native_password\x00", None),
    ("mysql/tls-12-amazon-rds.pcap", Protocol.MYSQL, None, b"mysql_native_password\x00", None),
    ("mysql/tls-13-amazon-rds.pcap", Protocol.MYSQL, None, b"mysql_native_password\x00", None),
    ("postgresql/psql-aws-ssl-preferred.pcap", Protocol.POSTGRES, bytes.fromhex("0000000804d2162f"), b"S", None),
    ("postgresql/psql-aws-ssl-require.pcap", Protocol.POSTGRES, bytes.fromhex("0000000804d2162f"), b"S", None),
    ("postgresql/psql-aws-ssl-require-15432.pcap", Protocol.POSTGRES, bytes.fromhex("0000000804d2162f"), b"S", None),
    ("rdp/rdp-no-cookie-mstshash.pcap", Protocol.RDP, bytes.fromhex("010008000b000000"), None, None),
    ("tls/imap-starttls.pcap", Protocol.IMAP, b". STARTTLS\r\n", b". OK Begin TLS negotiation now\r\n", None),
    ("tls/pop3-starttls.pcap", Protocol.POP3, b"STLS\r\n", b"+OK Begin TLS negotiation now\r\n", None),
    ("tls/irc-starttls.pcap", Protocol.IRC, b"STARTTLS\r\n", b"go ahead with TLS handshake\r\n", None),
    ("tls/xmpp-starttls.pcap", Protocol.XMPP, b"xmpp-tls'/>", b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", None),
    (
        "tls/xmpp-dialback-starttls.pcap",
        Protocol.XMPP,
        b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
        b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
        None,
    ),
    ("socks-with-ssl.pcap", Protocol.SOCKS, b"\x0ewww.google.com\x01\xbb", b"\x05\x00\x00\x01" + bytes(4) + b"\x01\xbb", "www.google.com:443"),
]  # fmt: skip


@pytest.mark.parametrize("feed", FEEDS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(("trace", "protocol", "client_tail", "server_tail", "target"), UPGRADES, ids=lambda v: str(v))
def test_real_upgrade(
    trace: str,
    protocol: Protocol,
    client_tail: bytes | None,
    server_tail: bytes | None,
    target: str | None,
    feed: Callable[[list[tuple[bool, bytes]]], list[tuple[bool, bytes]]],
) -> None:
    conv = one(ZEEK_TRACES / trace)
    w, results = watch(feed(conv.pieces), conv.server_port)
    assert len(results) == 1
    up = results[0]
    assert isinstance(up, Upgrade) and up.protocol == protocol and up.tunnel_target == target
    c, s = conv.client, conv.server
    assert looks_like_client_hello(c[up.client_offset :])
    assert looks_like_tls_record(s[up.server_offset :]) and s[up.server_offset + 5] == 2  # ServerHello
    if client_tail is not None:
        assert c[: up.client_offset].endswith(client_tail)
    if server_tail is not None:
        assert s[: up.server_offset].endswith(server_tail)
    assert w.protocol == protocol and not w.gave_up
    # the bytes of each direction already given from the offsets on are kept for the caller
    assert c[up.client_offset :].startswith(w.tls_head(True))
    assert s[up.server_offset :].startswith(w.tls_head(False))


def test_mysql_ssl_request_and_client_hello_in_one_segment() -> None:
    conv = one(ZEEK_TRACES / "mysql" / "tls-13-amazon-rds.pcap")
    pieces = coalesced(conv.pieces)
    first_client = next(p for c, p in pieces if c)
    assert len(first_client) > 36 and looks_like_client_hello(first_client[36:])  # one chunk holds both
    w = StartTlsWatcher()
    w.server_data(pieces[0][1])
    up = w.client_data(first_client)
    assert up == Upgrade(Protocol.MYSQL, 36, 78)
    assert w.tls_head(True) == first_client[36:]
    assert w.tls_head(False) == b""


def test_rdp_hybrid_ex_selected() -> None:
    conv = one(ZEEK_TRACES / "rdp" / "rdp-no-cookie-mstshash.pcap")
    cr, cc = conv.pieces[0][1], conv.pieces[1][1]
    assert cr[-4:] == b"\x0b\x00\x00\x00" and cc[-4:] == b"\x08\x00\x00\x00"  # SSL|HYBRID|HYBRID_EX; HYBRID_EX
    _, results = watch(conv.pieces)
    assert results == [Upgrade(Protocol.RDP, 19, 19)]


def test_rdp_standard_security_is_not_tls() -> None:
    conv = one(ZEEK_TRACES / "rdp" / "rdp-x509.pcap")
    w, results = watch(conv.pieces, conv.server_port)
    assert results == [] and w.gave_up and w.protocol == Protocol.RDP
    assert "standard RDP security" in w.reason


def test_sslh_ssh_and_direct_tls_are_not_followed() -> None:
    path = ZEEK_TRACES / "ssl-and-ssh-using-sslh.pcap"
    if not path.exists():
        pytest.skip(f"needs {path}")
    ssh, tls = sorted(conversations(path), key=lambda cv: cv.client_port)
    w, results = watch(ssh.pieces, 443)
    assert results == [] and w.gave_up and w.protocol is None and w.reason == "SSH"
    w, results = watch(tls.pieces, 443)
    assert results == [] and w.gave_up and "plain TLS" in w.reason


def test_websocket_tunnel_is_recognised_not_unwrapped() -> None:
    conv = one(ZEEK_TRACES / "websocket" / "wstunnel-https.pcap")
    for feed in FEEDS:
        w, results = watch(feed(conv.pieces), conv.server_port)
        assert results == [] and w.gave_up and w.protocol == Protocol.WEBSOCKET
        assert w.reason == "WebSocket tunnel carrying TLS: frames are not unwrapped"


# ---------------------------------------------------------------------- real traces: SMTP refusals


def smtp_sample(name: str) -> list[Conversation]:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"needs {path}")
    return sorted(conversations(path), key=lambda cv: cv.client_port)


@pytest.mark.parametrize("feed", FEEDS, ids=lambda f: f.__name__)
def test_real_smtp_454(feed: Callable[[list[tuple[bool, bytes]]], list[tuple[bool, bytes]]]) -> None:
    curl, s_client = smtp_sample("starttls-smtp-454.pcap")
    refusal = Refused(Protocol.SMTP, "454 4.7.0 TLS not available due to local problem")
    w, results = watch(feed(curl.pieces), 25)
    assert results == [refusal] and w.outcome == refusal and not w.gave_up
    # s_client sends its ClientHello anyway: the watcher stops there, the refusal stays the outcome
    w, results = watch(feed(s_client.pieces), 25)
    assert results == [refusal] and w.gave_up and w.outcome == refusal
    assert w.reason.startswith("binary data where a command was expected: \\x16")


@pytest.mark.parametrize("feed", FEEDS, ids=lambda f: f.__name__)
def test_real_smtp_not_offered_and_not_recognized(
    feed: Callable[[list[tuple[bool, bytes]]], list[tuple[bool, bytes]]],
) -> None:
    curl, s_client = smtp_sample("starttls-smtp-refused.pcap")
    # curl --ssl-reqd: EHLO's answer lacks STARTTLS, curl closes; known at the end of the stream
    w, results = watch(feed(curl.pieces), 587, finish=False)
    assert results == [] and w.protocol == Protocol.SMTP
    assert w.finish() == Refused(Protocol.SMTP, "STARTTLS not offered: 250-localhost / 250-8BITMIME / 250 HELP")
    w, results = watch(feed(s_client.pieces), 587)
    assert results == [Refused(Protocol.SMTP, '500 Error: command "STARTTLS" not recognized')]


# ---------------------------------------------------------------------- hand-written transcripts


def hello(msg_type: int = 1) -> bytes:
    body = b"\x03\x03" + bytes(32) + b"\x00" + (b"\x00\x02\x13\x01\x01\x00" if msg_type == 1 else b"\x13\x01\x00")
    hs = bytes([msg_type]) + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs


CH, SH = hello(1), hello(2)


def run(script: list[tuple[str, bytes]], port: int | None = None) -> tuple[StartTlsWatcher, list[Result]]:
    """``script``: ("C", bytes) from the client, ("S", bytes) from the server; also checked byte by byte."""
    pieces = [(who == "C", data) for who, data in script]
    w, results = watch(pieces, port)
    w1, results1 = watch(byte_by_byte(pieces), port)
    assert results1 == results and w1.protocol == w.protocol and w1.gave_up == w.gave_up
    return w, results


def offsets(script: list[tuple[str, bytes]], upto_c: int, upto_s: int) -> tuple[int, int]:
    """Stream offsets after the first ``upto_c`` client and ``upto_s`` server pieces."""
    c = [d for who, d in script if who == "C"]
    s = [d for who, d in script if who == "S"]
    return sum(map(len, c[:upto_c])), sum(map(len, s[:upto_s]))


SMTP_EHLO = [
    ("S", b"220 mx.example ESMTP\r\n"),
    ("C", b"EHLO client.example\r\n"),
    ("S", b"250-mx.example\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n"),
    ("C", b"STARTTLS\r\n"),
]


def test_smtp_upgrade_with_client_hello_in_the_starttls_segment() -> None:
    script = [*SMTP_EHLO[:-1], ("C", b"STARTTLS\r\n" + CH), ("S", b"220 2.0.0 Ready to start TLS\r\n" + SH)]
    w, results = run(script, 25)
    c_end = len(b"EHLO client.example\r\nSTARTTLS\r\n")
    s_end = offsets(script, 0, 2)[1] + len(b"220 2.0.0 Ready to start TLS\r\n")
    assert results == [Upgrade(Protocol.SMTP, c_end, s_end)]
    assert w.tls_head(True) == CH and w.tls_head(False) == SH


@pytest.mark.parametrize(
    "answer",
    [b"454 4.7.0 TLS not available due to local problem\r\n", b"502 5.5.1 Unrecognized command\r\n"],
)
def test_smtp_refused(answer: bytes) -> None:
    w, results = run([*SMTP_EHLO, ("S", answer), ("C", b"QUIT\r\n"), ("S", b"221 Bye\r\n")])
    assert results == [Refused(Protocol.SMTP, answer.decode().strip())]
    assert w.finish() is None  # already decided


def test_smtp_not_offered_then_quit() -> None:
    script = [
        ("S", b"220 mx ESMTP\r\n"),
        ("C", b"EHLO c\r\n"),
        ("S", b"250-mx\r\n250 SIZE 1000\r\n"),
        ("C", b"QUIT\r\n"),
    ]
    _, results = run(script)
    assert results == [Refused(Protocol.SMTP, "STARTTLS not offered: 250-mx / 250 SIZE 1000")]


def test_smtp_in_clear_is_given_up_and_no_response_is_reported() -> None:
    script = [*SMTP_EHLO[:-1], ("C", b"MAIL FROM:<a@b>\r\n")]
    w, results = run(script)
    assert results == [] and w.gave_up and "MAIL" in w.reason
    w, results = run(SMTP_EHLO)
    assert results == [NoResponse(Protocol.SMTP, "no answer to STARTTLS")]
    w, results = run([*SMTP_EHLO, ("S", b"220 Ready to st")])
    assert results == [NoResponse(Protocol.SMTP, "no answer to STARTTLS (incomplete answer: 220 Ready to st)")]


def test_smtp_limits() -> None:
    w, results = run([("S", b"220 mx\r\n")] + [("C", b"NOOP\r\n"), ("S", b"250 ok\r\n")] * 60)
    assert results == [] and w.gave_up and "50 commands" in w.reason
    long_reply = b"250 " + b"x" * 70 + b"\r\n"
    w, results = run([("S", b"220 mx\r\n"), ("C", b"EHLO c\r\n")] + [("S", long_reply)] * 300)
    assert results == [] and w.gave_up and w.reason == "16 KiB in one direction without an upgrade"


FTP_START = [
    ("S", b"220-Welcome\r\n  to the FTP service\r\n220 ready\r\n"),
    ("C", b"AUTH TLS\r\n"),
]


def test_ftp_refused_then_auth_ssl_accepted() -> None:
    script = [
        *FTP_START,
        ("S", b"500 AUTH TLS not understood\r\n"),
        ("C", b"AUTH SSL\r\n"),
        ("S", b"234 AUTH SSL successful\r\n"),
        ("C", CH),
    ]
    w, results = run(script, 21)
    c_end, s_end = offsets(script, 2, 3)
    assert results == [Refused(Protocol.FTP, "500 AUTH TLS not understood"), Upgrade(Protocol.FTP, c_end, s_end)]
    assert w.outcome == results[-1]


def test_ftp_refused_and_login_in_clear() -> None:
    script = [
        *FTP_START,
        ("S", b"534 Local policy on server does not allow TLS secure connections.\r\n"),
        ("C", b"USER anonymous\r\n"),
        ("S", b"331 Please specify the password.\r\n"),
        ("C", b"PASS x\r\n"),
    ]
    w, results = run(script)
    assert results == [Refused(Protocol.FTP, "534 Local policy on server does not allow TLS secure connections.")]
    assert w.gave_up and w.outcome == results[0]


IMAP_START = [
    ("S", b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"),
    ("C", b"a1 CAPABILITY\r\n"),
    ("S", b"* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\n"),
    ("C", b"a2 STARTTLS\r\n"),
]


@pytest.mark.parametrize("answer", [b"a2 NO STARTTLS unavailable\r\n", b"a2 BAD Unknown command\r\n"])
def test_imap_refused(answer: bytes) -> None:
    _, results = run([*IMAP_START, ("S", answer)])
    assert results == [Refused(Protocol.IMAP, answer.decode().strip())]


def test_imap_reused_tag_and_literal() -> None:
    script = [
        ("S", b"* OK ready\r\n"),
        ("C", b"x ID {5}\r\n"),
        ("S", b"+ go on\r\n"),
        ("C", b"hello\r\n"),
        ("S", b"* ID NIL\r\nx OK ID done\r\n"),
        ("C", b"x STARTTLS\r\n"),
        ("S", b"x OK go\r\n"),
    ]
    _, results = run(script)
    c_end, s_end = offsets(script, 3, 4)
    assert results == [Upgrade(Protocol.IMAP, c_end, s_end)]


def test_imap_login_in_clear() -> None:
    w, results = run([("S", b"* OK ready\r\n"), ("C", b"1 LOGIN joe secret\r\n")])
    assert results == [] and w.gave_up and w.protocol == Protocol.IMAP


def test_pop3_capa_then_refused() -> None:
    script = [
        ("S", b"+OK POP3 ready\r\n"),
        ("C", b"CAPA\r\n"),
        ("S", b"+OK\r\nUSER\r\nSTLS\r\n.\r\n"),
        ("C", b"STLS\r\n"),
        ("S", b"-ERR TLS not configured\r\n"),
    ]
    _, results = run(script)
    assert results == [Refused(Protocol.POP3, "-ERR TLS not configured")]


def test_pop3_capa_then_upgrade() -> None:
    script = [
        ("S", b"+OK POP3 ready\r\n"),
        ("C", b"CAPA\r\n"),
        ("S", b"+OK\r\nSTLS\r\n.\r\n"),
        ("C", b"STLS\r\n"),
        ("S", b"+OK Begin TLS\r\n"),
    ]
    _, results = run(script)
    assert results == [Upgrade(Protocol.POP3, *offsets(script, 2, 3))]


def ber(tag: int, value: bytes) -> bytes:
    n = len(value)
    length = bytes([n]) if n < 0x80 else bytes([0x81, n]) if n < 0x100 else bytes([0x82]) + n.to_bytes(2, "big")
    return bytes([tag]) + length + value


def ldap(msgid: int, op: bytes) -> bytes:
    return ber(0x30, ber(0x02, bytes([msgid])) + op)


LDAP_STARTTLS = ldap(2, ber(0x77, ber(0x80, LDAP_STARTTLS_OID)))


def ldap_response(msgid: int, code: int, diag: bytes = b"", name: bytes = b"") -> bytes:
    value = ber(0x0A, bytes([code])) + ber(0x04, b"") + ber(0x04, diag) + (ber(0x8A, name) if name else b"")
    return ldap(msgid, ber(0x78, value))


LDAP_ROOT_DSE = [
    ("C", ldap(1, ber(0x63, ber(0x04, b"") + bytes.fromhex("0a01000a0100020100020100010100") + ber(0x87, b"objectClass")))),
    ("S", ldap(1, ber(0x64, ber(0x04, b"") + ber(0x30, b""))) + ldap(1, ber(0x65, ber(0x0A, b"\x00") + ber(0x04, b"") + ber(0x04, b"")))),
]  # fmt: skip


def test_ldap_search_then_starttls() -> None:
    script = [*LDAP_ROOT_DSE, ("C", LDAP_STARTTLS), ("S", ldap_response(2, 0, name=LDAP_STARTTLS_OID))]
    w, results = run(script, 389)
    assert results == [Upgrade(Protocol.LDAP, *offsets(script, 2, 2))]
    assert w.protocol == Protocol.LDAP


def test_ldap_refused() -> None:
    script = [("C", LDAP_STARTTLS), ("S", ldap_response(2, 2, b"unsupported extended operation"))]
    _, results = run(script)
    assert results == [Refused(Protocol.LDAP, "resultCode 2 (protocolError): unsupported extended operation")]
    notice = ldap_response(0, 52, b"going away", b"1.3.6.1.4.1.1466.20036")
    _, results = run([("C", LDAP_STARTTLS), ("S", notice)])
    assert results == [Refused(Protocol.LDAP, "notice of disconnection, resultCode 52 (unavailable): going away")]


def test_ldap_long_form_lengths() -> None:
    big = ldap(1, ber(0x63, ber(0x04, b"x" * 300)))
    assert big[1] == 0x82
    script = [("C", big), ("C", LDAP_STARTTLS), ("S", ldap_response(2, 0))]
    _, results = run(script)
    assert results == [Upgrade(Protocol.LDAP, *offsets(script, 2, 1))]


PG_SSL = bytes.fromhex("0000000804d2162f")
PG_GSSENC = bytes.fromhex("0000000804d21630")


def test_postgres_refused() -> None:
    startup = bytes.fromhex("0000002900030000") + b"user\x00postgres\x00database\x00postgres\x00\x00"
    w, results = run([("C", PG_SSL), ("S", b"N"), ("C", startup)])
    assert results == [Refused(Protocol.POSTGRES, "N (the server does not accept SSL)")]
    assert w.gave_up and w.outcome == results[0]
    err = b"SFATAL\x00C08P01\x00Munsupported frontend protocol 1234.5679\x00\x00"
    _, results = run([("C", PG_SSL), ("S", b"E" + (len(err) + 4).to_bytes(4, "big") + err)])
    assert results == [Refused(Protocol.POSTGRES, "E (error): unsupported frontend protocol 1234.5679")]


def test_postgres_gssenc_then_ssl() -> None:
    _, results = run([("C", PG_GSSENC), ("S", b"N"), ("C", PG_SSL + CH), ("S", b"S" + SH)])
    assert results == [Upgrade(Protocol.POSTGRES, 16, 2)]
    w, results = run([("C", PG_GSSENC), ("S", b"G")])
    assert results == [] and w.gave_up and "GSSAPI" in w.reason
    w, results = run([("C", PG_SSL)])
    assert results == [NoResponse(Protocol.POSTGRES, "no answer to SSLRequest")]


def mysql_greeting(caps: int) -> bytes:
    body = b"\x0a8.0.36\x00" + (7).to_bytes(4, "little") + b"abcdefgh" + b"\x00" + (caps & 0xFFFF).to_bytes(2, "little")
    body += b"\x21\x02\x00" + (caps >> 16).to_bytes(2, "little") + b"\x15" + bytes(10) + b"ijklmnopqrst\x00"
    return len(body).to_bytes(3, "little") + b"\x00" + body


def test_mysql_without_tls() -> None:
    login = b"\x85\xa6\x3f\x20" + bytes(28) + b"root\x00\x00"
    packet = len(login).to_bytes(3, "little") + b"\x01" + login
    w, results = run([("S", mysql_greeting(0xF7FF)), ("C", packet)])  # no CLIENT_SSL offered
    assert results == [] and w.gave_up and "does not offer TLS" in w.reason
    w, results = run([("S", mysql_greeting(0xFFFF)), ("C", packet)])
    assert results == [] and w.gave_up and "logs in without TLS" in w.reason


def test_mysql_upgrade() -> None:
    ssl_request = (32).to_bytes(3, "little") + b"\x01" + (0x20FFAE85).to_bytes(4, "little") + bytes(28)
    greeting = mysql_greeting(0xFFFF)
    _, results = run([("S", greeting), ("C", ssl_request + CH)])
    assert results == [Upgrade(Protocol.MYSQL, 36, len(greeting))]


STARTTLS_XML = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
XMPP_START = [
    ("C", b"<?xml version='1.0'?><stream:stream to='example.com' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"),
    ("S", b"<?xml version='1.0'?><stream:stream from='example.com' id='1' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>"),
]  # fmt: skip


def test_xmpp_failure() -> None:
    failure = b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>"
    _, results = run([*XMPP_START, ("C", STARTTLS_XML), ("S", failure)])
    assert results == [Refused(Protocol.XMPP, "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")]


def test_xmpp_long_form_proceed_and_sasl_in_clear() -> None:
    script = [*XMPP_START, ("C", b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'></starttls>"), ("S", b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'></proceed>")]  # fmt: skip
    _, results = run(script)
    assert results == [Upgrade(Protocol.XMPP, *offsets(script, 2, 2))]
    w, results = run(
        [*XMPP_START, ("C", b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGo=</auth>")]
    )
    assert results == [] and w.gave_up and w.protocol == Protocol.XMPP


def rdp_tpkt(x224_code: int, neg: bytes, cookie: bytes = b"") -> bytes:
    x224 = bytes([6 + len(cookie) + len(neg), x224_code]) + bytes(5) + cookie + neg
    return b"\x03\x00" + (4 + len(x224)).to_bytes(2, "big") + x224


def test_rdp_no_response_only_when_tls_was_offered() -> None:
    cr_tls = rdp_tpkt(0xE0, bytes.fromhex("0100080003000000"))
    _, results = run([("C", cr_tls)])
    assert results == [NoResponse(Protocol.RDP, "no answer to X.224 Connection Request (SSL|HYBRID)")]
    _, results = run([("C", rdp_tpkt(0xE0, bytes.fromhex("0100080000000000")))])
    assert results == []


def test_rdp_refused() -> None:
    cr = rdp_tpkt(0xE0, bytes.fromhex("0100080003000000"), b"Cookie: mstshash=bob\r\n")
    cc = rdp_tpkt(0xD0, bytes.fromhex("0300080002000000"))
    _, results = run([("C", cr), ("S", cc)])
    assert results == [Refused(Protocol.RDP, "RDP_NEG_FAILURE SSL_NOT_ALLOWED_BY_SERVER (2)")]
    cc_ssl = rdp_tpkt(0xD0, bytes.fromhex("0200080001000000"))
    _, results = run([("C", cr), ("S", cc_ssl)])
    assert results == [Upgrade(Protocol.RDP, len(cr), len(cc_ssl))]


@pytest.mark.parametrize(
    "answer",
    [
        b":irc.example 691 * :STARTTLS failed (Wrong moon phase)\r\n",
        b":irc.example 421 * STARTTLS :Unknown command\r\n",
    ],
)
def test_irc_refused(answer: bytes) -> None:
    script = [
        ("S", b":irc.example NOTICE * :*** Looking up your hostname...\r\n"),
        ("C", b"STARTTLS\r\n"),
        ("S", answer),
    ]
    _, results = run(script)
    assert results == [Refused(Protocol.IRC, answer.decode().strip())]


def test_irc_registered_in_clear() -> None:
    script = [("C", b"CAP LS 302\r\nNICK bob\r\nUSER bob 0 * :Bob\r\n"), ("S", b":irc.example 001 bob :Welcome\r\n")]
    w, results = run(script)
    assert results == [] and w.gave_up and w.protocol == Protocol.IRC


def test_socks4_refused_and_socks4a_target() -> None:
    request = b"\x04\x01\x01\xbb\x5d\xb8\xd8\x22user\x00"
    _, results = run([("C", request), ("S", b"\x00\x5b" + bytes(6))])
    assert results == [Refused(Protocol.SOCKS, "SOCKS4 reply 0x5b (rejected or failed)")]
    request_4a = b"\x04\x01\x01\xbb\x00\x00\x00\x01\x00example.org\x00"
    script = [("C", request_4a), ("S", b"\x00\x5a" + bytes(6)), ("C", CH), ("S", SH)]
    _, results = run(script)
    assert results == [Upgrade(Protocol.SOCKS, len(request_4a), 8, "example.org:443")]


def test_socks5_refusals() -> None:
    _, results = run([("C", b"\x05\x01\x00"), ("S", b"\x05\xff")])
    assert results == [Refused(Protocol.SOCKS, "SOCKS5: no acceptable authentication method")]
    request = b"\x05\x01\x00\x01\x0a\x00\x00\x01\x03\xe1"
    reply = b"\x05\x05\x00\x01" + bytes(6)
    _, results = run([("C", b"\x05\x01\x00"), ("S", b"\x05\x00"), ("C", request), ("S", reply)])
    assert results == [Refused(Protocol.SOCKS, "SOCKS5 reply 5 (connection refused)")]


def test_socks5_password_ipv6_and_pipelined_request() -> None:
    greeting, auth = b"\x05\x02\x00\x02", b"\x01\x03bob\x06secret"
    request = b"\x05\x01\x00\x04" + bytes(15) + b"\x01" + b"\x01\xbb"
    reply = b"\x05\x00\x00\x01" + bytes(6)
    script = [("C", greeting), ("S", b"\x05\x02"), ("C", auth + request + CH), ("S", b"\x01\x00" + reply + SH)]
    w, results = run(script)
    assert results == [Upgrade(Protocol.SOCKS, len(greeting + auth + request), 2 + 2 + len(reply), "[::1]:443")]
    assert w.tls_head(True) == CH and w.tls_head(False) == SH


def test_socks5_tunnel_without_tls_and_nested_starttls() -> None:
    script = [("C", b"\x05\x01\x00"), ("S", b"\x05\x00"), ("C", b"\x05\x01\x00\x03\x07mx.test\x00\x19")]
    script += [("S", b"\x05\x00\x00\x01" + bytes(6))]
    w, results = run([*script, ("C", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")])
    assert results == [] and w.gave_up and w.protocol == Protocol.SOCKS
    inner = [*SMTP_EHLO, ("S", b"220 go ahead\r\n")]
    w, results = run(script + inner)
    c_end, s_end = offsets(script + inner, 4, 5)
    assert results == [Upgrade(Protocol.SMTP, c_end, s_end, "mx.test:25")]


def test_http_connect_refused_then_authenticated() -> None:
    connect = b"CONNECT db.example:5432 HTTP/1.1\r\nHost: db.example:5432\r\n\r\n"
    denied = (
        b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 5\r\n\r\nnope!"
    )
    again = connect[:-2] + b"Proxy-Authorization: Basic Ym9iOng=\r\n\r\n"
    ok = b"HTTP/1.1 200 Connection established\r\n\r\n"
    script = [("C", connect), ("S", denied), ("C", again), ("S", ok), ("C", CH), ("S", SH)]
    w, results = run(script, 3128)
    assert results == [
        Refused(Protocol.HTTP_CONNECT, "HTTP/1.1 407 Proxy Authentication Required"),
        Upgrade(Protocol.HTTP_CONNECT, len(connect + again), len(denied + ok), "db.example:5432"),
    ]
    assert w.protocol == Protocol.HTTP_CONNECT


def test_http_connect_forbidden_chunked_and_no_answer() -> None:
    connect = b"CONNECT evil.example:443 HTTP/1.1\r\n\r\n"
    forbidden = b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nnope!\r\n0\r\n\r\n"
    _, results = run([("C", connect), ("S", forbidden)])
    assert results == [Refused(Protocol.HTTP_CONNECT, "HTTP/1.1 403 Forbidden")]
    _, results = run([("C", connect)])
    assert results == [NoResponse(Protocol.HTTP_CONNECT, "no answer to CONNECT evil.example:443")]


def test_http_upgrade_to_tls_and_plain_http() -> None:
    request = b"OPTIONS * HTTP/1.1\r\nHost: printer\r\nUpgrade: TLS/1.0\r\nConnection: Upgrade\r\n\r\n"
    switching = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: TLS/1.0, HTTP/1.1\r\nConnection: Upgrade\r\n\r\n"
    _, results = run([("C", request), ("S", switching), ("C", CH)], 631)
    assert results == [Upgrade(Protocol.HTTP_UPGRADE, len(request), len(switching))]
    _, results = run([("C", request), ("S", b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n")])
    assert results == [Refused(Protocol.HTTP_UPGRADE, "HTTP/1.1 426 Upgrade Required")]
    w, results = run([("C", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")])
    assert results == [] and w.gave_up and w.protocol is None


def test_unknown_and_tls_from_the_first_byte() -> None:
    w, results = run([("C", bytes(range(256)) * 3), ("S", b"\xff" * 40)])
    assert results == [] and w.gave_up
    w, results = run([("C", CH), ("S", SH)])
    assert results == [] and w.gave_up and "plain TLS" in w.reason
    w, results = run([("S", b"SSH-2.0-OpenSSH_9.2\r\n")])
    assert w.gave_up and w.reason == "SSH"


def test_after_the_upgrade_input_is_ignored() -> None:
    w, results = run([*SMTP_EHLO, ("S", b"220 go\r\n")])
    assert isinstance(results[0], Upgrade)
    assert w.client_data(b"\x00garbage") is None and w.server_data(b"more") is None
    assert w.finish() is None and w.outcome == results[0] and not w.gave_up


def test_quote() -> None:
    assert quote(b"454 TLS not available\r\n") == "454 TLS not available"
    assert quote(b"a\x00b\\c\xffd") == "a\\x00b\\\\c\\xffd"
    assert quote(b"250-a\r\n250 b\r\n") == "250-a / 250 b"
    long = quote(b"\x01" * 100)
    assert len(long) <= 80 and long.endswith("\\x01...")


# ---------------------------------------------------------------------- fuzz


SCRIPTS: list[list[tuple[str, bytes]]] = [
    [*SMTP_EHLO, ("S", b"220 go\r\n"), ("C", CH)],
    [*FTP_START, ("S", b"234 ok\r\n")],
    [*IMAP_START, ("S", b"a2 OK go\r\n")],
    [("C", LDAP_STARTTLS), ("S", ldap_response(2, 0))],
    [("C", PG_GSSENC), ("S", b"N"), ("C", PG_SSL), ("S", b"S")],
    [("S", mysql_greeting(0xFFFF)), ("C", (32).to_bytes(3, "little") + b"\x01" + b"\x00\x08\x00\x00" + bytes(28))],
    [*XMPP_START, ("C", STARTTLS_XML), ("S", b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")],
    [("C", rdp_tpkt(0xE0, bytes.fromhex("0100080003000000"))), ("S", rdp_tpkt(0xD0, bytes.fromhex("0200080002000000")))],
    [("C", b"\x05\x01\x00"), ("S", b"\x05\x00"), ("C", b"\x05\x01\x00\x03\x01a\x01\xbb"), ("S", b"\x05\x00\x00\x01" + bytes(6)), ("C", CH)],
    [("C", b"CONNECT a:443 HTTP/1.1\r\n\r\n"), ("S", b"HTTP/1.0 200 OK\r\n\r\n"), ("C", CH)],
]  # fmt: skip


def test_fuzz_mutated_and_random_input_never_raises() -> None:
    rng = random.Random(8)
    for script in SCRIPTS:
        _, results = run(script)
        assert results and isinstance(results[-1], Upgrade)  # the unmutated scripts upgrade
        for _ in range(150):
            mutated = []
            for who, data in script:
                b = bytearray(data)
                for _ in range(rng.randint(0, 3)):
                    if b:
                        b[rng.randrange(len(b))] = rng.randrange(256)
                if rng.random() < 0.2:
                    b = b[: rng.randrange(len(b) + 1)]
                mutated.append((who == "C", bytes(b)))
            cut = rng.randint(1, 16)
            chunks = [(c, d[i : i + cut]) for c, d in mutated for i in range(0, len(d), cut)]
            watch(chunks, rng.choice([None, 25, 21, 6667]))
    for _ in range(300):
        noise = [(rng.random() < 0.5, rng.randbytes(rng.randint(1, 64))) for _ in range(rng.randint(1, 6))]
        watch(noise)
