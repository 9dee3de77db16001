"""Sans-IO detector of TLS that starts later in a cleartext conversation: STARTTLS, SSL requests, RDP, tunnels."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum

from analyzer.tls.records import looks_like_client_hello, looks_like_tls

LIMIT = 16 * 1024  # bytes per direction watched before giving up
MAX_COMMANDS = 50  # client commands / messages watched before giving up
MAX_LINE = 4096
DETAIL_MAX = 80

SMTP_PORTS = frozenset({24, 25, 465, 587, 2525})
FTP_PORTS = frozenset({21, 990, 2121})
IRC_PORTS = frozenset({194, 6665, 6666, 6667, 6668, 6669, 7000})


class Protocol(StrEnum):
    """The cleartext conversation in which TLS may start (the value is the ``starttls`` column)."""

    SMTP = "smtp"  # also LMTP (LHLO)
    IMAP = "imap"
    POP3 = "pop3"
    FTP = "ftp"
    LDAP = "ldap"
    POSTGRES = "postgres"
    MYSQL = "mysql"
    XMPP = "xmpp"
    RDP = "rdp"
    IRC = "irc"
    SOCKS = "socks"  # SOCKS4, SOCKS4a, SOCKS5
    HTTP_CONNECT = "http_connect"
    HTTP_UPGRADE = "http_upgrade"  # RFC 2817 "Upgrade: TLS/1.0"
    WEBSOCKET = "websocket"  # recognised only: TLS inside WebSocket frames is not unwrapped


@dataclass(frozen=True, slots=True)
class Upgrade:
    """TLS begins: the ClientHello at ``client_offset`` of the client's stream, the server's first TLS byte at
    ``server_offset`` of the server's stream (offsets count every byte given to the watcher, from 0)."""

    protocol: Protocol
    client_offset: int
    server_offset: int
    tunnel_target: str | None = None  # CONNECT host:port / SOCKS target


@dataclass(frozen=True, slots=True)
class Refused:
    """The server refused the upgrade (or, for SMTP, did not offer it to a client that then left)."""

    protocol: Protocol
    detail: str  # the server's answer, printable, \\xNN escaped, at most 80 characters


@dataclass(frozen=True, slots=True)
class NoResponse:
    """The client asked to upgrade and the server never answered (known only at the end of the stream)."""

    protocol: Protocol
    detail: str


Outcome = Upgrade | Refused | NoResponse


class _GiveUp(Exception):
    """Not (or no longer) a conversation we follow; the message says why."""


@dataclass(frozen=True, slots=True)
class _Tunnel:
    """A proxy tunnel is open: the inner conversation starts at these offsets."""

    protocol: Protocol
    client_offset: int
    server_offset: int
    target: str


# ---------------------------------------------------------------------- text helpers

_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def quote(data: bytes, limit: int = DETAIL_MAX) -> str:
    """Printable rendering of a server answer: lines joined by ' / ', other bytes \\xNN, at most ``limit`` chars."""
    lines = [ln for ln in data.replace(b"\r\n", b"\n").split(b"\n") if ln]
    text = " / ".join("".join(_char(b) for b in ln) for ln in lines)
    return clip(text, limit)


def _char(b: int) -> str:
    if b == 0x5C:
        return "\\\\"
    return chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}"


_TOKEN = re.compile(r"\\x[0-9a-f]{2}|\\\\|.", re.S)


def clip(text: str, limit: int = DETAIL_MAX) -> str:
    """``text`` cut to ``limit`` characters with '...', never inside a \\xNN escape."""
    if len(text) <= limit:
        return text
    out, n = [], 0
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        if n + len(tok) > limit - 3:
            break
        out.append(tok)
        n += len(tok)
    return "".join(out) + "..."


