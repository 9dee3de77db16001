"""What one connection's packets show, in client/server terms, for the cause rules to read."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from analyzer.tcp.flow import Flow
from analyzer.tls.messages import printable
from analyzer.tls.observer import CLIENT, FINISHED_MIN, SERVER, AlertSeen, RecordSeen, TlsObserver
from analyzer.tls.records import CT_APPDATA, looks_like_tls

if TYPE_CHECKING:
    from analyzer.x509.ocsp import OcspVerdict
    from analyzer.x509.validate import ChainVerdict


def ms(ns: int) -> str:
    """A duration for people: 0.4 ms, 12 ms, 3.2 s."""
    if ns < 10_000_000:
        return f"{ns / 1e6:.1f} ms"
    if ns < 10_000_000_000:
        return f"{ns / 1e6:.0f} ms" if ns < 1_000_000_000 else f"{ns / 1e9:.1f} s"
    return f"{ns / 1e9:.0f} s"


def quote(raw: bytes, limit: int = 40) -> str:
    text = printable(raw[:limit]).replace("\\x0d\\x0a", " ").replace("\\x0a", " ")
    return f'"{text}{"..." if len(raw) > limit else ""}"'


@dataclass(slots=True)
class ServerProfile:
    """What one server endpoint (address, port) agreed to across the capture: the yardstick for a
    negotiation failure ("this server negotiated TLS 1.2 and 1.3 with 412 other clients")."""

    versions: Counter[int] = field(default_factory=Counter)
    ciphers: Counter[int] = field(default_factory=Counter)
    connections: int = 0

    def add(self, version: int, cipher: int) -> None:
        self.versions[version] += 1
        self.ciphers[cipher] += 1
        self.connections += 1


@dataclass(slots=True)
class Evidence:
    flow: Flow
    capture_end_ns: int
    server_speaks_tls_elsewhere: bool = False
    server: ServerProfile | None = None  # what this server endpoint negotiated in the capture's other connections
    cert_verdict: ChainVerdict | None = None  # the server chain this connection carried, judged at its time
    ocsp: OcspVerdict | None = None  # the stapled OCSP response, checked
    client_cert_verdict: ChainVerdict | None = None
    user_anchors: bool = False  # the user named the anchors (--ca-bundle or the system store)
    store_current: bool = True  # the trust store is recent enough for this capture (roots get removed over time)
    peer_verdict: tuple[str, ChainVerdict, OcspVerdict | None] | None = (
        None  # the same server's visible chain elsewhere
    )

    # ------------------------------------------------------------------ TCP, by side
    def _by_side(self, pair: list[tuple[int, int] | None], side: int) -> tuple[int, int] | None:
        cd = self.flow.client_dir or 0
        return pair[cd if side == CLIENT else 1 - cd]

    def rst(self, side: int) -> tuple[int, int] | None:
        return self._by_side(self.flow.rst, side)

    def fin(self, side: int) -> tuple[int, int] | None:
        return self._by_side(self.flow.fin, side)

    def close(self, side: int) -> tuple[int, int, str] | None:
        """The first FIN or RST from ``side``: (ts, frame, 'FIN'|'RST')."""
        r, f = self.rst(side), self.fin(side)
        cands = [(x[0], x[1], name) for x, name in ((r, "RST"), (f, "FIN")) if x is not None]
        return min(cands) if cands else None

    def packets(self, side: int) -> int:
        cd = self.flow.client_dir or 0
        return self.flow.pkts[cd if side == CLIENT else 1 - cd]

    def first_payload(self, side: int) -> tuple[int, int, bytes] | None:
        cd = self.flow.client_dir or 0
        return self.flow.first_payload[cd if side == CLIENT else 1 - cd]

    @property
    def server_port(self) -> int:
        pa, pb = self.flow.ports
        return pb if self.flow.client_dir == 0 else pa

    @property
    def obs(self) -> TlsObserver | None:
        return self.flow.obs

    @property
    def syn_seen(self) -> bool:
        return self.flow.syn_ts is not None

    def server_sent_tls(self) -> bool:
        fp = self.first_payload(SERVER)
        return fp is not None and looks_like_tls(fp[2])

    # ------------------------------------------------------------------ TLS positions
    def first_fatal_alert(self) -> AlertSeen | None:
        obs = self.obs
        if obs is None:
            return None
        for a in obs.alerts:
            if a.fatal:
                return a
        return None

    def lone_encrypted_record(self, side: int, after_ts: int) -> RecordSeen | None:
        """A single short application-data record from ``side`` after ``after_ts``, then close: an alert."""
        obs = self.obs
        if obs is None:
            return None
        recs = [r for r in obs.records if r.side == side and r.ts_ns >= after_ts and r.content_type == CT_APPDATA]
        if len(recs) == 1 and recs[0].length < FINISHED_MIN:
            return recs[0]
        return None
