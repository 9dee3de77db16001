"""One TCP connection: roles, handshake/close facts, and the switch between deep parsing and skimming."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analyzer.tcp.reassembly import Gap, Reassembler
from analyzer.tls.observer import CLIENT, SERVER, Event, KeyRing, TlsObserver

if TYPE_CHECKING:
    from analyzer.tcp.starttls import AdatTunnel, NoResponse, Refused, StartTlsWatcher, Upgrade
from analyzer.tls.records import CT_HANDSHAKE, looks_like_client_hello, looks_like_tls, looks_like_tls_record

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
UNDECIDED, DEEP, SKIP, WATCH = 0, 1, 2, 3  # WATCH: following a cleartext protocol until TLS starts
EARLY_LIMIT = 16 * 1024  # server bytes kept while waiting for the client's first payload
MAX_EVENTS = 400
MAX_SYN_EVENTS = 8

DEFAULT_TLS_PORTS = frozenset({443, 8443, 465, 563, 636, 853, 989, 990, 992, 993, 994, 995, 5061, 6697})

# a flow's own state: every slot but the two shared by all flows (``keys``, ``tls_ports``); what an
# evicted connection's record holds (analyzer/spill.py; tests/test_spill.py checks it against __slots__)
FLOW_STATE = (
    "_early",
    "_early_bytes",
    "adat",
    "bytes",
    "client_dir",
    "client_payload_tls",
    "events",
    "file_index",
    "fin",
    "first_frame",
    "first_payload",
    "first_ts",
    "isn",
    "key",
    "last_ts",
    "mode",
    "obs",
    "pkts",
    "reasm",
    "rst",
    "starttls",
    "starttls_outcome",
    "syn_ack",
    "syn_count",
    "syn_seq",
    "syn_ts",
    "tunnel_target",
    "watcher",
)


class Flow:
    """Mutable state of one connection, keyed by its canonical 4-tuple (A = lower endpoint).

    ``d`` below is the canonical direction (0: A->B); ``side`` is CLIENT or SERVER once roles are known.
    """

    __slots__ = (
        "_early",
        "_early_bytes",
        "adat",
        "bytes",
        "client_dir",
        "client_payload_tls",
        "events",
        "file_index",
        "fin",
        "first_frame",
        "first_payload",
        "first_ts",
        "isn",
        "key",
        "keys",
        "last_ts",
        "mode",
        "obs",
        "pkts",
        "reasm",
        "rst",
        "starttls",
        "starttls_outcome",
        "syn_ack",
        "syn_count",
        "syn_seq",
        "syn_ts",
        "tls_ports",
        "tunnel_target",
        "watcher",
    )

    def __init__(
        self,
        key: tuple[int, ...] = (),
        ts: int = 0,
        frame: int = 0,
        tls_ports: frozenset[int] = DEFAULT_TLS_PORTS,
        keys: KeyRing | None = None,
    ) -> None:
        # every argument has a default: compiled (mypyc), unpickling calls Flow() and then sets the state
        self.key = key
        self.keys = keys
        self.watcher: StartTlsWatcher | None = None
        self.adat: AdatTunnel | None = None
        self.starttls: str | None = None  # the cleartext protocol TLS was started from (smtp, postgres, socks...)
        self.starttls_outcome: Refused | NoResponse | None = None
        self.tunnel_target: str | None = None
        self.file_index = 0
        self.tls_ports = tls_ports
        self.first_ts = ts
        self.last_ts = ts
        self.first_frame = frame
        self.pkts = [0, 0]
        self.bytes = [0, 0]
        self.client_dir: int | None = None
        self.mode = UNDECIDED
        self.isn: list[int | None] = [None, None]
        self.syn_ts: int | None = None
        self.syn_seq: int | None = None
        self.syn_count = 0
        self.syn_ack: tuple[int, int] | None = None  # (ts, frame)
        self.fin: list[tuple[int, int] | None] = [None, None]  # per canonical direction
        self.rst: list[tuple[int, int] | None] = [None, None]
        self.first_payload: list[tuple[int, int, bytes] | None] = [None, None]  # (ts, frame, first bytes)
        self.client_payload_tls: bool | None = None
        self.events: list[Event] = []
        self.obs: TlsObserver | None = None
        self.reasm: list[Reassembler] | None = None
        self._early: list[tuple[int, bytes, int, int, int]] = []  # server bytes before the client spoke
        self._early_bytes = 0

    def state(self) -> tuple[Any, ...]:
        """The values of FLOW_STATE, in its order (the record of an evicted connection, analyzer/spill.py)."""
        return (
            self._early,
            self._early_bytes,
            self.adat,
            self.bytes,
            self.client_dir,
            self.client_payload_tls,
            self.events,
            self.file_index,
            self.fin,
            self.first_frame,
            self.first_payload,
            self.first_ts,
            self.isn,
            self.key,
            self.last_ts,
            self.mode,
            self.obs,
            self.pkts,
            self.reasm,
            self.rst,
            self.starttls,
            self.starttls_outcome,
            self.syn_ack,
            self.syn_count,
            self.syn_seq,
            self.syn_ts,
            self.tunnel_target,
            self.watcher,
        )

    def restore(self, values: tuple[Any, ...]) -> None:
        """Set the state from ``state()``'s values."""
        (
            self._early,
            self._early_bytes,
            self.adat,
            self.bytes,
            self.client_dir,
            self.client_payload_tls,
            self.events,
            self.file_index,
            self.fin,
            self.first_frame,
            self.first_payload,
            self.first_ts,
            self.isn,
            self.key,
            self.last_ts,
            self.mode,
            self.obs,
            self.pkts,
            self.reasm,
            self.rst,
            self.starttls,
            self.starttls_outcome,
            self.syn_ack,
            self.syn_count,
            self.syn_seq,
            self.syn_ts,
            self.tunnel_target,
            self.watcher,
        ) = values

    def head(self) -> tuple[bool, int | None]:
        """How this connection began: with a bare SYN as its very first packet (same frame, not just the
        same time), and that SYN's sequence number; what decides whether it continues a connection of
        an earlier file (analyzer/scan.py)."""
        first_is_syn = bool(self.events) and self.events[0][1] == self.first_frame and self.events[0][3] == "syn"
        return first_is_syn and self.syn_ts == self.first_ts, self.syn_seq

    def tail(self) -> tuple[int | None, bool]:
        """How this connection was left: its SYN's sequence number, and whether it closed or carried data."""
        used = self.closed or self.first_payload[0] is not None or self.first_payload[1] is not None
        return self.syn_seq, used

    # ------------------------------------------------------------------ roles

    @property
    def ports(self) -> tuple[int, int]:
        return self.key[5], self.key[10]

    def side(self, d: int) -> int:
        return CLIENT if d == self.client_dir else SERVER

    def _guess_client_dir(self) -> int:
        pa, pb = self.ports
        if (pb in self.tls_ports) != (pa in self.tls_ports):
            return 0 if pb in self.tls_ports else 1
        return 0 if pa > pb else 1  # the ephemeral (higher) port is the client's

    @property
    def closed(self) -> bool:
        return (
            self.rst[0] is not None or self.rst[1] is not None or (self.fin[0] is not None and self.fin[1] is not None)
        )

    def _event(self, ts: int, frame: int, d: int, kind: str, detail: str = "") -> None:
        if len(self.events) < MAX_EVENTS:
            self.events.append((ts, frame, -1 - d, kind, detail))  # canonical dir, mapped to sides at the end

    # ------------------------------------------------------------------ packets

    def control(self, d: int, flags: int, seq: int, ts: int, frame: int) -> None:
        """SYN / FIN / RST bookkeeping; cheap, runs for every flagged packet in every mode."""
        if flags & SYN:
            if flags & ACK:
                self.isn[d] = seq
                if self.client_dir is None:
                    self.client_dir = 1 - d
                if self.syn_ack is None:
                    self.syn_ack = (ts, frame)
                    self._event(ts, frame, d, "syn_ack")
            else:
                self.isn[d] = seq
                self.client_dir = d if self.client_dir is None else self.client_dir
                self.syn_count += 1
                if self.syn_ts is None:
                    self.syn_ts, self.syn_seq = ts, seq
                if self.syn_count <= MAX_SYN_EVENTS:
                    self._event(ts, frame, d, "syn", "" if self.syn_count == 1 else "retransmission")
        if flags & RST and self.rst[d] is None:
            self.rst[d] = (ts, frame)
            self._event(ts, frame, d, "rst")
        if flags & FIN and self.fin[d] is None:
            self.fin[d] = (ts, frame)
            self._event(ts, frame, d, "fin")

    def payload(self, d: int, seq: int, data: bytes, wire_len: int, ts: int, frame: int) -> None:
        """A segment with payload, in UNDECIDED or DEEP mode."""
        if self.first_payload[d] is None:
            self.first_payload[d] = (ts, frame, data[:64])
        if self.mode == WATCH:
            self._watch(d, seq, data, wire_len, ts, frame)
            return
        if self.mode == UNDECIDED:
            if self.client_dir is None:
                if looks_like_client_hello(data):
                    self.client_dir = d
                elif looks_like_tls_record(data) and data[0] == CT_HANDSHAKE and data[5:6] == b"\x02":
                    self.client_dir = 1 - d
                else:
                    self.client_dir = self._guess_client_dir()
            mid_connection = self.syn_ts is None and self.syn_ack is None
            tls = looks_like_tls(data)
            if d != self.client_dir and not (mid_connection and tls):
                if self._early_bytes < EARLY_LIMIT:  # e.g. a banner before the client spoke
                    self._early.append((seq, data, wire_len, ts, frame))
                    self._early_bytes += len(data)
                return
            if d == self.client_dir:
                self.client_payload_tls = tls
            if not tls:
                if self.syn_ts is not None or self.syn_ack is not None:  # the stream's start is known
                    self._start_watch()
                    self._after_watch_began(d, seq, data, wire_len, ts, frame)
                else:
                    self.mode = SKIP
                    self._early.clear()
                return
            self._start_deep()
            if self.mode != DEEP:
                return
        self._feed(d, seq, data, wire_len, ts, frame)

    def _start_watch(self) -> None:
        """The client spoke cleartext first: follow the protocol in case it upgrades to TLS (STARTTLS, tunnels)."""
        from analyzer.tcp.starttls import StartTlsWatcher  # imported when a cleartext conversation needs it

        self.mode = WATCH
        pa, pb = self.ports
        self.watcher = StartTlsWatcher(pb if self.client_dir == 0 else pa)
        self.reasm = [Reassembler(self.isn[0]), Reassembler(self.isn[1])]
        early, self._early = self._early, []
        self._early_bytes = 0
        server_d = 1 - (self.client_dir or 0)
        for seq, data, wire_len, ts, frame in early:  # the server's banner came first
            self._after_watch_began(server_d, seq, data, wire_len, ts, frame)

    def _after_watch_began(self, d: int, seq: int, data: bytes, wire_len: int, ts: int, frame: int) -> None:
        """A segment once following the cleartext protocol began: an earlier segment may already have
        ended it (a gap, a protocol the watcher gave up on) or upgraded the stream to TLS."""
        if self.mode == WATCH:
            self._watch(d, seq, data, wire_len, ts, frame)
        elif self.mode == DEEP:
            self._feed(d, seq, data, wire_len, ts, frame)

    def _watch(self, d: int, seq: int, data: bytes, wire_len: int, ts: int, frame: int) -> None:
        from analyzer.tcp import starttls

        assert self.reasm is not None and self.watcher is not None
        watcher = self.watcher
        side = self.side(d)
        for piece in self.reasm[d].add(seq, data, wire_len):
            if self.mode == DEEP:  # upgraded in an earlier piece of this segment
                self._deliver(side, piece, ts, frame)
                continue
            if isinstance(piece, Gap):
                self._stop_watch()
                return
            if self.adat is None and side == CLIENT and b"AUTH GSSAPI" in piece[:64].upper():
                self._start_adat(ts, frame)
            if self.adat is not None:
                self._adat_feed(side, piece, ts, frame)
                continue
            found = watcher.client_data(piece) if side == CLIENT else watcher.server_data(piece)
            if found is None:
                continue
            if isinstance(found, starttls.Upgrade):
                self._upgrade(found, ts, frame)
            else:
                self.starttls, self.starttls_outcome = found.protocol.value, found
                self._event(ts, frame, d, "starttls_refused", f"{found.protocol.value}: {found.detail}")
        if self.mode == WATCH and watcher.gave_up and self.adat is None:
            self._stop_watch()

    def _start_adat(self, ts: int, frame: int) -> None:
        """FTP with RFC 2228 AUTH GSSAPI (GridFTP): TLS inside base64 ADAT commands."""
        from analyzer.tcp.starttls import AdatTunnel

        self.adat = AdatTunnel()
        self.starttls = "ftp_adat"
        self.client_payload_tls = True
        self.obs = TlsObserver(self.events, self.keys)
        self._event(ts, frame, self.client_dir or 0, "starttls", "ftp AUTH GSSAPI: TLS inside ADAT tokens")

    def _adat_feed(self, side: int, piece: bytes, ts: int, frame: int) -> None:
        assert self.adat is not None and self.obs is not None
        tls = self.adat.feed(side == CLIENT, piece)
        if tls:
            self.obs.data(side, tls, ts, frame)
        if self.adat.done or self.obs.done:
            self.mode = DEEP  # nothing more to decode; the observer has what it needs
            self.stop_deep()

    def _upgrade(self, up: Upgrade, ts: int, frame: int) -> None:
        assert self.watcher is not None
        self.starttls, self.tunnel_target, self.starttls_outcome = up.protocol.value, up.tunnel_target, None
        self.client_payload_tls = True
        self.mode = DEEP
        self.obs = TlsObserver(self.events, self.keys)
        target = f" to {up.tunnel_target}" if up.tunnel_target else ""
        self._event(ts, frame, self.client_dir or 0, "starttls", f"{up.protocol.value}{target}: TLS starts here")
        self.obs.data(CLIENT, self.watcher.tls_head(True), ts, frame)
        self.obs.data(SERVER, self.watcher.tls_head(False), ts, frame)
        self.watcher = None

    def _stop_watch(self) -> None:
        self.mode = SKIP
        self.reasm = None
        self.watcher = None

    def _deliver(self, side: int, piece: bytes | Gap, ts: int, frame: int) -> None:
        assert self.obs is not None
        if isinstance(piece, Gap):
            self.obs.gap(side, ts, frame, piece.length)
        else:
            self.obs.data(side, piece, ts, frame)

    def _start_deep(self) -> None:
        self.mode = DEEP
        self.obs = TlsObserver(self.events, self.keys)
        self.reasm = [Reassembler(self.isn[0]), Reassembler(self.isn[1])]
        early, self._early = self._early, []
        self._early_bytes = 0
        for seq, data, wire_len, ts, frame in early:
            if self.mode != DEEP:
                return
            self._feed(1 - self.client_dir if self.client_dir is not None else 1, seq, data, wire_len, ts, frame)

    def _feed(self, d: int, seq: int, data: bytes, wire_len: int, ts: int, frame: int) -> None:
        assert self.obs is not None and self.reasm is not None
        side = self.side(d)
        for piece in self.reasm[d].add(seq, data, wire_len):
            if isinstance(piece, Gap):
                self.obs.gap(side, ts, frame, piece.length)
            else:
                self.obs.data(side, piece, ts, frame)
        obs = self.obs
        if obs.done or (obs.layers[side].error and (side == SERVER or obs.client_hello is None)):
            self.stop_deep()

    def stop_deep(self) -> None:
        """Handshake understood (or hopeless): from now on only the header pass sees this flow."""
        self.mode = SKIP
        self.reasm = None

    def finish(self, end_ts: int) -> None:
        """End of capture: deliver bytes still waiting behind holes, then resolve event sides."""
        if self.mode == WATCH and self.watcher is not None:
            last = self.watcher.finish()
            if last is not None:
                self.starttls, self.starttls_outcome = last.protocol.value, last
            self._stop_watch()
        if self.reasm is not None and self.obs is not None:
            for d in (0, 1):
                side = self.side(d)
                for piece in self.reasm[d].finish():
                    if isinstance(piece, Gap):
                        self.obs.gap(side, end_ts, 0, piece.length)
                    else:
                        self.obs.data(side, piece, end_ts, 0)
        self.reasm = None
        if self.client_dir is None:
            self.client_dir = self._guess_client_dir()
        self.events = [
            (ts, fr, (CLIENT if -1 - s == self.client_dir else SERVER) if s < 0 else s, kind, det)
            for ts, fr, s, kind, det in self.events
        ]
        self.events.sort(key=lambda e: (e[0], e[1]))