def _line(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """The line at ``pos`` without its CRLF/LF, and where the next one starts; None until it is complete."""
    i = buf.find(b"\n", pos)
    if i < 0:
        if len(buf) - pos > MAX_LINE:
            raise _GiveUp("line longer than 4 KiB")
        return None
    return bytes(buf[pos:i]).rstrip(b"\r"), i + 1


def _text_line(buf: bytearray, pos: int, what: str) -> tuple[bytes, int] | None:
    """Like _line, but the bytes must be text (a TLS record or other binary data gives up at once)."""
    if pos < len(buf) and _CONTROL.match(buf, pos):
        raise _GiveUp(f"binary data where {what} was expected: {quote(bytes(buf[pos : pos + 12]), 40)}")
    got = _line(buf, pos)
    if got is not None and _CONTROL.search(got[0]):
        raise _GiveUp(f"binary data where {what} was expected: {quote(got[0], 40)}")
    return got


def _verb(line: bytes) -> tuple[bytes, bytes]:
    verb, _, arg = line.strip().partition(b" ")
    if not (0 < len(verb) <= 16 and verb.replace(b"-", b"").isalpha()):
        raise _GiveUp(f"not a command: {quote(line, 40)}")
    return verb.upper(), arg.strip()


def _u16be(b: bytes | bytearray, i: int) -> int:
    return (b[i] << 8) | b[i + 1]


def _u32be(b: bytes | bytearray, i: int) -> int:
    return int.from_bytes(b[i : i + 4], "big")


def _u16le(b: bytes | bytearray, i: int) -> int:
    return b[i] | (b[i + 1] << 8)


def _u32le(b: bytes | bytearray, i: int) -> int:
    return int.from_bytes(b[i : i + 4], "little")


# ---------------------------------------------------------------------- handlers


class _Handler:
    """Follows one protocol over the watcher's two buffers (absolute offsets); re-entrant ``advance``."""

    KIND: Protocol | None = None

    def __init__(self, w: StartTlsWatcher, c0: int, s0: int) -> None:
        self.w = w
        self.kind = self.KIND  # None until the conversation says (SMTP or FTP; WebSocket or TLS upgrade)
        self.cpos = c0
        self.spos = s0
        self.commands = 0
        self.asked: str | None = None  # the upgrade request waiting for its answer

    @property
    def protocol(self) -> Protocol | None:
        return self.kind

    def _proto(self) -> Protocol:
        p = self.protocol
        if p is None:
            raise _GiveUp("protocol not resolved")
        return p

    def advance(self) -> Upgrade | Refused | _Tunnel | None:
        raise NotImplementedError

    def finish(self) -> Refused | None:
        return None

    def count(self) -> None:
        self.commands += 1
        if self.commands > MAX_COMMANDS:
            raise _GiveUp(f"{MAX_COMMANDS} commands without an upgrade")

    def upgrade(self, c: int, s: int) -> Upgrade:
        self.asked = None
        return Upgrade(self._proto(), c, s, self.w._target)

    def refused(self, detail: str) -> Refused:
        self.asked = None
        return Refused(self._proto(), clip(detail))


# -- SMTP and FTP: "ddd text" replies, one final reply per command, the greeting first


def _code_reply(buf: bytearray, pos: int) -> tuple[int, bytes, int] | None:
    """(code, whole reply, end) of a (possibly multi-line) SMTP/FTP reply."""
    got = _text_line(buf, pos, "a reply")
    if got is None:
        return None
    first, end = got
    if len(first) < 3 or not first[:3].isdigit() or first[3:4] not in (b"", b" ", b"-"):
        raise _GiveUp(f"not a reply: {quote(first, 40)}")
    lines = [first]
    if first[3:4] == b"-":
        while True:
            got = _text_line(buf, end, "a reply")
            if got is None:
                return None
            nxt, end = got
            lines.append(nxt)
            if len(lines) > 200:
                raise _GiveUp("reply of more than 200 lines")
            if nxt[:3] == first[:3] and nxt[3:4] in (b"", b" "):
                break
    return int(first[:3]), b"\r\n".join(lines), end


_SMTP_HELLO = frozenset({b"EHLO", b"HELO", b"LHLO"})
_SMTP_CLEAR = frozenset({b"MAIL", b"RCPT", b"DATA", b"BDAT", b"AUTH", b"ETRN", b"ATRN"})
_FTP_VERBS = frozenset(
    {b"USER", b"PASS", b"ACCT", b"AUTH", b"FEAT", b"SYST", b"OPTS", b"CLNT", b"HOST", b"PBSZ", b"PROT", b"TYPE"}
    | {b"PWD", b"XPWD", b"CWD", b"EPSV", b"PASV", b"EPRT", b"PORT", b"SITE", b"LANG", b"CCC", b"ADAT", b"MODE"}
)
_FTP_TLS_MECHS = frozenset({b"TLS", b"SSL", b"TLS-C", b"TLS-P"})
_FTP_CLEAR = frozenset({b"PASS", b"LIST", b"NLST", b"MLSD", b"RETR", b"STOR", b"APPE"})


class _CodeHandler(_Handler):
    """SMTP (STARTTLS -> 220) and FTP (AUTH TLS/SSL -> 234); the first client command tells them apart."""

    def __init__(self, w: StartTlsWatcher, c0: int, s0: int) -> None:
        super().__init__(w, c0, s0)
        self.replies: list[tuple[int, bytes, int]] = []  # final replies; [0] is the greeting
        self.cmds: list[tuple[bytes, bytes, int]] = []  # (verb, argument, end offset)
        self.pending: int | None = None  # index in cmds of the upgrade command
        self.not_offered_said = False

    def _resolve(self, verb: bytes, arg: bytes) -> Protocol:
        if verb in _SMTP_HELLO or verb == b"STARTTLS":
            return Protocol.SMTP
        if verb in _FTP_VERBS:
            return Protocol.FTP
        port = self.w._port
        if port in FTP_PORTS:
            return Protocol.FTP
        if port in SMTP_PORTS:
            return Protocol.SMTP
        greeting = self.replies[0][1].upper() if self.replies else b""
        return Protocol.FTP if b"FTP" in greeting else Protocol.SMTP

    def _parse_replies(self) -> None:
        """Replies as far as the commands seen can have caused them (what follows may be TLS already)."""
        while len(self.replies) <= len(self.cmds) and (r := _code_reply(self.w._s, self.spos)) is not None:
            code, text, self.spos = r
            if code < 200:
                continue  # preliminary (FTP 1yz), not an answer
            if not self.replies and code != 220:
                raise _GiveUp(f"the server's greeting is not 220: {quote(text, 60)}")
            self.replies.append(r)

    def advance(self) -> Upgrade | Refused | _Tunnel | None:
        w = self.w
        while True:
            self._parse_replies()
            if self.pending is not None:
                if len(self.replies) <= self.pending + 1:
                    return None
                code, text, end = self.replies[self.pending + 1]
                cmd_end = self.cmds[self.pending][2]
                self.pending = None
                ok = (220,) if self.kind == Protocol.SMTP else (234, 334)
                return self.upgrade(cmd_end, end) if code in ok else self.refused(quote(text))
            got = _text_line(w._c, self.cpos, "a command")
            if got is None:
                return None
            line, self.cpos = got
            if not line.strip():
                continue
            verb, arg = _verb(line)
            self.count()
            self.cmds.append((verb, arg, self.cpos))
            if self.kind is None:
                self.kind = self._resolve(verb, arg)
            if self.kind == Protocol.SMTP:
                if verb == b"STARTTLS":
                    self.pending, self.asked = len(self.cmds) - 1, "STARTTLS"
                elif verb == b"QUIT":
                    refusal = self._not_offered()
                    if refusal is not None:
                        return refusal
                elif verb in _SMTP_CLEAR:
                    raise _GiveUp(f"SMTP continues in clear ({verb.decode()})")
            else:
                if verb == b"AUTH" and arg.upper() in _FTP_TLS_MECHS:
                    self.pending, self.asked = len(self.cmds) - 1, f"AUTH {arg.upper().decode()}"
                elif verb in _FTP_CLEAR:
                    raise _GiveUp(f"FTP continues in clear ({verb.decode()})")

    def _not_offered(self) -> Refused | None:
        """EHLO answered without STARTTLS, and the client left (QUIT or close) without sending more."""
        if self.kind != Protocol.SMTP or self.not_offered_said:
            return None
        hello = [i for i, (v, _, _) in enumerate(self.cmds) if v == b"EHLO"]
        if not hello or len(self.replies) <= hello[-1] + 1:
            return None
        if any(v != b"QUIT" for v, _, _ in self.cmds[hello[-1] + 1 :]):
            return None
        code, text, _ = self.replies[hello[-1] + 1]
        keywords = {ln[4:].split(b" ")[0].upper() for ln in text.split(b"\r\n")}
        if code != 250 or b"STARTTLS" in keywords:
            return None
        self.not_offered_said = True
        return self.refused("STARTTLS not offered: " + quote(text, 60))

    def finish(self) -> Refused | None:
        return self._not_offered()


# -- IMAP: tagged commands, the tagged answer decides


_IMAP_LITERAL = re.compile(rb"\{(\d{1,9})\+?\}$")


def _imap_line(buf: bytearray, pos: int, what: str) -> tuple[bytes, int] | None:
    """A logical IMAP line: literals ({n} then n bytes) are skipped."""
    parts: list[bytes] = []
    while True:
        got = _text_line(buf, pos, what)
        if got is None:
            return None
        line, pos = got
        parts.append(line)
        m = _IMAP_LITERAL.search(line)
        if m is None:
            return b" ".join(parts), pos
        n = int(m.group(1))
        if n > LIMIT:
            raise _GiveUp("IMAP literal larger than the watch limit")
        if pos + n > len(buf):
            return None
        pos += n


class _ImapHandler(_Handler):
    KIND = Protocol.IMAP

    def __init__(self, w: StartTlsWatcher, c0: int, s0: int) -> None:
        super().__init__(w, c0, s0)
        self.greeted = False
        self.tagged: list[tuple[bytes, bytes, bytes, int]] = []  # (tag, status, line, end)
        self.cmds: list[tuple[bytes, bytes, int]] = []  # (tag, verb, end)
        self.pending: int | None = None
        self.capability: bytes | None = None  # the last CAPABILITY list the server sent

    def advance(self) -> Upgrade | Refused | _Tunnel | None:
        w = self.w
        while True:
            self._parse_server()
            if self.pending is not None:
                tag, _, cmd_end = self.cmds[self.pending]
                earlier = sum(1 for t, _, _ in self.cmds[: self.pending] if t == tag)
                answers = [a for a in self.tagged if a[0] == tag]
                if len(answers) <= earlier:
                    return None
                _, status, line, end = answers[earlier]
                self.pending = None
                return self.upgrade(cmd_end, end) if status == b"OK" else self.refused(quote(line))
            got = _imap_line(w._c, self.cpos, "a command")
            if got is None:
                return None
            line, self.cpos = got
            if not line.strip():
                continue
            tag, _, rest = line.partition(b" ")
            verb, _ = _verb(rest)
            self.count()
            self.cmds.append((tag, verb, self.cpos))
            if verb == b"STARTTLS":
                self.pending, self.asked = len(self.cmds) - 1, "STARTTLS"
            elif verb in (b"LOGIN", b"AUTHENTICATE"):
                raise _GiveUp(f"IMAP continues in clear ({verb.decode()})")

    def finish(self) -> Refused | None:
        """The server's capabilities lack STARTTLS and the client left without logging in in clear."""
        verbs = {v for _, v, _ in self.cmds}
        if self.capability is None or b"STARTTLS" in self.capability.upper().split():
            return None
        if not verbs <= {b"CAPABILITY", b"LOGOUT", b"NOOP", b"ID"}:
            return None
        return self.refused("STARTTLS not offered: CAPABILITY " + quote(self.capability, 60))

    def _parse_server(self) -> None:
        """Server lines while the greeting or a command's tagged answer is due (what follows may be TLS)."""
        w = self.w
        while (not self.greeted or len(self.tagged) < len(self.cmds)) and (
            got := _imap_line(w._s, self.spos, "a response")
        ) is not None:
            line, self.spos = got
            cap = re.search(rb"(?i)(?:^\* |\[)CAPABILITY ([^\]]*)", line)
            if cap:
                self.capability = cap.group(1)
            if not self.greeted:
                if not re.match(rb"(?i)\* (OK|PREAUTH)\b", line):
                    raise _GiveUp(f"IMAP greeting: {quote(line, 60)}")
                self.greeted = True
            elif not line.startswith((b"*", b"+")):
                tag, _, rest = line.partition(b" ")
                self.tagged.append((tag, rest.split(b" ")[0].upper(), line, self.spos))


# -- POP3: one answer per command, some answers multi-line


class _Pop3Handler(_Handler):
    KIND = Protocol.POP3

    def __init__(self, w: StartTlsWatcher, c0: int, s0: int) -> None:
        super().__init__(w, c0, s0)
        self.replies: list[tuple[bool, bytes, int]] = []  # [0] is the greeting
        self.cmds: list[tuple[bytes, bytes, int]] = []
        self.pending: int | None = None
        self.capa: list[bytes] | None = None  # the lines of the last CAPA answer

    def _multiline(self, i: int) -> bool:
        verb, arg, _ = self.cmds[i]
        return verb in (b"CAPA", b"RETR", b"TOP") or (verb in (b"LIST", b"UIDL", b"AUTH") and not arg)

    def _parse_replies(self) -> None:
        w = self.w
        while True:
            k = len(self.replies)
            if k > 0 and len(self.cmds) < k:
                return  # the answer's shape depends on a command not seen yet
            got = _text_line(w._s, self.spos, "a reply")
            if got is None:
                return
            line, end = got
            if not line.startswith((b"+OK", b"-ERR")):
                raise _GiveUp(f"not a POP3 reply: {quote(line, 40)}")
            ok = line.startswith(b"+OK")
            if k == 0 and not ok:
                raise _GiveUp(f"POP3 greeting: {quote(line, 60)}")
            if ok and k > 0 and self._multiline(k - 1):
                lines: list[bytes] = []
                while True:
                    got = _line(w._s, end)
                    if got is None:
                        return
                    body, end = got
                    if body == b".":
                        break
                    lines.append(body.strip())
                if self.cmds[k - 1][0] == b"CAPA":
                    self.capa = lines
            self.spos = end
            self.replies.append((ok, line, end))

    def advance(self) -> Upgrade | Refused | _Tunnel | None:
        self._parse_replies()
        while True:
            if self.pending is not None:
                if len(self.replies) <= self.pending + 1:
                    return None
                ok, line, end = self.replies[self.pending + 1]
                cmd_end = self.cmds[self.pending][2]
                self.pending = None
                return self.upgrade(cmd_end, end) if ok else self.refused(quote(line))
            got = _text_line(self.w._c, self.cpos, "a command")
            if got is None:
                return None
            line, self.cpos = got
            if not line.strip():
                continue
            verb, arg = _verb(line)
            self.count()
            self.cmds.append((verb, arg, self.cpos))
            if verb == b"STLS":
                self.pending, self.asked = len(self.cmds) - 1, "STLS"
            elif verb in (b"PASS", b"APOP") or (verb == b"AUTH" and arg):
                raise _GiveUp(f"POP3 continues in clear ({verb.decode()})")
            self._parse_replies()

    def finish(self) -> Refused | None:
        """The CAPA answer lacks STLS and the client left without logging in in clear."""
        self._parse_replies()
        if self.capa is None or any(line.upper().split()[:1] == [b"STLS"] for line in self.capa if line):
            return None
        if not {v for v, _, _ in self.cmds} <= {b"CAPA", b"QUIT", b"NOOP"}:
            return None
        return self.refused("STLS not offered: CAPA " + quote(b" ".join(self.capa), 60))


# -- IRC: STARTTLS, then 670 (go ahead) or 691 (failed); unsolicited lines in between


class _IrcHandler(_Handler):
    KIND = Protocol.IRC

    def __init__(self, w: StartTlsWatcher, c0: int, s0: int) -> None:
        super().__init__(w, c0, s0)
        self.sent: int | None = None  # end of the client's STARTTLS line
        self.answer: tuple[bool, bytes, int] | None = None
        self.answered = False

    def advance(self) -> Upgrade | Refused | _Tunnel | None:
        w = self.w
        while self.sent is None and (got := _text_line(w._c, self.cpos, "a command")) is not None:
            line, self.cpos = got
            if not line.strip():
                continue
            self.count()
            if _verb(line)[0] == b"STARTTLS":
                self.sent, self.asked = self.cpos, "STARTTLS"
        while self.answer is None and (got := _text_line(w._s, self.spos, "a message")) is not None:
            line, self.spos = got
            words = line.split()
            if words and words[0].startswith(b":"):
                words = words[1:]
            cmd = words[0].upper() if words else b""
            if cmd == b"670":
                self.answer = (True, line, self.spos)
            elif (
                cmd == b"691"
                or (cmd in (b"421", b"451") and b"STARTTLS" in line.upper())
                or (cmd == b"ERROR" and self.sent is not None)
            ):
                self.answer = (False, line, self.spos)
            elif cmd == b"001" and self.sent is None:
                raise _GiveUp("IRC registration completed without STARTTLS")
        if self.sent is None or self.answer is None or self.answered:
            return None
        self.answered = True
        ok, line, end = self.answer
        return self.upgrade(self.sent, end) if ok else self.refused(quote(line))


# -- XMPP: <starttls/>, then <proceed/> or <failure/>

_XML_NAME = rb"(?:[\w.-]+:)?"
_XMPP_STARTTLS = re.compile(rb"<" + _XML_NAME + rb"starttls\b[^>]*>")
_XMPP_CLEAR = re.compile(rb"<" + _XML_NAME + rb"(auth|iq|message|presence|result|verify)\b")
_XMPP_ANSWER = re.compile(rb"<(" + _XML_NAME + rb"(?:proceed|failure)|stream:error)\b[^>]*>")


def _xml_element_end(buf: bytearray, m: re.Match[bytes], name: bytes) -> int | None:
    """End of the element whose start tag ``m`` matched (self-closing or up to its end tag)."""
    if m.group(0).endswith(b"/>"):
        return m.end()
    close = re.compile(rb"</\s*" + re.escape(name) + rb"\s*>").search(buf, m.end())
    return close.end() if close else None


class _XmppHandler(_Handler):
    KIND = Protocol.XMPP

    def __init__(self, w: StartTlsWatcher, c0: int, s0: int) -> None:
        super().__init__(w, c0, s0)
        self.header_ok = False
        self.sent: int | None = None
        self.answered = False

    def advance(self) -> Upgrade | Refused | _Tunnel | None:
        w = self.w
        c = w._c
        if not self.header_ok:
            m = re.compile(rb"<stream[:\s][^>]*>").search(c, self.cpos)
            if m is None:
                if len(c) - self.cpos > 2048 or _CONTROL.search(c, self.cpos):
                    raise _GiveUp("XML without an XMPP stream header")
                return None
            if b"jabber" not in m.group(0) and b"etherx" not in m.group(0):
                raise _GiveUp("XML stream that is not XMPP")
            self.header_ok, self.cpos = True, m.end()
        if self.sent is None:
            tls = _XMPP_STARTTLS.search(c, self.cpos)
            clear = _XMPP_CLEAR.search(c, self.cpos)
            if clear is not None and (tls is None or clear.start() < tls.start()):
                raise _GiveUp(f"XMPP continues in clear (<{clear.group(1).decode()}>)")
            if tls is None:
                return None
            name = tls.group(0)[1:].split(b" ")[0].split(b">")[0].rstrip(b"/")
            end = _xml_element_end(c, tls, name)
            if end is None:
                return None
            self.count()
            self.sent, self.asked = end, "<starttls/>"
        if self.answered:
            return None
        s = w._s
        pos = self.spos
        while (m := _XMPP_ANSWER.search(s, pos)) is not None:
            name = m.group(1)
            if name.endswith(b"failure") and b"xmlns" in m.group(0) and b"xmpp-tls" not in m.group(0):
                pos = m.end()  # e.g. a SASL failure: not the answer to <starttls/>
                continue
            end = _xml_element_end(s, m, name)
            if end is None:
                return None
            self.answered = True
            if name.endswith(b"proceed"):
                return self.upgrade(self.sent, end)
            return self.refused(quote(bytes(s[m.start() : end])))
        return None


# -- LDAP: ExtendedRequest StartTLS, ExtendedResponse resultCode (minimal BER)

LDAP_STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
LDAP_NOTICE_OF_DISCONNECTION = b"1.3.6.1.4.1.1466.20036"
LDAP_RESULT_CODES = {
    0: "success",
    1: "operationsError",
    2: "protocolError",
    3: "timeLimitExceeded",
    7: "authMethodNotSupported",
    8: "strongerAuthRequired",
    11: "adminLimitExceeded",
    12: "unavailableCriticalExtension",
    13: "confidentialityRequired",
    48: "inappropriateAuthentication",
    50: "insufficientAccessRights",
    51: "busy",
    52: "unavailable",
    53: "unwillingToPerform",
    80: "other",
}


def _tlv(buf: bytes | bytearray, pos: int, end: int) -> tuple[int, int, int] | None:
    """(tag, value start, value end) of the BER element at ``pos``; value end may lie beyond ``end``.

    None when the header itself is not complete.
    """
    if pos + 2 > end:
        return None
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise _GiveUp("BER: multi-byte tag")
    n = buf[pos + 1]
    p = pos + 2
    if n & 0x80:
        k = n & 0x7F
        if not 1 <= k <= 4:
            raise _GiveUp("BER: indefinite or oversized length")
        if p + k > end:
            return None
        n = int.from_bytes(buf[p : p + k], "big")
        p += k
    return tag, p, p + n


def _inner(buf: bytes | bytearray, pos: int, end: int) -> tuple[int, int, int]:
    got = _tlv(buf, pos, end)
    if got is None or got[2] > end:
        raise _GiveUp("BER: truncated element")
    return got


class _LdapHandler(_Handler):
    KIND = Protocol.LDAP

    def __init__(self, w: StartTlsWatcher, c0: int, s0: int) -> None:
        super().__init__(w, c0, s0)
        self.pending: tuple[int, int] | None = None  # (messageID, end of the request)
        self.responses: list[tuple[int, int, bytes, bytes, int]] = []  # (id, resultCode, diag, name, end)

    @staticmethod
    def _message(buf: bytearray, pos: int) -> tuple[int, int, int, int, int] | None:
        """(messageID, protocolOp tag, op value start, op value end, message end) of a complete message."""
        got = _tlv(buf, pos, len(buf))
        if got is None:
            return None
        tag, p, end = got
        if tag != 0x30:
            raise _GiveUp(f"not an LDAP message (tag {tag:#04x})")
        if end - pos > LIMIT:
            raise _GiveUp("LDAP message larger than the watch limit")
        if end > len(buf):
            return None
        t, ip, ie = _inner(buf, p, end)
        if t != 0x02 or not 1 <= ie - ip <= 4:
            raise _GiveUp("LDAP message without a messageID")
        op, vp, ve = _inner(buf, ie, end)
        if op & 0xC0 != 0x40:
            raise _GiveUp("LDAP message without an application-class protocolOp")
        return int.from_bytes(buf[ip:ie], "big"), op & 0x1F, vp, ve, end

    def advance(self) -> Upgrade | Refused | _Tunnel | None:
        w = self.w
        while self.pending is None and (msg := self._message(w._c, self.cpos)) is not None:
            mid, op, vp, ve, self.cpos = msg
            self.count()
            if op == 23:  # ExtendedRequest
                t, p, e = _inner(w._c, vp, ve)
                if t == 0x80 and bytes(w._c[p:e]) == LDAP_STARTTLS_OID:
                    self.pending, self.asked = (mid, self.cpos), "StartTLS extended request"
        # server messages up to an extended response (after the StartTLS answer come TLS bytes)
        while (msg := self._message(w._s, self.spos)) is not None:
            mid, op, vp, ve, self.spos = msg
            if op != 24:  # not an ExtendedResponse
                continue
            t, p, e = _inner(w._s, vp, ve)
            code = int.from_bytes(w._s[p:e], "big") if t == 0x0A else -1
            t, p, e = _inner(w._s, e, ve)  # matchedDN
            t, p, e = _inner(w._s, e, ve)  # diagnosticMessage
            diag = bytes(w._s[p:e])
            name = b""
            while e < ve:
                t, p, e = _inner(w._s, e, ve)
                if t == 0x8A:
                    name = bytes(w._s[p:e])
            self.responses.append((mid, code, diag, name, self.spos))
            if self.pending is None or mid in (0, self.pending[0]):
                break
        if self.pending is None:
            return None
        want, req_end = self.pending
        for mid, code, diag, name, end in self.responses:
            if mid == want or (mid == 0 and name == LDAP_NOTICE_OF_DISCONNECTION):
                self.pending = None
                self.responses.clear()
                if mid == want and code == 0:
                    return self.upgrade(req_end, end)
                what = "notice of disconnection, " if mid == 0 else ""
                detail = f"{what}resultCode {code} ({LDAP_RESULT_CODES.get(code, 'unknown')})"
                return self.refused(detail + (": " + quote(diag) if diag else ""))
        return None


# -- PostgreSQL: SSLRequest / GSSENCRequest, answered by one byte

PG_SSL_REQUEST = 80877103  # 04d2162f
PG_GSSENC_REQUEST = 80877104  # 04d21630
PG_CANCEL_REQUEST = 80877102
PG_PROTOCOL_3 = 196608
PG_PROTOCOL_2 = 131072


class _PostgresHandler(_Handler):
    KIND = Protocol.POSTGRES

    def __init__(self, w: StartTlsWatcher, c0: int, s0: int) -> None:
        super().__init__(w, c0, s0)
        self.request: tuple[int, int] | None = None  # (code, end) waiting for its one-byte answer

    def advance(self) -> Upgrade | Refused | _Tunnel | None:
        w = self.w
        c, s = w._c, w._s
        while True:
            if self.request is None:
                if self.cpos + 8 > len(c):
                    return None
                length, code = _u32be(c, self.cpos), _u32be(c, self.cpos + 4)
                if code in (PG_PROTOCOL_3, PG_PROTOCOL_2):
                    raise _GiveUp("PostgreSQL startup message in clear")
                if code == PG_CANCEL_REQUEST:
                    raise _GiveUp("PostgreSQL cancel request")
                if length != 8 or code not in (PG_SSL_REQUEST, PG_GSSENC_REQUEST):
                    raise _GiveUp("not a PostgreSQL start")
                self.count()
                self.cpos += 8
                self.request = (code, self.cpos)
                self.asked = "SSLRequest" if code == PG_SSL_REQUEST else "GSSENCRequest"
            code, req_end = self.request
            if self.spos >= len(s):
                return None
            answer = s[self.spos]
            if answer == ord("E"):  # ErrorResponse (a server older than the request)
                if self.spos + 5 > len(s):
                    return None
                end = self.spos + 1 + _u32be(s, self.spos + 1)
                if end > len(s):
                    return None
                fields = bytes(s[self.spos + 5 : end]).split(b"\x00")
                text = next((f[1:] for f in fields if f.startswith(b"M")), b"")
                self.spos, self.request = end, None
                if code == PG_SSL_REQUEST:
                    return self.refused("E (error): " + quote(text))
                self.asked = None
                continue
            self.spos += 1
            self.request = None
            if code == PG_GSSENC_REQUEST:
                self.asked = None
                if answer == ord("G"):
                    raise _GiveUp("PostgreSQL GSSAPI encryption (not TLS)")
                if answer != ord("N"):
                    raise _GiveUp(f"unexpected answer to GSSENCRequest: {quote(bytes([answer]))}")
                continue
            if answer == ord("S"):
                return self.upgrade(req_end, self.spos)
            if answer == ord("N"):
                return self.refused("N (the server does not accept SSL)")
            raise _GiveUp(f"unexpected answer to SSLRequest: {quote(bytes([answer]))}")


# -- MySQL: greeting with CLIENT_SSL, then the client's 32-byte SSL request

MYSQL_CLIENT_SSL = 0x0800


def _mysql_packet(buf: bytearray, pos: int) -> tuple[int, int, int] | None:
    """(sequence id, payload start, end) of a complete MySQL packet."""
    if pos + 4 > len(buf):
        return None
    n = buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16)
    if n > LIMIT:
        raise _GiveUp("MySQL packet larger than the watch limit")
    end = pos + 4 + n
    return (buf[pos + 3], pos + 4, end) if end <= len(buf) else None


