"""AnalysisResult: the tables of one analysis (DataFrames built on first use), warnings, summaries."""

from __future__ import annotations

import functools
import html
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from analyzer import schema

if TYPE_CHECKING:
    import pandas as pd
    from scapy.plist import PacketList


def iso(ns: int | None) -> str:
    """Nanoseconds since the epoch as ISO 8601 UTC with all nine digits (2024-05-01T12:00:00.000000123Z)."""
    if ns is None:
        return ""
    sec, frac = divmod(ns, 1_000_000_000)
    day, rest = divmod(sec, 86_400)
    hour, rest = divmod(rest, 3_600)
    return f"{_iso_day(day)}T{hour:02d}:{rest // 60:02d}:{rest % 60:02d}.{frac:09d}Z"


@functools.lru_cache(maxsize=4096)
def _iso_day(day: int) -> str:
    """Cached: a capture's rows share their days (the calendar is most of a timestamp's cost)."""
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")


def _rule_story(fired: object) -> list[str]:
    """Which rule decided, and the ones before it that did not apply (the rule table is ordered)."""
    from analyzer.diagnose.rules import RULE_TABLE

    names = [name for name, _, _ in RULE_TABLE]
    if not isinstance(fired, str) or fired not in names:
        return []
    when = {name: text for name, _, text in RULE_TABLE}
    before = names[: names.index(fired)]
    lines = [f"decided by rule {fired}: {when[fired]}"]
    if before:
        lines.append("rules checked first, which did not apply: " + "; ".join(f"{n} ({when[n]})" for n in before))
    return lines


class PacketCount(int):
    """The number of packets an analysis read; called with a conn_id, that connection's packets (PacketList)."""

    _result: AnalysisResult

    def __new__(cls, value: int, result: AnalysisResult) -> PacketCount:
        obj = super().__new__(cls, value)
        obj._result = result
        return obj

    def __call__(self, conn_id: str) -> PacketList:
        from analyzer.extract import packet_list

        return packet_list(self._result, conn_id)


