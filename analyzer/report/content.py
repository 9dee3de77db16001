"""What the incident report says: builds the Document (sections, tables, figures) from an AnalysisResult."""

from __future__ import annotations

import os
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analyzer import plot
from analyzer.report.document import (
    Bullets,
    Code,
    Document,
    Figure,
    Inline,
    Link,
    Para,
    Pre,
    Section,
    Strong,
    Table,
    render_figure,
)
from analyzer.report.remediation import remedy

if TYPE_CHECKING:
    from analyzer.result import AnalysisResult

LEGACY_VERSIONS = {"SSL 2.0", "SSL 3.0", "TLS 1.0", "TLS 1.1"}
WEAK_CIPHER_MARKS = (
    ("_NULL_", "no encryption"),
    ("_EXPORT", "export grade"),
    ("_RC4_", "RC4"),
    ("_3DES_", "3DES"),
    ("_DES_", "DES"),
    ("_anon_", "anonymous"),
)
APPENDIX_COLUMNS = (
    ("conn_id", "conn_id"),
    ("ts", "time (UTC)"),
    ("client", "client"),
    ("server", "server"),
    ("sni", "SNI"),
    ("version", "version"),
    ("cipher", "cipher"),
    ("outcome", "outcome"),
    ("failure_cause", "cause"),
    ("confidence", "confidence"),
    ("alert", "alert"),
    ("handshake_ms", "handshake ms"),
)