def _mysql_greeting(head: bytes | bytearray) -> bool:
    if len(head) < 6:
        return False
    n = head[0] | (head[1] << 8) | (head[2] << 16)
    return head[3] == 0 and head[4] in (9, 10, 0xFF) and 8 <= n <= 1024


class _MysqlHandler(_Handler):
    KIND = Protocol.MYSQL

    def __init__(self, w: StartTlsWatcher, c0: int, s0: int) -> None:
        super().__init__(w, c0, s0)
        self.greeting_end: int | None = None
        self.server_ssl = False

    def advance(self) -> Upgrade | Refused | _Tunnel | None:
        w = self.w
        s, c = w._s, w._c
        if self.greeting_end is None:
            pkt = _mysql_packet(s, self.spos)
            if pkt is None:
                return None
            _, p, end = pkt
            if s[p] == 0xFF:
                raise _GiveUp(f"MySQL server error instead of a greeting: {quote(bytes(s[p + 3 : end]), 60)}")
            if s[p] != 10:
                raise _GiveUp(f"MySQL protocol version {s[p]} (no TLS)")
            nul = s.find(b"\x00", p + 1, end)
            q = nul + 1 + 4 + 8 + 1  # connection id, auth-plugin-data part 1, filler
            if nul < 0 or q + 2 > end:
                raise _GiveUp("truncated MySQL greeting")
            caps = _u16le(s, q)
            self.server_ssl = bool(caps & MYSQL_CLIENT_SSL)
            self.greeting_end = self.spos = end
        pkt = _mysql_packet(c, self.cpos)
        if pkt is None:
            return None
        seq, p, end = pkt
        self.count()
        caps = _u32le(c, p) if end - p >= 4 else _u16le(c, p) if end - p >= 2 else 0
        if seq == 1 and caps & MYSQL_CLIENT_SSL and end - p <= 32:
            return self.upgrade(end, self.greeting_end)
        why = "the client logs in without TLS" if self.server_ssl else "the server does not offer TLS (no CLIENT_SSL)"
        raise _GiveUp(f"MySQL in clear: {why}")