class AnalysisResult:
    """``handshakes``, ``certificates``, ``chains``, ``alerts``, ``events``: pandas DataFrames (schema.py declares
    every column); ``columns[name]``: the same tables as plain column lists; ``warnings``: what could
    not be read, with file and frame numbers."""

    def __init__(
        self,
        columns: dict[str, schema.Columns],
        warnings: list[str],
        files: list[str],
        packets: int,
        first_ts_ns: int | None,
        last_ts_ns: int | None,
        trust: dict[str, str] | None = None,
    ) -> None:
        self.columns = columns
        self.warnings = warnings
        self.files = files
        self.packets = packets
        self.first_ts_ns = first_ts_ns
        self.last_ts_ns = last_ts_ns
        self.trust = trust or {}  # which anchors the certificate verdicts used
        self._frames: dict[str, pd.DataFrame] = {}

    def _frame(self, name: str) -> pd.DataFrame:
        if name not in self._frames:
            self._frames[name] = schema.frame(schema.TABLES[name], self.columns[name])
        return self._frames[name]

    @property
    def handshakes(self) -> pd.DataFrame:
        return self._frame("handshakes")

    @property
    def certificates(self) -> pd.DataFrame:
        return self._frame("certificates")

    @property
    def alerts(self) -> pd.DataFrame:
        return self._frame("alerts")

    @property
    def events(self) -> pd.DataFrame:
        return self._frame("events")

    @property
    def chains(self) -> pd.DataFrame:
        """Long table (conn_id, position, cert_sha256, sent_by): join chains without lists in cells."""
        return self._frame("chains")

    @property
    def failures(self) -> pd.DataFrame:
        return self.handshakes[self.handshakes["outcome"] == "failed"]

    def summary(self) -> str:
        hs = self.columns["handshakes"]
        outcomes = Counter(hs["outcome"])
        span = ""
        if self.first_ts_ns is not None and self.last_ts_ns is not None:
            span = f", {iso(self.first_ts_ns)[:19]} to {iso(self.last_ts_ns)[:19]} UTC"
        lines = [
            f"{len(hs['conn_id'])} TLS connection(s) in {self.packets} packets{span}",
            ", ".join(f"{outcomes.get(o, 0)} {o}" for o in ("established", "failed", "incomplete")),
        ]
        for cause, n in Counter(c for c in hs["failure_cause"] if c).most_common():
            lines.append(f"  {n:>6}  {cause}")
        failed = [i for i, o in enumerate(hs["outcome"]) if o == "failed"]
        for title, key in (("servers", "server"), ("client stacks", "client_stack")):
            counts: Counter[str] = Counter()
            for i in failed:
                if key == "server":
                    sni = hs["sni"][i]
                    counts[f"{hs['server_ip'][i]}:{hs['server_port'][i]}" + (f" ({sni})" if sni else "")] += 1
                else:
                    counts[str(hs["client_stack"][i] or "unknown")] += 1
            if counts:
                top = ", ".join(f"{name} {n}" for name, n in counts.most_common(5))
                lines.append(f"failures by {title}: {top}")
        if self.warnings:
            lines.append(f"{len(self.warnings)} warning(s); first: {self.warnings[0]}")
        return "\n".join(lines)

    def explain(self, conn_id: str) -> str:
        """The story of one connection: its row and its timeline."""
        hs = self.columns["handshakes"]
        try:
            i = hs["conn_id"].index(conn_id)
        except ValueError:
            raise KeyError(f"no connection {conn_id!r} in this result") from None
        r = {k: v[i] for k, v in hs.items()}
        head = f"{r['conn_id']}  {r['client_ip']}:{r['client_port']} -> {r['server_ip']}:{r['server_port']}"
        if r["sni"]:
            head += f"  SNI {r['sni']}"
        lines = [
            head,
            f"outcome: {r['outcome']}" + (f" ({r['failure_cause']}, {r['confidence']})" if r["failure_cause"] else ""),
        ]
        if r["failure_detail"]:
            lines.append(f"why: {r['failure_detail']}")
        for k in (
            "version",
            "cipher",
            "alpn",
            "alert",
            "ja4",
            "client_stack",
            "starttls",
            "tunnel_target",
            "cert_sha256",
            "validation_status",
            "validation_detail",
            "ocsp_status",
            "trust_source",
            "keylog_status",
            "history",
            "notes",
        ):
            if r[k] is not None:
                lines.append(f"{k}: {r[k]}")
        lines.extend(_rule_story(r.get("rule")))
        ev = self.columns["events"]
        lines.append("timeline:")
        for j, cid in enumerate(ev["conn_id"]):
            if cid != conn_id:
                continue
            arrow = "->" if ev["direction"][j] == "client" else "<-"
            detail = f"  {ev['detail'][j]}" if ev["detail"][j] else ""
            lines.append(f"  {ev['dt_ms'][j]:10.3f} ms  frame {ev['frame'][j]:<6} {arrow} {ev['event'][j]}{detail}")
        return "\n".join(lines)

    @property
    def packets(self) -> PacketCount:
        """How many packets were read (an int); ``result.packets(conn_id)``: that connection's packets, read again
        from ``files`` (4-tuple and time span), as a scapy PacketList."""
        return PacketCount(self._packet_count, self)

    @packets.setter
    def packets(self, value: int) -> None:
        self._packet_count = int(value)

    def _repr_html_(self) -> str:
        """Compact notebook summary: counts, capture window, causes, most failing servers; every string escaped."""
        e = html.escape
        hs = self.columns["handshakes"]
        outcomes = Counter(hs["outcome"])
        span = "no packets"
        if self.first_ts_ns is not None and self.last_ts_ns is not None:
            span = f"{iso(self.first_ts_ns)[:19]} to {iso(self.last_ts_ns)[:19]} UTC"
        parts = [
            f"<p><b>{len(hs['conn_id'])} TLS connection(s)</b> in {self.packets} packets, {e(span)}: "
            + ", ".join(f"{outcomes.get(o, 0)} {o}" for o in ("established", "failed", "incomplete"))
            + "</p>"
        ]
        failed = [i for i, o in enumerate(hs["outcome"]) if o == "failed"]
        servers: Counter[str] = Counter()
        for i in failed:
            sni = hs["sni"][i]
            servers[f"{hs['server_ip'][i]}:{hs['server_port'][i]}" + (f" ({sni})" if sni else "")] += 1
        causes = Counter(str(hs["failure_cause"][i] or "other") for i in failed)
        for title, counts in (("cause", causes), ("failing server", servers)):
            if counts:
                cells = "".join(f"<tr><td>{e(k)}</td><td>{v}</td></tr>" for k, v in counts.most_common(8))
                more = f"<tr><td colspan='2'>... {len(counts) - 8} more</td></tr>" if len(counts) > 8 else ""
                parts.append(f"<table><tr><th>{title}</th><th>failed</th></tr>{cells}{more}</table>")
        if self.warnings:
            parts.append(f"<p>{len(self.warnings)} warning(s); first: {e(self.warnings[0])}</p>")
        return "<div>" + "".join(parts) + "</div>"

    def __repr__(self) -> str:
        return f"<AnalysisResult: {self.summary().splitlines()[1]}>"