def slug(text: str) -> str:
    """An anchor made of [a-z0-9-] only (safe in an id attribute and in a Markdown link)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def when(value: object, precision: int = 3) -> str:
    """'2026-11-27 14:18:49.678 UTC' from a Timestamp or integer nanoseconds; '' for a null."""
    if value is None or (not isinstance(value, int) and bool(pd.isna(value))):  # type: ignore[call-overload]
        return ""
    raw: Any = value
    ts = pd.Timestamp(raw, unit="ns", tz="UTC") if isinstance(raw, int | np.integer) else pd.Timestamp(raw)
    text = ts.strftime("%Y-%m-%d %H:%M:%S")
    if precision:
        text += f".{ts.microsecond // 10 ** (6 - precision):0{precision}d}"
    return text + " UTC"


def span_text(seconds: float) -> str:
    """'1 min 56 s', '3 h 2 min', '0.4 s'."""
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} d {hours % 24} h"


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def cell(value: object) -> object:
    """A table cell: nulls as None, floats rounded."""
    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):  # type: ignore[call-overload]
        return None
    if isinstance(value, float | np.floating):
        return f"{float(value):.3f}".rstrip("0").rstrip(".")
    return value


def counts_text(values: pd.Series, top: int = 3) -> str:
    """'cert_expired 14, tcp_refused 2 (+1 more)'."""
    c = Counter(v for v in values if isinstance(v, str))
    items = c.most_common()
    text = ", ".join(f"{k} {n}" for k, n in items[:top])
    if len(items) > top:
        text += f" (+{len(items) - top} more)"
    return text


def _fig_height(rows: int, per: float = 0.34, base: float = 1.6, lo: int = 4, hi: int = 40) -> float:
    return base + per * max(lo, min(rows, hi))


class ReportBuilder:
    """Builds the incident report; each ``section_*`` method returns one Section."""

    def __init__(self, result: AnalysisResult, *, max_appendix_rows: int = 2000, dpi: int = 90) -> None:
        self.r = result
        self.hs = result.handshakes
        self.failed = self.hs[self.hs["outcome"] == "failed"]
        self.max_appendix_rows = max_appendix_rows
        self.dpi = dpi
        self.keys = plot.server_keys(self.hs)

    # --- helpers
    def figure(self, name: str, draw: object, size: tuple[float, float], alt: str, caption: str = "") -> Figure:
        return render_figure(name, draw, size, alt, caption, dpi=self.dpi)  # type: ignore[arg-type]

    def window(self) -> tuple[str, str, str]:
        r = self.r
        if r.first_ts_ns is None or r.last_ts_ns is None:
            return "", "", ""
        return when(r.first_ts_ns, 0), when(r.last_ts_ns, 0), span_text((r.last_ts_ns - r.first_ts_ns) / 1e9)

    def causes_ranked(self) -> list[tuple[str, int]]:
        c = Counter(self.failed["failure_cause"].fillna("other"))
        return sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))

    def example(self, cause: str) -> pd.Series:
        """The connection shown for a cause: certain before inferred, then the earliest."""
        rows = self.failed[self.failed["failure_cause"].fillna("other") == cause]
        certain = rows[rows["confidence"] == "certain"]
        return (certain if not certain.empty else rows).sort_values("ts").iloc[0]

    def describe_conn(self, row: pd.Series) -> str:
        text = f"{row['client_ip']}:{row['client_port']} → {row['server_ip']}:{row['server_port']}"
        if not pd.isna(row["sni"]):
            text += f", SNI {row['sni']}"
        return text + f", at {when(row['ts'])}"

    # --- sections
    def section_headline(self) -> Section:
        hs, r = self.hs, self.r
        n = len(hs)
        oc = Counter(hs["outcome"])
        sec = Section("Headline", "headline")
        start, end, span = self.window()
        if not n:
            sec.blocks.append(
                Para([Strong("No TLS connection attempts were found in this capture"), f" ({r.packets} packets read)."])
            )
        else:
            sec.blocks.append(
                Para(
                    [
                        Strong(f"{oc.get('failed', 0)} of {n} TLS connections failed ({pct(oc.get('failed', 0), n)})"),
                        f"; {oc.get('established', 0)} established, {oc.get('incomplete', 0)} incomplete "
                        f"(the capture ended before they finished); {r.packets} packets read.",
                    ]
                )
            )
        if start:
            sec.blocks.append(
                Para(
                    [
                        f"Capture from {start} to {end} ({span}); files: ",
                        ", ".join(os.path.basename(f) for f in r.files),
                        ".",
                    ]
                )
            )
        if not self.failed.empty:
            first = self.failed.sort_values("ts").iloc[0]
            last = self.failed.sort_values("ts").iloc[-1]
            sec.blocks.append(
                Para(
                    [
                        f"First failure at {when(first['ts'])} (",
                        Code(str(first["failure_cause"])),
                        ", connection ",
                        Code(str(first["conn_id"])),
                        f"); last at {when(last['ts'])}.",
                    ]
                )
            )
            parts: list[Inline] = ["Causes, most frequent first: "]
            for i, (cause, k) in enumerate(self.causes_ranked()):
                if i:
                    parts.append(", ")
                parts += [Link(cause, f"cause-{slug(cause)}"), f" {k}"]
            parts.append(".")
            sec.blocks.append(Para(parts))
        if r.trust:
            sec.blocks.append(
                Para(
                    [
                        "Certificates were judged as of each connection's time against: "
                        + "; ".join(f"{v}" for v in r.trust.values())
                        + "."
                    ]
                )
            )
        keyed = [k for k in r.columns["handshakes"].get("keylog_status", []) if k]
        if keyed:
            decrypted = sum(1 for k in keyed if k == "decrypted")
            sec.blocks.append(
                Para(
                    [
                        f"Key logs were used: {decrypted} of {len(keyed)} TLS connection(s) with a ServerHello were "
                        "decrypted, so their certificates and alerts were read directly (keylog_status per row)."
                    ]
                )
            )
        if n:
            sec.blocks.append(
                self.figure(
                    "failures-over-time",
                    lambda ax: plot.plot_failures_over_time(self.r, ax=ax),
                    (11, 4.4),
                    "failed handshakes over time, stacked by cause; established behind in grey",
                )
            )
        if r.warnings:
            items: list[list[Inline]] = [[w] for w in r.warnings[:20]]
            if len(r.warnings) > 20:
                items.append([f"... and {len(r.warnings) - 20} more"])
            sec.blocks += [Para([f"{len(r.warnings)} warning(s) about what could not be read:"]), Bullets(items)]
        return sec

    def section_causes(self) -> Section:
        sec = Section("Causes, ranked", "causes")
        ranked = self.causes_ranked()
        if not ranked:
            sec.blocks.append(Para(["No handshake failed."]))
            return sec
        rows = []
        total = len(self.failed)
        causes = self.failed["failure_cause"].fillna("other")
        for i, (cause, k) in enumerate(ranked, start=1):
            sel = self.failed[causes == cause]
            conf = Counter(sel["confidence"].fillna(""))
            rows.append(
                [
                    i,
                    cause,
                    k,
                    pct(k, total),
                    conf.get("certain", 0),
                    conf.get("inferred", 0),
                    self.keys[sel.index].nunique(),
                    when(sel["ts"].min(), 0),
                    when(sel["ts"].max(), 0),
                    remedy(cause).side,
                ]
            )
        sec.blocks.append(
            Table(
                ["#", "cause", "failed", "share", "certain", "inferred", "servers", "first", "last", "fix on"],
                rows,
                numeric={0, 2, 3, 4, 5, 6},
            )
        )
        for cause, k in ranked:
            ex = self.example(cause)
            rem = remedy(cause)
            sub = Section(f"{cause}: {k} connection(s)", f"cause-{slug(cause)}")
            servers = self.keys[self.failed.index[causes == cause]].value_counts()
            sub.blocks.append(
                Para(
                    [
                        Strong(rem.meaning[0].upper() + rem.meaning[1:]),
                        ". Servers: ",
                        ", ".join(f"{s} ({c})" for s, c in servers.iloc[:5].items())
                        + (f" and {len(servers) - 5} more" if len(servers) > 5 else "")
                        + ".",
                    ]
                )
            )
            sub.blocks.append(
                Para(
                    [
                        "Example: connection ",
                        Code(str(ex["conn_id"])),
                        f", {self.describe_conn(ex)}",
                        f" (confidence {ex['confidence']})." if not pd.isna(ex["confidence"]) else ".",
                    ]
                )
            )
            if not pd.isna(ex["failure_detail"]):
                sub.blocks.append(Para(["Evidence: ", str(ex["failure_detail"])]))
            n_events = int((self.r.events["conn_id"] == ex["conn_id"]).sum())
            sub.blocks.append(
                self.figure(
                    f"ladder-{slug(cause)}",
                    lambda ax, cid=str(ex["conn_id"]): plot.plot_ladder(self.r, cid, ax=ax),
                    (9.5, _fig_height(n_events, 0.36, 1.8, 3)),
                    f"ladder diagram of connection {ex['conn_id']}",
                )
            )
            sub.blocks.append(Pre(self.r.explain(str(ex["conn_id"]))))
            sub.blocks.append(
                Para([f"What to change ({rem.side}): {rem.action}. See ", Link("remediation", "remediation"), "."])
            )
            sec.subsections.append(sub)
        return sec

    def _group_table(self, keys: pd.Series, head: str, top: int = 25, extra: str | None = None) -> Table:
        hs = self.hs
        failed_mask = (hs["outcome"] == "failed").to_numpy(dtype=bool, na_value=False)
        total = keys.value_counts()
        failed = keys[failed_mask].value_counts()
        causes = hs["failure_cause"].fillna("other")
        rows = []
        order = list(failed.index) + [k for k in total.index if k not in failed.index]
        for key in order[:top]:
            sel = keys == key
            f = int(failed.get(key, 0))
            row: list[object] = [key]
            if extra == "clients":
                row.append(hs.loc[sel, "client_ip"].nunique())
            row += [int(total[key]), f, pct(f, int(total[key])), counts_text(causes[sel & failed_mask])]
            fs = hs.loc[sel & failed_mask, "ts"]
            row.append(when(fs.min(), 0) if f else "")
            rows.append(row)
        cols = (
            [head]
            + (["clients"] if extra == "clients" else [])
            + ["connections", "failed", "failure rate", "causes", "first failure"]
        )
        numeric = {1, 2, 3, 4} if extra == "clients" else {1, 2, 3}
        note = f"{top} of {len(total)} shown, most failures first." if len(total) > top else ""
        return Table(cols, rows, note, numeric)

    def section_affected(self) -> Section:
        sec = Section("Affected servers and clients", "affected")
        hs = self.hs
        if hs.empty:
            sec.blocks.append(Para(["No connections."]))
            return sec
        srv = Section("Servers (address, port, SNI)", "affected-servers")
        srv.blocks.append(self._group_table(self.keys, "server"))
        if not self.failed.empty:
            n = self.keys[self.failed.index].nunique()
            srv.blocks.append(
                self.figure(
                    "top-failing-servers",
                    lambda ax: plot.plot_top_failing(self.r, by="server", ax=ax),
                    (11, _fig_height(n, hi=15)),
                    "servers with the most failed handshakes",
                )
            )
        cli = Section("Clients", "affected-clients")
        cli.blocks.append(Para(["By client network (/24 for IPv4, /64 for IPv6):"]))
        cli.blocks.append(self._group_table(plot.group_keys(hs, "client_subnet"), "client network", extra="clients"))
        cli.blocks.append(Para(["By client TLS stack (JA4 fingerprint, with the stack's name when it is known):"]))
        stacks = plot.group_keys(hs, "client_stack")
        cli.blocks.append(self._group_table(stacks, "client stack", extra="clients"))
        if not self.failed.empty:
            n = stacks[self.failed.index].nunique()
            cli.blocks.append(
                self.figure(
                    "top-failing-client-stacks",
                    lambda ax: plot.plot_top_failing(self.r, by="client_stack", ax=ax),
                    (11, _fig_height(n, hi=15)),
                    "client stacks with the most failed handshakes",
                )
            )
        sec.subsections += [srv, cli]
        return sec

    def _servers_presenting(self) -> dict[str, str]:
        """cert sha256 -> 'server (connections), ...' from the chains table."""
        ch = self.r.chains
        if ch.empty:
            return {}
        ch = ch[ch["sent_by"] == "server"]
        keys = pd.Series(self.keys.to_numpy(), index=self.hs["conn_id"].to_numpy())
        out: dict[str, str] = {}
        for sha, group in ch.groupby("cert_sha256"):
            c = Counter(keys.get(cid, "?") for cid in group["conn_id"])
            out[str(sha)] = ", ".join(f"{k} ({v})" for k, v in c.most_common(3)) + (
                f" +{len(c) - 3} more" if len(c) > 3 else ""
            )
        return out

    def section_certificates(self) -> Section:
        sec = Section("Certificate findings", "certificates")
        certs = self.r.certificates
        hs = self.hs
        presenting = self._servers_presenting()
        exp = Section("Expired and expiring certificates", "cert-expiry")
        flagged = certs[certs["expiry"].notna()] if not certs.empty else certs
        if flagged.empty:
            exp.blocks.append(
                Para(
                    [
                        f"None of the {len(certs)} certificate(s) seen had expired, was not yet valid, "
                        "or expires within 30 days of the capture."
                    ]
                )
            )
        else:
            rank = {
                "expired": 0,
                "expired during the capture": 1,
                "not yet valid": 2,
                "within 7 days": 3,
                "within 30 days": 4,
            }
            flagged = flagged.assign(_r=flagged["expiry"].map(rank).fillna(9)).sort_values(["_r", "not_after"])
            rows = [
                [
                    c["subject_cn"] if not pd.isna(c["subject_cn"]) else c["subject"],
                    c["issuer_cn"],
                    c["expiry"],
                    when(c["not_before"], 0),
                    when(c["not_after"], 0),
                    cell(round(c["days_to_expiry"], 1)) if not pd.isna(c["days_to_expiry"]) else None,
                    presenting.get(str(c["cert_sha256"]), ""),
                    str(c["cert_sha256"])[:16],
                ]
                for _, c in flagged.iterrows()
            ]
            exp.blocks.append(
                Table(
                    [
                        "subject CN",
                        "issuer CN",
                        "status",
                        "not before",
                        "not after",
                        "days left at first sight",
                        "presented by",
                        "sha256",
                    ],
                    rows,
                    numeric={5},
                )
            )
        chain = Section("Chain defects", "cert-chains")
        vs = hs[hs["validation_status"].notna() & (hs["validation_status"] != "ok")] if not hs.empty else hs
        if vs.empty:
            judged = int(hs["validation_status"].notna().sum()) if not hs.empty else 0
            chain.blocks.append(Para([f"No chain defect: {judged} visible chain(s) judged valid."]))
        else:
            rows = []
            for (server, status), g in vs.groupby([self.keys[vs.index], vs["validation_status"]], sort=False):
                detail = g["validation_detail"].dropna()
                rows.append(
                    [
                        server,
                        status,
                        len(g),
                        int((g["outcome"] == "failed").sum()),
                        str(detail.iloc[0]) if not detail.empty else None,
                    ]
                )
            rows.sort(key=lambda r: -int(str(r[2])))
            chain.blocks.append(
                Table(["server", "verdict", "connections", "failed", "example detail"], rows, numeric={2, 3})
            )
        rot = Section("Certificate rotations during the capture", "cert-rotations")
        rotations = [w for w in self.r.warnings if "presented" in w]
        if rotations:
            rot.blocks.append(Bullets([[w] for w in rotations]))
        else:
            rot.blocks.append(Para(["No server presented different leaf certificates during the capture."]))
        sec.subsections += [exp, chain, rot]
        if not certs.empty:
            n = len(certs)
            sec.blocks.append(
                self.figure(
                    "certificate-validity",
                    lambda ax: plot.plot_certificate_validity(self.r, ax=ax),
                    (11, _fig_height(n, 0.32, 1.6, 4, 30)),
                    "validity of each server certificate against the capture window",
                )
            )
        return sec

    def section_negotiation(self) -> Section:
        sec = Section("Negotiation findings", "negotiation")
        hs = self.hs
        neg = hs[hs["version"].notna()] if not hs.empty else hs
        if neg.empty:
            sec.blocks.append(Para(["No connection got as far as a negotiated version."]))
            return sec
        n = len(neg)
        rows = []
        vc = neg["version"].value_counts()
        for v in [
            *[v for v in plot.VERSION_ORDER[::-1] if v in vc.index],
            *[v for v in vc.index if v not in plot.VERSION_ORDER],
        ]:
            rows.append([v, int(vc[v]), pct(int(vc[v]), n), "legacy: plan to disable" if v in LEGACY_VERSIONS else ""])
        sec.blocks.append(Para([f"{n} of {len(hs)} connections negotiated a version."]))
        sec.blocks.append(Table(["version", "connections", "share", "note"], rows, numeric={1, 2}))
        rows = []
        for c, k in neg["cipher"].value_counts().items():
            notes = [why for mark, why in WEAK_CIPHER_MARKS if mark in str(c)]
            if str(c).startswith("TLS_RSA_WITH_"):
                notes.append("RSA key exchange: no forward secrecy")
            elif "_CBC_" in str(c):
                notes.append("CBC mode")
            rows.append([c, int(k), pct(int(k), n), ", ".join(notes)])
        sec.blocks.append(Table(["cipher suite", "connections", "share", "note"], rows, numeric={1, 2}))
        alpn = hs["alpn"].value_counts()
        resumed = int(hs["resumed"].fillna(False).sum())
        hrr = int(hs["hello_retry"].fillna(False).sum())
        facts = [f"{resumed} resumed session(s)", f"{hrr} HelloRetryRequest(s)"]
        if not alpn.empty:
            facts.append("ALPN selected: " + ", ".join(f"{a} {k}" for a, k in alpn.items()))
        sec.blocks.append(Para(["; ".join(facts) + "."]))
        lat = hs[(hs["outcome"] == "established") & hs["handshake_ms"].notna()]
        if not lat.empty:
            rows = []
            for server, g in lat.groupby(self.keys[lat.index], sort=False):
                ms = g["handshake_ms"].to_numpy(dtype=float)
                rows.append([server, len(ms), *(cell(float(np.percentile(ms, p))) for p in (50, 90, 99))])
            rows.sort(key=lambda r: -int(str(r[1])))
            sec.blocks.append(
                Para(["Handshake latency of established connections (ClientHello to end of handshake, milliseconds):"])
            )
            sec.blocks.append(Table(["server", "handshakes", "P50", "P90", "P99"], rows[:25], numeric={1, 2, 3, 4}))
        sec.blocks.append(
            self.figure(
                "versions", lambda ax: plot.plot_versions(self.r, ax=ax), (11, 3.8), "negotiated TLS versions over time"
            )
        )
        sec.blocks.append(
            self.figure(
                "ciphers", lambda ax: plot.plot_ciphers(self.r, ax=ax), (11, 3.8), "negotiated cipher suites over time"
            )
        )
        if not lat.empty:
            sec.blocks.append(
                self.figure(
                    "latency",
                    lambda ax: plot.plot_handshake_latency(self.r, ax=ax),
                    (11, 4.2),
                    "handshake latency percentiles per server over time",
                )
            )
        return sec

    def section_remediation(self) -> Section:
        sec = Section("Remediation", "remediation")
        ranked = self.causes_ranked()
        if ranked:
            rows = [[cause, k, remedy(cause).side, remedy(cause).action] for cause, k in ranked]
            sec.blocks.append(Table(["cause", "failed", "change on", "what to change"], rows, numeric={1}))
        else:
            sec.blocks.append(Para(["No failure to remediate."]))
        certs = self.r.certificates
        soon = (
            certs[certs["expiry"].isin(["within 7 days", "within 30 days", "expired during the capture"])]
            if not certs.empty
            else certs
        )
        if not soon.empty:
            renew: list[Inline] = ["Renew before they fail: "]
            sec.blocks.append(
                Para(
                    renew
                    + [
                        f"{c['subject_cn']} ({c['expiry']}, not after {when(c['not_after'], 0)}); "
                        for _, c in soon.iterrows()
                    ]
                )
            )
        return sec

    def section_appendix(self) -> Section:
        sec = Section("Appendix: every connection", "appendix")
        hs = self.hs
        rows = []
        for _, r in hs.iloc[: self.max_appendix_rows].iterrows():
            rows.append(
                [
                    r["conn_id"],
                    when(r["ts"]),
                    f"{r['client_ip']}:{r['client_port']}",
                    f"{r['server_ip']}:{r['server_port']}",
                    cell(r["sni"]),
                    cell(r["version"]),
                    cell(r["cipher"]),
                    r["outcome"],
                    cell(r["failure_cause"]),
                    cell(r["confidence"]),
                    cell(r["alert"]),
                    cell(r["handshake_ms"]),
                ]
            )
        note = "All rows and columns are in connections.csv beside this report."
        if len(hs) > self.max_appendix_rows:
            note = f"First {self.max_appendix_rows} of {len(hs)} connections. " + note
        sec.blocks.append(Table([h for _, h in APPENDIX_COLUMNS], rows, note, numeric={11}))
        return sec

    def build(self, title: str | None = None) -> Document:
        start, end, _span = self.window()
        files = ", ".join(os.path.basename(f) for f in self.r.files)
        subtitle = f"Generated from capture {start} to {end}" if start else "Generated from an empty capture"
        doc = Document(title or f"TLS incident report: {files}", f"{subtitle} ({files}).")
        doc.sections = [
            self.section_headline(),
            self.section_causes(),
            self.section_affected(),
            self.section_certificates(),
            self.section_negotiation(),
            self.section_remediation(),
            self.section_appendix(),
        ]
        return doc


def build_document(
    result: AnalysisResult, *, title: str | None = None, max_appendix_rows: int = 2000, dpi: int = 90
) -> Document:
    """The incident report of ``result`` as a Document (render it with render_html / render_markdown)."""
    return ReportBuilder(result, max_appendix_rows=max_appendix_rows, dpi=dpi).build(title)


__all__ = ["ReportBuilder", "build_document", "slug", "when"]