# -- RDP: X.224 Connection Request / Confirm with RDP_NEG_REQ / RDP_NEG_RSP

RDP_PROTOCOLS = {0: "RDP", 1: "SSL", 2: "HYBRID", 4: "RDSTLS", 8: "HYBRID_EX", 0x10: "RDSAAD"}
RDP_FAILURES = {
    1: "SSL_REQUIRED_BY_SERVER",
    2: "SSL_NOT_ALLOWED_BY_SERVER",
    3: "SSL_CERT_NOT_ON_SERVER",
    4: "INCONSISTENT_FLAGS",
    5: "HYBRID_REQUIRED_BY_SERVER",
    6: "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER",
}


def _tpkt(buf: bytearray, pos: int) -> tuple[int, int] | None:
    """(X.224 start, end) of a complete TPKT."""
    if pos + 4 > len(buf):
        return None
    if buf[pos] != 3 or buf[pos + 1] != 0 or _u16be(buf, pos + 2) < 7:
        raise _GiveUp("not a TPKT")
    end = pos + _u16be(buf, pos + 2)
    return (pos + 4, end) if end <= len(buf) else None


def _rdp_neg(buf: bytearray, x224: int, end: int) -> tuple[int, int] | None:
    """(type, 32-bit value) of the RDP_NEG_* structure after the X.224 header and any cookie."""
    p = x224 + 7
    if buf[p : p + 7] == b"Cookie:":
        nl = buf.find(b"\r\n", p, end)
        p = end if nl < 0 else nl + 2
    if p + 8 > end or buf[p] not in (1, 2, 3):
        return None
    return buf[p], _u32le(buf, p + 4)


