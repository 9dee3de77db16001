"""Rows from analysed flows into the DataFrames declared in schema.py."""

from __future__ import annotations

import functools
import hashlib
import socket
from dataclasses import dataclass, field

from analyzer import schema
from analyzer.diagnose.evidence import Evidence
from analyzer.diagnose.rules import Verdict
from analyzer.diagnose.stacks import client_stack
from analyzer.report.remediation import remedy
from analyzer.tcp.flow import Flow
from analyzer.tls import fingerprints as fp
from analyzer.tls.observer import CLIENT, SIDE_NAMES, TlsObserver
from analyzer.tls.registry import cipher_name, group_name, version_name

EXT_PSK = 41


_ADDRESSES: dict[tuple[int, ...], str] = {}  # address words to text: servers and clients recur in every row
ADDRESSES_MAX = 1 << 16


def endpoint_ip(key: tuple[int, ...], which: int) -> str:
    """Address text of endpoint A (0) or B (1) of a canonical flow key."""
    words = key[0:5] if which == 0 else (key[0], *key[6:10])
    text = _ADDRESSES.get(words)
    if text is not None:
        return text
    if key[0] == 4:
        text = socket.inet_ntop(socket.AF_INET, words[4].to_bytes(4, "big"))
    else:
        text = socket.inet_ntop(socket.AF_INET6, b"".join(w.to_bytes(4, "big") for w in words[1:]))
    if len(_ADDRESSES) >= ADDRESSES_MAX:
        _ADDRESSES.clear()
    _ADDRESSES[words] = text
    return text


B32 = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32, lower case


def conn_id(flow: Flow) -> str:
    """Stable for the same connection whatever else the capture holds: 4-tuple + first packet time.
    "C" + the first 15 base32 digits of an 80-bit BLAKE2b (what base64.b32encode gives, without its cost)."""
    return conn_id_of(flow.key, flow.first_ts)


B32_PAIRS = [a + b for a in B32 for b in B32]  # two base32 digits per 10 bits


def conn_id_of(key: tuple[int, ...], first_ts: int) -> str:
    n = int.from_bytes(hashlib.blake2b(repr((key, first_ts)).encode(), digest_size=10).digest(), "big")
    pairs = B32_PAIRS
    text = "".join([pairs[(n >> shift) & 1023] for shift in (70, 60, 50, 40, 30, 20, 10, 0)])
    return "C" + text[:15]


def _versions_offered(obs: TlsObserver) -> str | None:
    ch = obs.client_hello
    if ch is None:
        return None
    vs = [v for v in ch.supported_versions if not fp.is_grease(v)] or [ch.legacy_version]
    return ",".join(version_name(v) or "" for v in sorted(vs, reverse=True))


def _resumed(obs: TlsObserver) -> bool | None:
    sh, ch = obs.server_hello, obs.client_hello
    if sh is None or ch is None:
        return None
    if obs.tls13:
        return EXT_PSK in sh.extension_types
    return bool(sh.session_id) and sh.session_id == ch.session_id and obs.server_certificate is None


def fingerprints(obs: TlsObserver) -> tuple[str | None, str | None]:
    ch = obs.client_hello
    if ch is None or ch.sslv2:
        return None, None  # JA3 and JA4 are defined over TLS-format ClientHellos only
    return _fingerprints(
        ch.legacy_version,
        ch.cipher_suites,
        ch.extension_types,
        ch.supported_groups,
        ch.ec_point_formats,
        ch.supported_versions,
        ch.sni is not None,
        ch.alpn,
        ch.signature_algorithms,
    )


@functools.lru_cache(maxsize=4096)
def _fingerprints(
    legacy: int,
    ciphers: tuple[int, ...],
    ext: tuple[int, ...],
    groups: tuple[int, ...],
    pf: tuple[int, ...],
    versions: tuple[int, ...],
    has_sni: bool,
    alpn: tuple[str, ...],
    sig_algs: tuple[int, ...],
) -> tuple[str, str]:
    """Cached: a capture holds thousands of hellos from a handful of client stacks."""
    ja3 = fp.ja3(legacy, ciphers, ext, groups, pf)
    ja4 = fp.ja4(
        transport="t",
        versions=versions,
        legacy_version=legacy,
        sni="sni" if has_sni else None,
        ciphers=ciphers,
        extensions=ext,
        alpn=alpn,
        sig_algs=sig_algs,
    )
    return ja3, ja4


HANDSHAKE_NAMES = tuple(c.name for c in schema.HANDSHAKES)


@functools.lru_cache(maxsize=64)
def remediation_text(cause: str) -> str:
    """One shared string per cause (a million failed rows must not carry a million copies)."""
    fix = remedy(cause)
    return f"{fix.side}: {fix.action}"


