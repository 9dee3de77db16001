"""Per-connection TLS state: records and handshake messages in, facts and timeline events out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from analyzer.errors import ParseError
from analyzer.picklable import Frozen
from analyzer.tls import messages as m
from analyzer.tls.records import (
    CT_ALERT,
    CT_APPDATA,
    CT_CCS,
    CT_HANDSHAKE,
    CT_HEARTBEAT,
    CT_SSL2,
    HandshakeAssembler,
    Record,
    RecordLayer,
)
from analyzer.tls.registry import HANDSHAKE_TYPES, alert_name, cipher_name

if TYPE_CHECKING:
    from analyzer.tls.keylog import Decryptor, KeyLog

CLIENT, SERVER = 0, 1
SIDE_NAMES = ("client", "server")
MAX_RECORD_LOG = 256  # records remembered per connection (handshake phase only)
# The smallest encrypted TLS 1.3 Finished: 4-byte header + 32-byte verify_data + content type + 16-byte tag.
# A smaller record on its own is not a Finished: an encrypted alert is 19 bytes (Java pads it to 35).
FINISHED_MIN = 53
FINISHED_MAX = 100  # SHA-384 Finished is 69 bytes encrypted; padding aside, anything much bigger carries a certificate
APPDATA_RECORDS_AFTER_HANDSHAKE = 64  # stop deep parsing after this many records once established

# Zeek's ssl_history letters (upper case: client, lower case: server)
HISTORY_LETTERS = {
    0: "H",
    1: "C",
    2: "S",
    3: "V",
    4: "T",
    5: "E",
    6: "J",
    8: "O",
    11: "X",
    12: "K",
    13: "R",
    14: "N",
    15: "Y",
    16: "G",
    20: "F",
    21: "W",
    22: "U",
    23: "A",
    24: "P",
    254: "M",
}
MAX_HISTORY = 100


class RecordSeen(NamedTuple):
    """One record of the handshake phase, kept as evidence (sizes and positions matter)."""

    ts_ns: int
    frame: int
    side: int
    content_type: int
    length: int
    encrypted: bool


@dataclass(frozen=True, slots=True)
class AlertSeen(Frozen):
    ts_ns: int
    frame: int
    side: int
    level: int | None  # None when encrypted
    description: int | None
    encrypted: bool

    @property
    def name(self) -> str:
        return "encrypted" if self.description is None else alert_name(self.description)

    @property
    def fatal(self) -> bool:
        return self.level == 2


Event = tuple[int, int, int, str, str]  # (ts_ns, frame, side, kind, detail)


@dataclass(slots=True)
class KeyRing:
    """The key log of an analysis, shared by every connection; pcapng secrets blocks add to it as read."""

    log: KeyLog | None = None


def is_tls13(version: int | None) -> bool:
    return version is not None and (version == 0x0304 or version >> 8 in (0x7F, 0x7E) or version == 0xFB1A)


# what TlsObserver.state() holds, in its order: every attribute but the key ring (shared by every
# connection); tests/test_spill.py checks it against the attributes __init__ sets
OBS_STATE = (
    "events",
    "keylog_status",
    "layers",
    "assemblers",
    "records",
    "alerts",
    "parse_errors",
    "history",
    "client_hello",
    "client_hellos",
    "client_hello_ts",
    "server_hello",
    "server_hello_ts",
    "hello_retry",
    "server_certificate",
    "server_certificate_ts",
    "client_certificate",
    "certificate_request",
    "certificate_status",
    "server_key_exchange",
    "server_hello_done_ts",
    "ccs_ts",
    "finished_ts",
    "finished_frame",
    "first_app_ts",
    "app_records",
    "app_bytes",
    "encrypted_records",
    "first_bytes",
    "records_after_established",
    "_flight_rest",
    "app_decrypted",
    "app_max",
    "client_flight_records",
    "client_flight_ts",
    "alpn",
    "tls13",
)


class TlsObserver:
    """Watches both directions of one connection. Feed it stream bytes (``data``) or records (``record``).

    Decrypted records from a key log can be fed to ``record`` with ``decrypted=True``.
    """

    def __init__(self, events: list[Event] | None = None, keys: KeyRing | None = None) -> None:
        # defaults so that compiled (mypyc) unpickling can call TlsObserver() before it sets the state
        self.events: list[Event] = events if events is not None else []
        self.keys = keys
        self.decryptor: Decryptor | None = None
        self.keylog_status: str | None = None  # decrypted / no_key / key_mismatch / unsupported_suite / pending
        self.layers = (RecordLayer(), RecordLayer())
        self.assemblers = (HandshakeAssembler(), HandshakeAssembler())
        self.records: list[RecordSeen] = []
        self.alerts: list[AlertSeen] = []
        self.parse_errors: list[str] = []
        self.history: list[str] = []
        self.client_hello: m.ClientHello | None = None
        self.client_hellos = 0
        self.client_hello_ts: int | None = None
        self.server_hello: m.ServerHello | None = None
        self.server_hello_ts: int | None = None
        self.hello_retry = False
        self.server_certificate: m.Certificate | None = None
        self.server_certificate_ts: int | None = None
        self.client_certificate: m.Certificate | None = None
        self.certificate_request: m.CertificateRequest | None = None
        self.certificate_status: m.CertificateStatus | None = None
        self.server_key_exchange: m.ServerKeyExchange | None = None
        self.server_hello_done_ts: int | None = None
        self.ccs_ts: list[int | None] = [None, None]
        self.finished_ts: list[int | None] = [None, None]
        self.finished_frame: list[int | None] = [None, None]
        self.first_app_ts: list[int | None] = [None, None]
        self.app_records = [0, 0]
        self.app_bytes = [0, 0]
        self.encrypted_records = [0, 0]  # handshake-phase encrypted records (TLS 1.3 flights)
        self.first_bytes: list[bytes] = [b"", b""]
        self.records_after_established = 0
        self._flight_rest = 0  # TLS 1.3: records of the client's flight still to come (CertificateVerify, Finished)
        self.app_decrypted = [False, False]  # application data proven by decryption (not guessed from sizes)
        self.app_max = [0, 0]  # largest application-data record per side: alerts are small, data usually is not
        self.client_flight_records = 0  # TLS 1.3: client records after the server's encrypted flight
        self.client_flight_ts: int | None = None  # TLS 1.3: when the client's second flight began
        self.alpn: str | None = None  # ALPN from EncryptedExtensions (TLS 1.3, decrypted)
        self.tls13 = False  # set once the ServerHello selects TLS 1.3 (or a draft of it)

    # ------------------------------------------------------------------ plain state (analyzer/spill.py)

    def state(self, flow_events: list[Event]) -> tuple[Any, ...]:
        """Every attribute in OBS_STATE order as plain values (tuples, lists, numbers, strings, bytes),
        for ``marshal``; ``events`` is None when it is the flow's own list (the usual case). Not for a
        connection being decrypted (its decryptor holds key material objects: pickled instead)."""
        if self.decryptor is not None:
            raise ValueError("a decrypting connection's state is pickled")
        return (
            None if self.events is flow_events else self.events,
            self.keylog_status,
            (self.layers[0].state(), self.layers[1].state()),
            (self.assemblers[0].state(), self.assemblers[1].state()),
            [tuple(r) for r in self.records],
            [(a.ts_ns, a.frame, a.side, a.level, a.description, a.encrypted) for a in self.alerts],
            self.parse_errors,
            self.history,
            m.pack(self.client_hello),
            self.client_hellos,
            self.client_hello_ts,
            m.pack(self.server_hello),
            self.server_hello_ts,
            self.hello_retry,
            m.pack(self.server_certificate),
            self.server_certificate_ts,
            m.pack(self.client_certificate),
            m.pack(self.certificate_request),
            m.pack(self.certificate_status),
            m.pack(self.server_key_exchange),
            self.server_hello_done_ts,
            self.ccs_ts,
            self.finished_ts,
            self.finished_frame,
            self.first_app_ts,
            self.app_records,
            self.app_bytes,
            self.encrypted_records,
            self.first_bytes,
            self.records_after_established,
            self._flight_rest,
            self.app_decrypted,
            self.app_max,
            self.client_flight_records,
            self.client_flight_ts,
            self.alpn,
            self.tls13,
        )

    def restore(self, values: tuple[Any, ...], flow_events: list[Event]) -> None:
        """state() undone, on a TlsObserver just made with the flow's events and the key ring."""
        (
            events,
            self.keylog_status,
            layers,
            assemblers,
            records,
            alerts,
            self.parse_errors,
            self.history,
            client_hello,
            self.client_hellos,
            self.client_hello_ts,
            server_hello,
            self.server_hello_ts,
            self.hello_retry,
            server_certificate,
            self.server_certificate_ts,
            client_certificate,
            certificate_request,
            certificate_status,
            server_key_exchange,
            self.server_hello_done_ts,
            self.ccs_ts,
            self.finished_ts,
            self.finished_frame,
            self.first_app_ts,
            self.app_records,
            self.app_bytes,
            self.encrypted_records,
            self.first_bytes,
            self.records_after_established,
            self._flight_rest,
            self.app_decrypted,
            self.app_max,
            self.client_flight_records,
            self.client_flight_ts,
            self.alpn,
            self.tls13,
        ) = values
        self.events = flow_events if events is None else events
        self.layers[0].restore(layers[0])
        self.layers[1].restore(layers[1])
        self.assemblers[0].restore(assemblers[0])
        self.assemblers[1].restore(assemblers[1])
        self.records = [RecordSeen(*r) for r in records]
        self.alerts = [AlertSeen(*a) for a in alerts]
        self.client_hello = m.unpack(client_hello)
        self.server_hello = m.unpack(server_hello)
        self.server_certificate = m.unpack(server_certificate)
        self.client_certificate = m.unpack(client_certificate)
        self.certificate_request = m.unpack(certificate_request)
        self.certificate_status = m.unpack(certificate_status)
        self.server_key_exchange = m.unpack(server_key_exchange)

    # ------------------------------------------------------------------ derived facts

    @property
    def version(self) -> int | None:
        return self.server_hello.selected_version if self.server_hello else None

    def encrypted(self, side: int) -> bool:
        """Records from ``side`` are protected from now on."""
        if self.tls13:
            return True
        return self.ccs_ts[side] is not None

    @property
    def established(self) -> bool:
        """Both Finished seen (TLS <= 1.2), or the client's second flight followed the server's (1.3)."""
        return self.finished_ts[CLIENT] is not None and self.finished_ts[SERVER] is not None

    @property
    def done(self) -> bool:
        """Nothing more to learn from deep parsing: bulk data from here on costs only the header pass."""
        if self.layers[CLIENT].error and (self.layers[SERVER].error or not self.first_bytes[SERVER]):
            return False  # the flow decides when a non-TLS flow is finished
        if any(a.fatal for a in self.alerts):
            return False  # keep watching until the close: it is cheap and it is evidence
        if self.established:
            both = self.first_app_ts[CLIENT] is not None and self.first_app_ts[SERVER] is not None
            return both or self.records_after_established > APPDATA_RECORDS_AFTER_HANDSHAKE
        return False

    # ------------------------------------------------------------------ input

    def data(self, side: int, chunk: bytes, ts: int, frame: int) -> None:
        if not self.first_bytes[side]:
            self.first_bytes[side] = chunk[:64]
        layer = self.layers[side]
        had_error = layer.error
        for rec in layer.feed(chunk):
            self.record(side, rec, ts, frame)
        if layer.error and not had_error:
            self.parse_errors.append(f"{SIDE_NAMES[side]} stream, frame {frame}: {layer.error}")

    def gap(self, side: int, ts: int, frame: int, length: int) -> None:
        self.layers[side].gap()
        self.assemblers[side].reset()
        self.events.append((ts, frame, side, "gap", f"{length} bytes missing from the capture"))

    def record(self, side: int, rec: Record, ts: int, frame: int, decrypted: bool = False) -> None:
        if self.decryptor is not None and not decrypted:
            inner = self.decryptor.decrypt(side, rec)
            self.keylog_status = self.decryptor.status.value
            if inner is not None and inner is not rec:
                if len(self.records) < MAX_RECORD_LOG:
                    self.records.append(RecordSeen(ts, frame, side, rec.content_type, rec.length, True))
                self._decrypted(side, inner, ts, frame)
                return
            # not protected (inner is rec), or the key does not fit (None): read it as captured
        ct = rec.content_type
        enc = self.encrypted(side) and not decrypted
        if len(self.records) < MAX_RECORD_LOG:
            self.records.append(RecordSeen(ts, frame, side, ct, rec.length, enc and ct != CT_CCS))
        if self.established:
            self.records_after_established += 1
        if ct == CT_HANDSHAKE:
            if enc:
                self._encrypted_handshake(side, ts, frame)
            else:
                for msg in self.assemblers[side].feed(rec.payload):
                    self._message(side, msg, ts, frame)
                if self.assemblers[side].error:
                    self.parse_errors.append(f"{SIDE_NAMES[side]} frame {frame}: {self.assemblers[side].error}")
        elif ct == CT_APPDATA:
            self._application_data(side, rec, ts, frame, enc)
        elif ct == CT_ALERT:
            self._alert(side, rec, ts, frame, enc)
        elif ct == CT_CCS:
            if self.server_hello is not None and not self.tls13 and self.ccs_ts[side] is None:
                self.ccs_ts[side] = ts
                if self.decryptor is not None:
                    self.decryptor.change_cipher_spec(side)
            self._hist(side, "I")
            self.events.append((ts, frame, side, "change_cipher_spec", ""))
        elif ct == CT_SSL2:
            self._sslv2(side, rec, ts, frame)
        elif ct == CT_HEARTBEAT:
            self._hist(side, "B")
            self.events.append((ts, frame, side, "heartbeat", f"{rec.length} bytes"))

    # ------------------------------------------------------------------ records

    def _decrypted(self, side: int, inner: Record, ts: int, frame: int) -> None:
        """A record the key log opened: its real content, read like a cleartext one."""
        ct = inner.content_type
        if ct == CT_HANDSHAKE:
            for msg in self.assemblers[side].feed(inner.payload):
                self._message(side, msg, ts, frame)
        elif ct == CT_ALERT:
            self._alert(side, inner, ts, frame, False)
        elif ct == CT_APPDATA:
            self.app_decrypted[side] = True
            self._count_application_data(side, inner, ts, frame)

    def _hist(self, side: int, letter: str) -> None:
        if len(self.history) < MAX_HISTORY:
            self.history.append(letter if side == CLIENT else letter.lower())

    def _encrypted_handshake(self, side: int, ts: int, frame: int) -> None:
        if self.finished_ts[side] is None:
            self.finished_ts[side] = ts
            self.finished_frame[side] = frame
            self._hist(side, "F")
            self.events.append((ts, frame, side, "finished", "encrypted"))

    def _application_data(self, side: int, rec: Record, ts: int, frame: int, enc: bool) -> None:
        if self.tls13 and self.server_hello is not None and self.finished_ts[CLIENT] is None:
            # TLS 1.3 handshake flights travel as application_data records
            self.encrypted_records[side] += 1
            if side == SERVER and self.client_flight_ts is None:
                if self.finished_ts[SERVER] is None:
                    self.finished_ts[SERVER] = ts  # the server's encrypted flight (EE..Finished)
                    self.finished_frame[SERVER] = frame
                    self._hist(side, "F")
                    self.events.append((ts, frame, side, "encrypted_flight", m.shared(f"{rec.length} bytes")))
                return
            if side == CLIENT:
                if self.finished_ts[SERVER] is None:
                    return  # 0-RTT early data
                self.client_flight_records += 1
                if self.client_flight_ts is None:
                    self.client_flight_ts = ts
                if rec.length < FINISHED_MIN:
                    self.events.append(
                        (ts, frame, side, "encrypted_record", f"{rec.length} bytes: too small for a Finished")
                    )
                if rec.length >= FINISHED_MIN or self.client_flight_records > 1:
                    # the client's second flight: a Finished (maybe after a small empty Certificate), not a lone alert;
                    # a first record too big for a Finished is a client certificate: CertificateVerify and Finished follow
                    self._flight_rest = 2 if rec.length > FINISHED_MAX else 0
                    self.finished_ts[CLIENT] = ts
                    self.finished_frame[CLIENT] = frame
                    self._hist(side, "F")
                    self.events.append(
                        (ts, frame, side, "finished", m.shared(f"encrypted flight, first record {rec.length} bytes"))
                    )
                return
            # a server record after the client's flight began (an alert, tickets, data): counted below
        if self.tls13 and side == CLIENT and self._flight_rest:
            self._flight_rest -= 1
            return  # the rest of the client's second flight
        self._count_application_data(side, rec, ts, frame)

    def _count_application_data(self, side: int, rec: Record, ts: int, frame: int) -> None:
        self.app_records[side] += 1
        self.app_bytes[side] += rec.length
        if rec.length > self.app_max[side]:
            self.app_max[side] = rec.length
        if self.first_app_ts[side] is None:
            self.first_app_ts[side] = ts
            self._hist(side, "D")
            self.events.append((ts, frame, side, "application_data", m.shared(f"first record {rec.length} bytes")))

    def _alert(self, side: int, rec: Record, ts: int, frame: int, enc: bool) -> None:
        level: int | None = None
        desc: int | None = None
        if rec.length == 2 and (not enc or self.tls13 or rec.payload[0] in (1, 2)):
            level, desc = rec.payload[0], rec.payload[1]
        alert = AlertSeen(ts, frame, side, level, desc, desc is None)
        if len(self.alerts) < 64:
            self.alerts.append(alert)
        self._hist(side, "L")
        detail = "encrypted" if desc is None else f"{'fatal' if level == 2 else 'warning'} {alert.name}"
        self.events.append((ts, frame, side, "alert", m.shared(detail)))

    def _sslv2(self, side: int, rec: Record, ts: int, frame: int) -> None:
        try:
            if rec.payload[:1] == b"\x01" and self.client_hello is None:
                self._set_client_hello(m.parse_sslv2_client_hello(rec.payload), ts, frame)
                self._hist(side, "C")
            elif rec.payload[:1] == b"\x04" and self.server_hello is None:
                sh = m.parse_sslv2_server_hello(rec.payload)
                self.server_hello, self.server_hello_ts = sh, ts
                self._hist(side, "S")
                self.events.append((ts, frame, side, "server_hello", "SSL 2.0"))
                if sh.certificate_der:
                    self.server_certificate = m.Certificate((m.CertificateEntry(sh.certificate_der),))
                    self.server_certificate_ts = ts
            elif self.server_hello is not None and self.server_hello.sslv2:
                # after SERVER-HELLO: CLIENT-MASTER-KEY in clear, then encrypted records both ways
                if self.finished_ts[side] is None and (side == SERVER or rec.payload[:1] != b"\x02"):
                    self.finished_ts[side] = ts
                    self._hist(side, "F")
            elif rec.payload[:1] == b"\x00" and len(rec.payload) >= 3:  # SSLv2 ERROR
                self.alerts.append(AlertSeen(ts, frame, side, 2, None, False))
        except ParseError as exc:
            self.parse_errors.append(f"{SIDE_NAMES[side]} frame {frame}: SSLv2 record: {exc}")

    # ------------------------------------------------------------------ handshake messages

    def _message(self, side: int, msg: m.HandshakeMessage, ts: int, frame: int) -> None:
        self._hist(side, HISTORY_LETTERS.get(msg.msg_type, "Z"))
        handler = HANDLERS.get(msg.msg_type)
        if handler is None:
            if msg.msg_type == 20 and self.finished_ts[side] is None:  # decrypted (or NULL-cipher) Finished
                self.finished_ts[side] = ts
                self.finished_frame[side] = frame
                self.events.append((ts, frame, side, "finished", "decrypted" if self.decryptor else "cleartext"))
            return
        try:
            handler(self, side, msg.body, ts, frame)
        except ParseError as exc:
            name = HANDSHAKE_TYPES.get(msg.msg_type, str(msg.msg_type))
            self.parse_errors.append(f"{SIDE_NAMES[side]} frame {frame}: malformed {name}: {exc}")

    def _set_client_hello(self, ch: m.ClientHello, ts: int, frame: int) -> None:
        self.client_hellos += 1
        if self.client_hello is None:
            self.client_hello, self.client_hello_ts = ch, ts
        self.events.append((ts, frame, CLIENT, "client_hello", m.shared(f"SNI {ch.sni}") if ch.sni else "no SNI"))

    def _on_client_hello(self, side: int, body: bytes, ts: int, frame: int) -> None:
        ch = m.parse_client_hello(body)
        self.parse_errors.extend(f"client frame {frame}: malformed ClientHello: {p}" for p in ch.problems)
        self._set_client_hello(ch, ts, frame)

    def _on_server_hello(self, side: int, body: bytes, ts: int, frame: int) -> None:
        sh = m.parse_server_hello(body)
        if sh.is_hrr:
            self.hello_retry = True
            self.history[-1:] = ["j"] if self.history and self.history[-1] == "s" else self.history[-1:]
            self.events.append((ts, frame, side, "hello_retry_request", ""))
            return
        self.server_hello, self.server_hello_ts = sh, ts
        self.tls13 = is_tls13(sh.selected_version)
        if self.keys is not None and self.keys.log is not None and self.client_hello is not None:
            from analyzer.tls.keylog import Decryptor  # only analyses with a key log pay for the crypto imports

            found = Decryptor.for_connection(
                self.keys.log, self.client_hello.random, sh.random, sh.cipher_suite, sh.selected_version
            )
            if isinstance(found, Decryptor):
                self.decryptor = found
                self.keylog_status = found.status.value
            else:
                self.keylog_status = found.value
        self.events.append(
            (
                ts,
                frame,
                side,
                "server_hello",
                m.shared(f"{cipher_name(sh.cipher_suite)}, version 0x{sh.selected_version:04x}"),
            )
        )

    def _on_certificate(self, side: int, body: bytes, ts: int, frame: int) -> None:
        cert = m.parse_certificate(body, tls13=self.tls13)
        if side == SERVER:
            self.server_certificate, self.server_certificate_ts = cert, ts
            for ext in cert.entries[0].extensions if cert.entries else ():
                if ext.type == m.EXT_STATUS_REQUEST:  # TLS 1.3 carries the OCSP staple in the leaf's entry
                    self.certificate_status = m.parse_certificate_status(ext.data)
        else:
            self.client_certificate = cert
        self.events.append((ts, frame, side, "certificate", m.shared(f"{len(cert.entries)} certificates")))

    def _on_encrypted_extensions(self, side: int, body: bytes, ts: int, frame: int) -> None:
        alpn = m.parse_encrypted_extensions_alpn(body)
        if alpn is not None and self.server_hello is not None:
            self.alpn = alpn

    def _on_server_key_exchange(self, side: int, body: bytes, ts: int, frame: int) -> None:
        name = cipher_name(self.server_hello.cipher_suite) if self.server_hello else None
        self.server_key_exchange = m.parse_server_key_exchange(body, name)

    def _on_certificate_request(self, side: int, body: bytes, ts: int, frame: int) -> None:
        self.certificate_request = m.parse_certificate_request(body, self.version or 0x0303)
        self.events.append((ts, frame, side, "certificate_request", ""))

    def _on_server_hello_done(self, side: int, body: bytes, ts: int, frame: int) -> None:
        self.server_hello_done_ts = ts

    def _on_certificate_status(self, side: int, body: bytes, ts: int, frame: int) -> None:
        self.certificate_status = m.parse_certificate_status(body)


HANDLERS: dict[int, Callable[[TlsObserver, int, bytes, int, int], None]] = {
    1: TlsObserver._on_client_hello,
    2: TlsObserver._on_server_hello,
    11: TlsObserver._on_certificate,
    8: TlsObserver._on_encrypted_extensions,
    12: TlsObserver._on_server_key_exchange,
    13: TlsObserver._on_certificate_request,
    14: TlsObserver._on_server_hello_done,
    22: TlsObserver._on_certificate_status,
}