def _protocols(mask: int) -> str:
    return "|".join(name for bit, name in RDP_PROTOCOLS.items() if bit and mask & bit) or "RDP"


class _RdpHandler(_Handler):
    KIND = Protocol.RDP

    def __init__(self, w: StartTlsWatcher, c0: int, s0: int) -> None:
        super().__init__(w, c0, s0)
        self.request_end: int | None = None

    def advance(self) -> Upgrade | Refused | _Tunnel | None:
        w = self.w
        if self.request_end is None:
            got = _tpkt(w._c, self.cpos)
            if got is None:
                return None
            x, end = got
            if w._c[x + 1] & 0xF0 != 0xE0:
                raise _GiveUp("TPKT that is not an X.224 Connection Request")
            self.count()
            neg = _rdp_neg(w._c, x, end)
            requested = neg[1] if neg is not None and neg[0] == 1 else 0
            self.request_end = self.cpos = end
            if requested:  # the client offers TLS-based security: an answer is due
                self.asked = f"X.224 Connection Request ({_protocols(requested)})"
        got = _tpkt(w._s, self.spos)
        if got is None:
            return None
        x, end = got
        if w._s[x + 1] & 0xF0 != 0xD0:
            raise _GiveUp("TPKT that is not an X.224 Connection Confirm")
        self.spos = end
        neg = _rdp_neg(w._s, x, end)
        if neg is not None and neg[0] == 3:
            return self.refused(f"RDP_NEG_FAILURE {RDP_FAILURES.get(neg[1], 'unknown')} ({neg[1]})")
        if neg is None or neg[0] != 2 or neg[1] == 0:
            raise _GiveUp("RDP with standard RDP security (no TLS)")
        return self.upgrade(self.request_end, end)


# -- SOCKS 4 / 4a / 5: the handshake, then the tunnel