@dataclass(slots=True)
class TableBuilder:
    """Accumulates columns; one instance per analysis."""

    files: list[str]
    # streaming (the CLI writing a file): the caller drains the handshakes rows as they are built,
    # and with ``details=False`` the alerts/events/chains rows and the certificates inventory are
    # not built at all, so memory does not grow with the rows
    details: bool = True
    _hs_rows: list[tuple[object, ...]] = field(default_factory=list)
    _al_rows: list[tuple[object, ...]] = field(default_factory=list)
    _ev_rows: list[tuple[object, ...]] = field(default_factory=list)
    _chain_rows: list[tuple[object, ...]] = field(default_factory=list)
    cert_seen: dict[str, tuple[bytes, int, int, int]] = field(default_factory=dict)  # sha -> (der, first, last, count)

    def add(self, flow: Flow, ev: Evidence, verdict: Verdict, rule: str, file_index: int) -> str:
        cid = conn_id(flow)
        cd = flow.client_dir or 0
        obs = flow.obs
        h: dict[str, object] = {}
        alerts: list[tuple[object, ...]] = []
        chains: list[tuple[object, ...]] = []
        h["conn_id"] = cid
        h["ts"] = flow.first_ts
        h["client_ip"] = endpoint_ip(flow.key, cd)
        h["server_ip"] = endpoint_ip(flow.key, 1 - cd)
        pa, pb = flow.ports
        h["client_port"] = pa if cd == 0 else pb
        h["server_port"] = pb if cd == 0 else pa
        h["outcome"] = verdict.outcome.value
        h["failure_cause"] = verdict.cause.value if verdict.cause else None
        if verdict.cause is not None:
            h["remediation"] = remediation_text(verdict.cause.value)
        h["failure_detail"] = verdict.detail
        h["confidence"] = verdict.confidence.value if verdict.confidence else None
        h["rule"] = rule
        close = ev.close(CLIENT), ev.close(1 - CLIENT)
        cands = [(c[0], SIDE_NAMES[i], c[2]) for i, c in enumerate(close) if c]
        h["starttls"] = flow.starttls
        h["tunnel_target"] = flow.tunnel_target
        h["tcp_close"] = f"{min(cands)[1]} {min(cands)[2]}" if cands else None
        h["duration_ms"] = (flow.last_ts - flow.first_ts) / 1e6
        h["client_packets"] = flow.pkts[cd]
        h["server_packets"] = flow.pkts[1 - cd]
        h["client_bytes"] = flow.bytes[cd]
        h["server_bytes"] = flow.bytes[1 - cd]
        h["first_frame"] = flow.first_frame
        h["capture_file"] = self.files[file_index] if file_index < len(self.files) else None
        notes: list[str] = []
        if flow.syn_ts is None and flow.syn_ack is None:
            notes.append("capture began mid-connection")
        gaps = [e for e in flow.events if e[3] == "gap"]
        if gaps:
            missing = sum(int(e[4].split()[0]) for e in gaps)
            notes.append(f"{len(gaps)} gap(s), {missing} bytes missing from the capture (lost packets or snap length)")
        tls_cols = dict.fromkeys(
            (
                "sni",
                "version",
                "cipher",
                "alpn",
                "alert",
                "alert_sender",
                "ja3",
                "ja4",
                "cert_sha256",
                "offered_versions",
                "client_stack",
                "keylog_status",
                "offered_alpn",
                "curve",
                "resumed",
                "hello_retry",
                "cert_request",
                "client_cert_sent",
                "cert_chain_len",
                "history",
                "handshake_ms",
            ),
        )
        if obs is not None:
            ch, sh = obs.client_hello, obs.server_hello
            tls_cols["history"] = "".join(obs.history) or None
            tls_cols["hello_retry"] = obs.hello_retry
            if ch is not None:
                tls_cols["sni"] = ch.sni
                tls_cols["offered_versions"] = _versions_offered(obs)
                tls_cols["offered_alpn"] = ",".join(ch.alpn) if ch.alpn else None
                tls_cols["ja3"], tls_cols["ja4"] = fingerprints(obs)
                tls_cols["client_stack"] = client_stack(tls_cols["ja4"])
            if sh is not None:
                tls_cols["version"] = version_name(sh.selected_version)
                tls_cols["cipher"] = cipher_name(sh.cipher_suite)
                tls_cols["alpn"] = sh.alpn or obs.alpn
                group = sh.key_share_group
                if group is None and obs.server_key_exchange is not None:
                    group = obs.server_key_exchange.group
                tls_cols["curve"] = group_name(group)
                tls_cols["resumed"] = _resumed(obs)
                tls_cols["cert_request"] = obs.certificate_request is not None if not obs.tls13 else None
                if obs.client_certificate is not None:
                    tls_cols["client_cert_sent"] = bool(obs.client_certificate.entries)
            seen_at = obs.server_certificate_ts or flow.first_ts
            for sent_by, cert in (("server", obs.server_certificate), ("client", obs.client_certificate)):
                if cert is None:
                    continue
                for position, entry in enumerate(cert.entries):
                    sha = self._cert(entry.der, seen_at) if self.details else hashlib.sha256(entry.der).hexdigest()
                    chains.append((cid, position, sha, sent_by))
                    if position == 0:
                        tls_cols["cert_sha256" if sent_by == "server" else "client_cert_sha256"] = sha
                if sent_by == "server":
                    tls_cols["cert_chain_len"] = len(cert.entries)
            a = ev.first_fatal_alert()
            if verdict.outcome.value == "failed" and a is None and verdict.rule_alert is not None:
                tls_cols["alert"], tls_cols["alert_sender"] = verdict.rule_alert
            elif a is not None:
                tls_cols["alert"], tls_cols["alert_sender"] = a.name, SIDE_NAMES[a.side]
            end = obs.finished_ts[CLIENT] if obs.established else None
            if end is None and a is not None:
                end = a.ts_ns
            if end is None and verdict.outcome.value == "failed":
                c = [x[0] for x in close if x]
                end = min(c) if c else None
            if obs.client_hello_ts is not None and end is not None:
                tls_cols["handshake_ms"] = (end - obs.client_hello_ts) / 1e6
            notes.extend(obs.parse_errors[:3])
            tls_cols["keylog_status"] = obs.keylog_status
            for a2 in obs.alerts if self.details else ():
                level = None if a2.level is None else {1: "warning", 2: "fatal"}.get(a2.level, str(a2.level))
                alerts.append(
                    (cid, a2.ts_ns, a2.frame, SIDE_NAMES[a2.side], level, a2.name, a2.description, a2.encrypted)
                )
        for k, v in tls_cols.items():
            h[k] = v
        v = ev.cert_verdict
        if v is not None:
            h["validation_status"] = v.status
            h["validation_detail"] = v.detail + (f"; {v.strict_detail}" if v.strict_detail else "")
            h["sni_matches_cert"] = v.sni_matches
            h["days_to_expiry"] = v.days_to_expiry
            h["strict_ok"] = v.strict_ok
            h["trust_source"] = v.anchor_source
            notes.extend(v.warnings[:3])
        if ev.ocsp is not None:
            h["ocsp_status"] = ev.ocsp.status + (" (stale)" if ev.ocsp.stale else "")
        if ev.client_cert_verdict is not None:
            h["client_validation_status"] = ev.client_cert_verdict.status
        h["notes"] = "; ".join(notes) or None
        events = [
            (cid, ts, frame, SIDE_NAMES[side], kind, detail or None, (ts - flow.first_ts) / 1e6)
            for ts, frame, side, kind, detail in (flow.events if self.details else ())
        ]
        # all or nothing: a row that fails to build leaves the tables aligned
        self._hs_rows.append(tuple(h.get(name) for name in HANDSHAKE_NAMES))
        if self.details:
            self._al_rows.extend(alerts)
            self._ev_rows.extend(events)
            self._chain_rows.extend(chains)
        return cid

    def drain(self) -> list[tuple[object, ...]]:
        """The handshakes rows built since the last drain, handed over and no longer kept."""
        rows, self._hs_rows = self._hs_rows, []
        return rows

    def drain_all(
        self,
    ) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[tuple[object, ...]], list[tuple[object, ...]]]:
        """The handshakes, alerts, events and chains rows built since the last drain (a worker process
        hands them to the parent connection by connection)."""
        out = self._hs_rows, self._al_rows, self._ev_rows, self._chain_rows
        self._hs_rows, self._al_rows, self._ev_rows, self._chain_rows = [], [], [], []
        return out

    @staticmethod
    def from_rows(
        hs: list[tuple[object, ...]],
        al: list[tuple[object, ...]],
        ev: list[tuple[object, ...]],
        ch: list[tuple[object, ...]],
    ) -> dict[str, schema.Columns]:
        """Tables from rows (also gathered elsewhere: the parent of --jobs workers)."""
        tables = (("handshakes", hs), ("alerts", al), ("events", ev), ("chains", ch))
        return {name: _columns(schema.TABLES[name], rows) for name, rows in tables}

    def tables(self) -> dict[str, schema.Columns]:
        """Rows turned into columns in one pass (C speed), in schema order."""
        return TableBuilder.from_rows(self._hs_rows, self._al_rows, self._ev_rows, self._chain_rows)

    def _cert(self, der: bytes, ts: int) -> str:
        sha = hashlib.sha256(der).hexdigest()
        old = self.cert_seen.get(sha)
        if old is None:
            self.cert_seen[sha] = (der, ts, ts, 1)
        else:
            self.cert_seen[sha] = (der, min(ts, old[1]), max(ts, old[2]), old[3] + 1)
        return sha


def _columns(columns: tuple[schema.Column, ...], rows: list[tuple[object, ...]]) -> schema.Columns:
    names = [c.name for c in columns]
    cols = list(map(list, zip(*rows, strict=True))) if rows else [[] for _ in names]
    return dict(zip(names, cols, strict=True))
