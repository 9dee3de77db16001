"""AnalysisResult: the DataFrames of one analysis, its warnings, and people-facing summaries."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import pandas as pd


@dataclass(slots=True)
class AnalysisResult:
    handshakes: pd.DataFrame
    certificates: pd.DataFrame
    alerts: pd.DataFrame
    events: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    packets: int = 0
    first_ts: pd.Timestamp | None = None
    last_ts: pd.Timestamp | None = None

    @property
    def failures(self) -> pd.DataFrame:
        return self.handshakes[self.handshakes["outcome"] == "failed"]

    def summary(self) -> str:
        hs = self.handshakes
        counts = hs["outcome"].value_counts()
        lines = [
            f"{len(hs)} TLS connection(s) in {self.packets} packets"
            + (
                f", {self.first_ts:%Y-%m-%d %H:%M:%S} to {self.last_ts:%Y-%m-%d %H:%M:%S} UTC"
                if self.first_ts is not None and self.last_ts is not None
                else ""
            ),
            ", ".join(f"{counts.get(o, 0)} {o}" for o in ("established", "failed", "incomplete")),
        ]
        causes = self.failures["failure_cause"].value_counts()
        for cause, n in causes.items():
            lines.append(f"  {n:>6}  {cause}")
        if self.warnings:
            lines.append(f"{len(self.warnings)} warning(s); first: {self.warnings[0]}")
        return "\n".join(lines)

    def explain(self, conn_id: str) -> str:
        """The story of one connection: its row and its timeline."""
        rows = self.handshakes[self.handshakes["conn_id"] == conn_id]
        if rows.empty:
            raise KeyError(f"no connection {conn_id!r} in this result")
        r = rows.iloc[0]
        head = f"{r.conn_id}  {r.client_ip}:{r.client_port} -> {r.server_ip}:{r.server_port}"
        if pd.notna(r.sni):
            head += f"  SNI {r.sni}"
        lines = [
            head,
            f"outcome: {r.outcome}" + (f" ({r.failure_cause}, {r.confidence})" if pd.notna(r.failure_cause) else ""),
        ]
        if pd.notna(r.failure_detail):
            lines.append(f"why: {r.failure_detail}")
        for k in ("version", "cipher", "alpn", "alert", "ja4", "cert_sha256", "history", "notes"):
            value = r[k]
            if isinstance(value, str):
                lines.append(f"{k}: {value}")
        ev = self.events[self.events["conn_id"] == conn_id]
        lines.append("timeline:")
        for e in ev.itertuples():
            arrow = "->" if e.direction == "client" else "<-"
            detail = f"  {e.detail}" if isinstance(e.detail, str) else ""
            lines.append(f"  {e.dt_ms:10.3f} ms  frame {e.frame:<6} {arrow} {e.event}{detail}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return "<pre>" + html.escape(self.summary()) + "</pre>"

    def __repr__(self) -> str:
        return f"<AnalysisResult: {self.summary().splitlines()[1] if len(self.handshakes) else 'no TLS connections'}>"