SOCKS4_REPLIES = {0x5B: "rejected or failed", 0x5C: "identd unreachable", 0x5D: "identd user mismatch"}
SOCKS5_REPLIES = {
    1: "general failure",
    2: "not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}


def _socks5_address(buf: bytearray, p: int) -> tuple[str, int] | None:
    """(host:port, end) of a SOCKS5 ATYP/address/port at ``p``."""
    if p >= len(buf):
        return None
    atyp = buf[p]
    if atyp == 1:
        n, host = 4, ""
    elif atyp == 4:
        n, host = 16, ""
    elif atyp == 3:
        if p + 1 >= len(buf):
            return None
        n = 1 + buf[p + 1]
        host = ""
    else:
        raise _GiveUp(f"SOCKS5 address type {atyp}")
    end = p + 1 + n + 2
    if end > len(buf):
        return None
    raw = bytes(buf[p + 1 : p + 1 + n])
    if atyp == 1:
        host = str(ipaddress.IPv4Address(raw))
    elif atyp == 4:
        host = f"[{ipaddress.IPv6Address(raw)}]"
    else:
        host = quote(raw[1:], 255)
    return f"{host}:{_u16be(buf, end - 2)}", end


class _SocksHandler(_Handler):
    KIND = Protocol.SOCKS

    def __init__(self, w: StartTlsWatcher, c0: int, s0: int) -> None:
        super().__init__(w, c0, s0)
        self.version = w._c[c0]
        self.stage = 0
        self.method = -1
        self.target = ""
        self.request_end = 0

    def advance(self) -> Upgrade | Refused | _Tunnel | None:
        return self._v4() if self.version == 4 else self._v5()

    def _v4(self) -> Upgrade | Refused | _Tunnel | None:
        c, s = self.w._c, self.w._s
        if self.stage == 0:  # VN CD DSTPORT DSTIP USERID\0 [HOST\0]
            if self.cpos + 9 > len(c):
                return None
            if c[self.cpos + 1] != 1:
                raise _GiveUp("SOCKS4 BIND")
            nul = c.find(b"\x00", self.cpos + 8)
            if nul < 0:
                return None
            port, ip = _u16be(c, self.cpos + 2), bytes(c[self.cpos + 4 : self.cpos + 8])
            end = nul + 1
            if ip[:3] == b"\x00\x00\x00" and ip[3]:  # SOCKS4a: the host name follows
                nul = c.find(b"\x00", end)
                if nul < 0:
                    return None
                host = quote(bytes(c[end:nul]), 255)
                end = nul + 1
            else:
                host = str(ipaddress.IPv4Address(ip))
            self.count()
            self.target, self.request_end, self.cpos, self.stage = f"{host}:{port}", end, end, 1
            self.asked = f"SOCKS4 CONNECT {self.target}"
        if self.stage != 1 or self.spos + 8 > len(s):
            return None
        code = s[self.spos + 1]
        self.spos += 8
        self.stage = 9
        if code != 0x5A:
            return self.refused(f"SOCKS4 reply {code:#04x} ({SOCKS4_REPLIES.get(code, 'unknown')})")
        self.asked = None
        return _Tunnel(Protocol.SOCKS, self.request_end, self.spos, self.target)

    def _v5(self) -> Upgrade | Refused | _Tunnel | None:
        c, s = self.w._c, self.w._s
        if self.stage == 0:  # greeting: VER NMETHODS METHODS
            if self.cpos + 2 > len(c) or self.cpos + 2 + c[self.cpos + 1] > len(c):
                return None
            if c[self.cpos + 1] == 0:
                raise _GiveUp("SOCKS5 greeting without methods")
            self.count()
            self.cpos += 2 + c[self.cpos + 1]
            self.stage, self.asked = 1, "SOCKS5 greeting"
        if self.stage == 1:  # method selection
            if self.spos + 2 > len(s):
                return None
            if s[self.spos] != 5:
                raise _GiveUp("not a SOCKS5 answer")
            self.method = s[self.spos + 1]
            self.spos += 2
            if self.method == 0xFF:
                self.stage = 9
                return self.refused("SOCKS5: no acceptable authentication method")
            if self.method not in (0, 2):
                raise _GiveUp(f"SOCKS5 authentication method {self.method} (not followed)")
            self.stage = 2 if self.method == 2 else 4
        if self.stage == 2:  # RFC 1929 username/password
            p = self.cpos
            if p + 2 > len(c) or p + 3 + c[p + 1] > len(c):
                return None
            q = p + 2 + c[p + 1]
            if q + 1 + c[q] > len(c):
                return None
            self.cpos, self.stage, self.asked = q + 1 + c[q], 3, "SOCKS5 username/password"
        if self.stage == 3:
            if self.spos + 2 > len(s):
                return None
            status = s[self.spos + 1]
            self.spos += 2
            if status != 0:
                self.stage = 9
                return self.refused(f"SOCKS5 authentication failed (status {status})")
            self.stage = 4
        if self.stage == 4:  # request: VER CMD RSV ATYP DST.ADDR DST.PORT
            if self.cpos + 4 > len(c):
                return None
            if c[self.cpos] != 5 or c[self.cpos + 1] != 1:
                raise _GiveUp("SOCKS5 request that is not CONNECT")
            got = _socks5_address(c, self.cpos + 3)
            if got is None:
                return None
            self.count()
            self.target, self.cpos = got
            self.request_end, self.stage = self.cpos, 5
            self.asked = f"SOCKS5 CONNECT {self.target}"
        if self.stage == 5:  # reply: VER REP RSV ATYP BND.ADDR BND.PORT
            if self.spos + 4 > len(s):
                return None
            rep = s[self.spos + 1]
            got = _socks5_address(s, self.spos + 3)
            if got is None:
                return None
            self.spos = got[1]
            self.stage = 9
            if rep != 0:
                return self.refused(f"SOCKS5 reply {rep} ({SOCKS5_REPLIES.get(rep, 'unknown')})")
            self.asked = None
            return _Tunnel(Protocol.SOCKS, self.request_end, self.spos, self.target)
        return None


# -- HTTP: CONNECT tunnels, "Upgrade: TLS/1.x", WebSocket (recognised only)


def _http_head(buf: bytearray, pos: int) -> tuple[bytes, dict[bytes, bytes], int] | None:
    """(first line, lower-cased headers, end of head) of a complete HTTP message head."""
    ends = [(i, n) for i, n in ((buf.find(b"\r\n\r\n", pos), 4), (buf.find(b"\n\n", pos), 2)) if i >= 0]
    if not ends:
        if len(buf) - pos > 8192:
            raise _GiveUp("HTTP head larger than 8 KiB")
        if _CONTROL.search(buf, pos):
            raise _GiveUp("binary data where an HTTP head was expected")
        return None
    i, n = min(ends)
    head = bytes(buf[pos:i])
    if _CONTROL.search(head):
        raise _GiveUp("binary data in an HTTP head")
    lines = head.split(b"\n")
    headers: dict[bytes, bytes] = {}
    for ln in lines[1:]:
        name, _, value = ln.partition(b":")
        key = name.strip().lower()
        headers[key] = headers[key] + b", " + value.strip() if key in headers else value.strip()
    return lines[0].rstrip(b"\r"), headers, i + n


def _status(line: bytes) -> int:
    m = re.match(rb"HTTP/\d\.\d (\d{3})", line)
    if m is None:
        raise _GiveUp(f"not an HTTP status line: {quote(line, 40)}")
    return int(m.group(1))


def _body_end(buf: bytearray, pos: int, headers: dict[bytes, bytes]) -> int | None:
    """End of the body starting at ``pos`` (-1: until the connection closes; None: not complete yet)."""
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        p = pos
        while True:
            got = _line(buf, p)
            if got is None:
                return None
            size_text, p = got
            try:
                size = int(size_text.split(b";")[0].strip(), 16)
            except ValueError:
                raise _GiveUp("bad HTTP chunk size") from None
            if size == 0:
                while True:
                    got = _line(buf, p)
                    if got is None:
                        return None
                    trailer, p = got
                    if not trailer:
                        return p
            if p + size + 2 > len(buf):
                return None
            p += size + 2
    length = headers.get(b"content-length")
    if length is None:
        return -1
    try:
        n = int(length.split(b",")[0])
    except ValueError:
        raise _GiveUp("bad Content-Length") from None
    return pos + n if pos + n <= len(buf) else None


class _ConnectHandler(_Handler):
    KIND = Protocol.HTTP_CONNECT

    def __init__(self, w: StartTlsWatcher, c0: int, s0: int) -> None:
        super().__init__(w, c0, s0)
        self.pending: tuple[str, int] | None = None  # (target, end of the request)
        self.body: tuple[dict[bytes, bytes], int] | None = None  # a refusal's body still to skip
        self.closed = False  # a refusal's body runs to the end of the connection

    def advance(self) -> Upgrade | Refused | _Tunnel | None:
        w = self.w
        while True:
            if self.body is not None:
                end = _body_end(w._s, self.body[1], self.body[0])
                if end is None:
                    return None
                self.body = None
                if end < 0:
                    self.closed = True
                    return None
                self.spos = end
            if self.pending is None:
                if self.closed:
                    return None
                got = _http_head(w._c, self.cpos)
                if got is None:
                    return None
                line, _, self.cpos = got
                parts = line.split(b" ")
                if len(parts) != 3 or parts[0] != b"CONNECT" or not parts[2].startswith(b"HTTP/"):
                    raise _GiveUp(f"HTTP request that is not CONNECT: {quote(line, 40)}")
                self.count()
                target = quote(parts[1], 255)
                self.pending, self.asked = (target, self.cpos), f"CONNECT {target}"
            got = _http_head(w._s, self.spos)
            if got is None:
                return None
            line, headers, head_end = got
            code = _status(line)
            self.spos = head_end
            if code < 200:
                continue
            target, req_end = self.pending
            self.pending = None
            if 200 <= code < 300:
                self.asked = None
                return _Tunnel(Protocol.HTTP_CONNECT, req_end, head_end, target)
            self.body = (headers, head_end)
            return self.refused(quote(line))


class _HttpHandler(_Handler):
    """A plain HTTP request: followed only when it asks for an upgrade (to TLS, or to WebSocket)."""

    def __init__(self, w: StartTlsWatcher, c0: int, s0: int) -> None:
        super().__init__(w, c0, s0)
        self.request_end: int | None = None
        self.ws: tuple[int, int] | None = None  # WebSocket frames start here (client, server)

    def advance(self) -> Upgrade | Refused | _Tunnel | None:
        w = self.w
        if self.request_end is None:
            got = _http_head(w._c, self.cpos)
            if got is None:
                return None
            line, headers, end = got
            self.count()
            upgrade = headers.get(b"upgrade", b"").lower()
            if b"websocket" in upgrade:
                self.kind = Protocol.WEBSOCKET
            elif re.search(rb"\btls/\d", upgrade):
                self.kind = Protocol.HTTP_UPGRADE
            else:
                raise _GiveUp("HTTP without an upgrade to TLS")
            body = _body_end(w._c, end, headers) if b"content-length" in headers else end
            if body is None:
                return None
            self.request_end = self.cpos = body
            self.asked = f"HTTP Upgrade: {quote(headers[b'upgrade'], 40)}"
        if self.ws is None:
            while True:
                got = _http_head(w._s, self.spos)
                if got is None:
                    return None
                line, _, end = got
                code = _status(line)
                self.spos = end
                if code == 101:
                    break
                if code >= 200:
                    if self.kind == Protocol.HTTP_UPGRADE:
                        return self.refused(quote(line))
                    raise _GiveUp(f"WebSocket upgrade refused: {quote(line, 40)}")
            if self.kind == Protocol.HTTP_UPGRADE:
                return self.upgrade(self.request_end, self.spos)
            self.asked = None
            self.ws = (self.request_end, self.spos)
        self._websocket(*self.ws)
        return None

    def _websocket(self, c: int, s: int) -> None:
        """Look into the first frame of each side, say whether TLS travels inside, and stop."""
        w = self.w
        for buf, pos, masked in ((w._c, c, True), (w._s, s, False)):
            if pos + 2 > len(buf):
                continue
            n, p = buf[pos + 1] & 0x7F, pos + 2
            p += 2 if n == 126 else 8 if n == 127 else 0
            key = bytes(buf[p : p + 4]) if masked and buf[pos + 1] & 0x80 else b"\x00\x00\x00\x00"
            p += 4 if masked and buf[pos + 1] & 0x80 else 0
            if p + 6 > len(buf):
                continue
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(buf[p : p + 6]))
            if looks_like_client_hello(payload) if masked else looks_like_tls(payload):
                raise _GiveUp("WebSocket tunnel carrying TLS: frames are not unwrapped")
            raise _GiveUp("WebSocket without TLS in its first frame")


# ---------------------------------------------------------------------- the watcher

_HTTP_METHOD = re.compile(rb"(GET|POST|HEAD|OPTIONS|PUT|DELETE|PATCH|TRACE) \S+ HTTP/")
_CODE_GREETING = re.compile(rb"[1-5]\d\d(?:[ -]|\r?\n)")
_IMAP_GREETING = re.compile(rb"(?i)\* (OK|PREAUTH|BYE)\b")


class StartTlsWatcher:
    """Follows one TCP conversation that did not start with TLS until TLS starts, is refused, or it is hopeless.

    Feed each direction's bytes in stream order (offsets count every byte given, from 0); feeding the two
    directions in capture order is best, but an answer seen before its request is still paired with it.
    ``client_data``/``server_data`` return an outcome when one is reached: ``Upgrade`` is final; ``Refused``
    is final unless the client retries (FTP AUTH SSL after AUTH TLS, CONNECT after a 407), in which case
    a later ``Upgrade`` supersedes it. After ``gave_up`` (``reason`` says why) the watcher ignores input.
    """

    __slots__ = (
        "_c",
        "_done",
        "_finished",
        "_gave_up",
        "_handler",
        "_origin",
        "_outcome",
        "_port",
        "_reason",
        "_s",
        "_target",
        "_tunnel",
    )

    def __init__(self, server_port: int | None = None) -> None:
        self._port = server_port
        self._c = bytearray()
        self._s = bytearray()
        self._handler: _Handler | None = None
        self._origin = (0, 0)
        self._tunnel: Protocol | None = None
        self._target: str | None = None
        self._outcome: Outcome | None = None
        self._done = False  # an Upgrade was found
        self._gave_up = False
        self._finished = False
        self._reason = ""

    # ------------------------------------------------------------------ feeding

    def client_data(self, data: bytes) -> Upgrade | Refused | None:
        """Bytes client -> server, in stream order."""
        return self._feed(self._c, data)

    def server_data(self, data: bytes) -> Upgrade | Refused | None:
        """Bytes server -> client, in stream order."""
        return self._feed(self._s, data)

    def finish(self) -> NoResponse | Refused | None:
        """End of the connection or capture: a request left unanswered is NoResponse; an SMTP server whose
        EHLO answer did not offer STARTTLS to a client that then left is Refused."""
        if self._finished or self._done or self._gave_up:
            return None
        self._finished = True
        h = self._handler
        if h is None:
            return None
        try:
            refusal = h.finish()
        except _GiveUp:
            refusal = None
        if refusal is not None:
            self._outcome = refusal
            return refusal
        if h.asked is None or h.protocol is None:
            return None
        detail = f"no answer to {h.asked}"
        rest = bytes(self._s[h.spos : h.spos + 40])
        if rest:
            detail += f" (incomplete answer: {quote(rest, 30)})"
        out = NoResponse(h.protocol, clip(detail))
        self._outcome = out
        return out

    def _feed(self, buf: bytearray, data: bytes) -> Upgrade | Refused | None:
        if self._done or self._gave_up or self._finished or not data:
            return None
        if len(buf) >= LIMIT:
            self._give_up(f"{LIMIT // 1024} KiB in one direction without an upgrade")
            return None
        buf += data  # the whole segment, so that bytes after an upgrade offset stay available
        return self._step()

    def _step(self) -> Upgrade | Refused | None:
        result: Upgrade | Refused | None = None
        try:
            while True:
                if self._handler is None:
                    found = self._classify()
                    if isinstance(found, Upgrade):
                        result = found
                        break
                    if not found:
                        break
                assert self._handler is not None
                r = self._handler.advance()
                if r is None:
                    break
                if isinstance(r, _Tunnel):
                    self._origin = (r.client_offset, r.server_offset)
                    self._tunnel, self._target, self._handler = r.protocol, r.target, None
                    continue
                result = r
                if isinstance(r, Upgrade):
                    break
        except _GiveUp as exc:
            self._give_up(str(exc))
        if result is not None:
            self._outcome = result
            self._done = isinstance(result, Upgrade)
        return result

    def _give_up(self, reason: str) -> None:
        self._gave_up = True
        self._reason = reason

    # ------------------------------------------------------------------ classification

    def _classify(self) -> Upgrade | bool:
        """Pick the handler from the first bytes of each side; False: wait for more bytes."""
        c0, s0 = self._origin
        ch = bytes(self._c[c0 : c0 + 512])
        sh = bytes(self._s[s0 : s0 + 512])
        if ch and (ch[0] == 0x16 or ch[0] & 0x80):
            if len(ch) < 6:
                return False
            if looks_like_client_hello(ch) or looks_like_tls(ch):
                if self._tunnel is not None:
                    return Upgrade(self._tunnel, c0, s0, self._target)
                raise _GiveUp("the client speaks TLS from its first byte (plain TLS, e.g. behind sslh)")
        if self._tunnel is not None and not ch and looks_like_tls(sh):
            return False  # the inner server's TLS answer was seen first: the ClientHello will follow
        cls = self._client_first(ch) or self._server_first(sh)
        if cls is None and ch:
            cls = self._text_client_first(ch, bool(sh))
        if cls is None:
            if (len(sh) >= 16 or b"\n" in sh) and ch:
                raise _GiveUp("not a protocol that upgrades to TLS")
            if len(ch) >= 512 or len(sh) >= 512:
                raise _GiveUp("not a protocol that upgrades to TLS")
            return False
        self._handler = cls(self, c0, s0)
        return True

    def _client_first(self, ch: bytes) -> type[_Handler] | None:
        if not ch:
            return None
        if len(ch) >= 8 and (
            (_u32be(ch, 0) == 8 and _u32be(ch, 4) in (PG_SSL_REQUEST, PG_GSSENC_REQUEST))
            or (_u32be(ch, 4) in (PG_PROTOCOL_3, PG_CANCEL_REQUEST) and 8 <= _u32be(ch, 0) <= 10000)
        ):
            return _PostgresHandler
        if ch[0] == 0x30 and len(ch) >= 2 and ch[1] != 0:
            return _LdapHandler
        if ch[0] == 3 and len(ch) >= 6 and ch[1] == 0 and ch[5] & 0xF0 == 0xE0:
            return _RdpHandler
        if (ch[0] == 4 and len(ch) >= 2 and ch[1] in (1, 2)) or (ch[0] == 5 and len(ch) >= 2 and 1 <= ch[1] <= 32):
            return _SocksHandler
        text = ch.lstrip()
        if text.startswith((b"<?xml", b"<stream")):
            return _XmppHandler
        if text.startswith(b"CONNECT "):
            return _ConnectHandler
        if _HTTP_METHOD.match(text):
            return _HttpHandler
        if text.startswith(b"SSH-"):
            raise _GiveUp("SSH")
        return None

    def _server_first(self, sh: bytes) -> type[_Handler] | None:
        if not sh:
            return None
        if sh.startswith(b"SSH-"):
            raise _GiveUp("SSH")
        if _IMAP_GREETING.match(sh):
            return _ImapHandler
        if sh.startswith((b"+OK", b"-ERR")):
            return _Pop3Handler
        if _CODE_GREETING.match(sh):
            return _CodeHandler
        if sh.startswith((b":", b"NOTICE ", b"PING ")):
            return _IrcHandler
        if _mysql_greeting(sh):
            return _MysqlHandler
        return None

    def _text_client_first(self, ch: bytes, server_spoke: bool) -> type[_Handler] | None:
        """A client that speaks first in text: IRC, or a server-first protocol whose greeting is still due."""
        got = _line(bytearray(ch), 0)
        if got is None:
            return None
        verb = got[0].split(b" ")[0].upper()
        if verb in (b"CAP", b"NICK") or (verb in (b"STARTTLS", b"USER", b"PASS") and self._port in IRC_PORTS):
            return _IrcHandler
        if server_spoke:
            raise _GiveUp("not a protocol that upgrades to TLS")
        return None

    # ------------------------------------------------------------------ state

    @property
    def protocol(self) -> Protocol | None:
        """What the conversation is, once known (inside a tunnel: the inner protocol when it has one)."""
        if self._handler is not None and self._handler.protocol is not None:
            return self._handler.protocol
        return self._tunnel

    @property
    def gave_up(self) -> bool:
        """Not a protocol we follow, or a limit was reached: stop watching (any Refused stays the outcome)."""
        return self._gave_up

    @property
    def reason(self) -> str:
        """Why the watcher gave up ('' while it has not)."""
        return self._reason

    @property
    def outcome(self) -> Outcome | None:
        """The latest Upgrade / Refused / NoResponse returned."""
        return self._outcome

    def tls_head(self, client: bool) -> bytes:
        """After an Upgrade: the bytes of that direction already given from the upgrade offset on."""
        if not isinstance(self._outcome, Upgrade):
            return b""
        if client:
            return bytes(self._c[self._outcome.client_offset :])
        return bytes(self._s[self._outcome.server_offset :])


class AdatTunnel:
    """RFC 2228 FTP security exchange (GridFTP's GSI: AUTH GSSAPI, then ADAT tokens): the TLS handshake
    travels base64-encoded inside ADAT commands and their 33x/235 ADAT= replies, not as a raw stream.
    Feed each direction's cleartext; get back the decoded TLS bytes for that direction."""

    __slots__ = ("_buf", "done")

    MAX_LINE = 64 * 1024

    def __init__(self) -> None:
        self._buf = (bytearray(), bytearray())
        self.done = False  # 235: the security exchange completed (what follows is protected)

    def feed(self, client: bool, data: bytes) -> bytes:
        buf = self._buf[0 if client else 1]
        buf += data
        out = bytearray()
        while not self.done:
            end = buf.find(b"\n")
            if end < 0:
                if len(buf) > self.MAX_LINE:
                    buf.clear()
                break
            line = bytes(buf[:end]).strip()
            del buf[: end + 1]
            token = _adat_token(line, client)
            if token:
                out += token
            if not client and line[:3] == b"235":
                self.done = True
        return bytes(out)


def _adat_token(line: bytes, client: bool) -> bytes:
    import base64
    import binascii

    if client:
        if not line.upper().startswith(b"ADAT "):
            return b""
        text = line[5:]
    else:
        at = line.find(b"ADAT=")
        if at < 0 or line[:1] not in (b"2", b"3"):
            return b""
        text = line[at + 5 :].split(b" ")[0]
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError):
        return b""
