"""Compare two captures per server (address, port, SNI): certificates, chains, versions, ciphers, failures, client stacks."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from analyzer.api import analyze
from analyzer.result import AnalysisResult

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from analyzer.report import ReportFiles
    from analyzer.report.document import Document

PathLike = str | os.PathLike[str]
Source = AnalysisResult | PathLike | Sequence[PathLike]
KEYS: dict[str, tuple[str, ...]] = {
    "server": ("server_ip", "server_port", "sni"),
    "endpoint": ("server_ip", "server_port"),
    "sni": ("sni",),
}
ASPECTS = ("presence", "certificate", "chain", "versions", "ciphers", "failures", "client stacks")


@dataclass(slots=True)
class ServerFacts:
    """What one capture shows about one server."""

    connections: int = 0
    failed: int = 0
    causes: Counter[str] = field(default_factory=Counter)
    leaves: dict[str, str] = field(default_factory=dict)  # sha256 -> 'CN, not after ..., status'
    chains: Counter[str] = field(default_factory=Counter)  # 'leaf8 > int8' -> connections
    verdicts: Counter[str] = field(default_factory=Counter)  # validation_status -> connections
    versions: Counter[str] = field(default_factory=Counter)
    ciphers: Counter[str] = field(default_factory=Counter)
    stacks: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.failed / self.connections if self.connections else 0.0


def _counts(c: Counter[str], top: int = 6) -> str:
    if not c:
        return "none"
    items = sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{k} {n}" for k, n in items[:top])
    return text + (f" (+{len(items) - top} more)" if len(items) > top else "")


def _failures(f: ServerFacts) -> str:
    if not f.connections:
        return "no connections"
    text = f"{f.failed} of {f.connections} failed ({100 * f.rate:.0f}%)"
    return text + (f": {_counts(f.causes)}" if f.causes else "")


def _label(key: tuple[Any, ...], by: str) -> str:
    from analyzer import plot

    if by == "server":
        return plot.server_label(*key)
    if by == "endpoint":
        return f"{key[0]}:{key[1]}"
    return "(no SNI)" if key[0] is None else str(key[0])


def _key_value(v: object) -> object:
    import pandas as pd

    return None if v is None or (not isinstance(v, str) and bool(pd.isna(v))) else v  # type: ignore[call-overload]


def server_facts(result: AnalysisResult, by: str = "server") -> dict[tuple[Any, ...], ServerFacts]:
    """Per server key, what the capture shows."""
    import pandas as pd

    from analyzer import plot

    hs = result.handshakes
    if hs.empty:
        return {}
    cols = KEYS[by]
    keys = [tuple(_key_value(v) for v in row) for row in zip(*(hs[c] for c in cols), strict=True)]
    certs = result.certificates.set_index("cert_sha256") if not result.certificates.empty else None
    ch = result.chains
    ch = ch[ch["sent_by"] == "server"].sort_values(["conn_id", "position"])
    chain_of = {str(cid): " > ".join(str(s)[:8] for s in g["cert_sha256"]) for cid, g in ch.groupby("conn_id")}
    stacks = plot.group_keys(hs, "client_stack")
    out: dict[tuple[Any, ...], ServerFacts] = {}
    for i, (key, (_, row)) in enumerate(zip(keys, hs.iterrows(), strict=True)):
        f = out.setdefault(key, ServerFacts())
        f.connections += 1
        if row["outcome"] == "failed":
            f.failed += 1
            f.causes[str(_key_value(row["failure_cause"]) or "other")] += 1
        sha = _key_value(row["cert_sha256"])
        if sha is not None:
            desc = str(sha)[:16]
            if certs is not None and sha in certs.index:
                c: Any = certs.loc[str(sha)]
                desc += f" CN={c['subject_cn']}, not after {pd.Timestamp(c['not_after']):%Y-%m-%d}"
                if not pd.isna(c["expiry"]):
                    desc += f", {c['expiry']}"
            f.leaves[str(sha)] = desc
        cid = str(row["conn_id"])
        if cid in chain_of:
            f.chains[chain_of[cid]] += 1
        for attr, col in (("verdicts", "validation_status"), ("versions", "version"), ("ciphers", "cipher")):
            v = _key_value(row[col])
            if v is not None:
                getattr(f, attr)[str(v)] += 1
        f.stacks[str(stacks.iloc[i])] += 1
    return out


def _changes(b: ServerFacts | None, a: ServerFacts | None, min_rate_change: float) -> list[tuple[str, str, str, str]]:
    """(aspect, before, after, note) for each thing that changed on one server."""
    if b is None or a is None:
        f = a or b
        assert f is not None
        text = f"{f.connections} connection(s), {_failures(f)}"
        return (
            [("presence", "not seen", text, "new server")]
            if b is None
            else [("presence", text, "not seen", "no connection in the second capture")]
        )
    out: list[tuple[str, str, str, str]] = []
    if b.leaves and a.leaves and set(b.leaves) != set(a.leaves):
        new = [a.leaves[s] for s in a.leaves if s not in b.leaves]
        out.append(
            (
                "certificate",
                "; ".join(b.leaves.values()),
                "; ".join(a.leaves.values()),
                "new leaf: " + "; ".join(new) if new else "a leaf is no longer presented",
            )
        )
    if (b.chains and a.chains and set(b.chains) != set(a.chains)) or (
        b.verdicts and a.verdicts and set(b.verdicts) != set(a.verdicts)
    ):
        out.append(
            (
                "chain",
                f"{_counts(b.chains)}; verdicts {_counts(b.verdicts)}",
                f"{_counts(a.chains)}; verdicts {_counts(a.verdicts)}",
                "chain or its verdict changed",
            )
        )
    for aspect, attr in (("versions", "versions"), ("ciphers", "ciphers")):
        cb, ca = getattr(b, attr), getattr(a, attr)
        if set(cb) != set(ca):
            gone, new = sorted(set(cb) - set(ca)), sorted(set(ca) - set(cb))
            note = "; ".join(
                p for p in (f"new: {', '.join(new)}" if new else "", f"gone: {', '.join(gone)}" if gone else "") if p
            )
            out.append((aspect, _counts(cb), _counts(ca), note))
    if set(b.causes) != set(a.causes) or abs(a.rate - b.rate) >= min_rate_change:
        notes = []
        for cause in sorted(set(b.causes) | set(a.causes)):
            rb = b.causes[cause] / b.connections
            ra = a.causes[cause] / a.connections
            if abs(ra - rb) >= min_rate_change or (cause in b.causes) != (cause in a.causes):
                notes.append(f"{cause} {100 * rb:.0f}% -> {100 * ra:.0f}%")
        out.append(
            (
                "failures",
                _failures(b),
                _failures(a),
                "; ".join(notes) or f"failure rate {100 * b.rate:.0f}% -> {100 * a.rate:.0f}%",
            )
        )
    if set(b.stacks) != set(a.stacks):
        gone, new = sorted(set(b.stacks) - set(a.stacks)), sorted(set(a.stacks) - set(b.stacks))
        note = "; ".join(
            p for p in (f"new: {', '.join(new)}" if new else "", f"gone: {', '.join(gone)}" if gone else "") if p
        )
        out.append(("client stacks", _counts(b.stacks, 3), _counts(a.stacks, 3), note))
    return out


@dataclass(slots=True)
class Comparison:
    """The differences between two captures, per server. ``changes``: one row per (server, aspect) that changed;
    ``servers``: one row per server with its status (new / gone / changed / unchanged) and both sides' facts."""

    before: AnalysisResult
    after: AnalysisResult
    by: str
    changes: pd.DataFrame
    servers: pd.DataFrame

    def summary(self) -> str:
        st = Counter(self.servers["status"]) if not self.servers.empty else Counter()
        lines = [
            f"{len(self.servers)} server(s) compared by {self.by}: {st.get('changed', 0)} changed, "
            f"{st.get('new', 0)} new, {st.get('gone', 0)} gone, {st.get('unchanged', 0)} unchanged",
            f"before: {_overall(self.before)}",
            f"after:  {_overall(self.after)}",
        ]
        return "\n".join(lines)

    def table(self, width: int = 60) -> str:
        """The changes as aligned text (cells cut at ``width``)."""
        if self.changes.empty:
            return "no differences"
        cols = ["server", "aspect", "before", "after", "note"]
        view = {c: [_cut(str(v), width) for v in self.changes[c]] for c in cols}
        widths = {c: max(len(c), *(len(v) for v in view[c])) for c in cols}
        lines = ["  ".join(c.ljust(widths[c]) for c in cols).rstrip()]
        for i in range(len(self.changes)):
            lines.append("  ".join(view[c][i].ljust(widths[c]) for c in cols).rstrip())
        return "\n".join(lines)

    def to_document(self, title: str | None = None) -> Document:
        from analyzer.report.compare_doc import comparison_document

        return comparison_document(self, title)

    def write(self, output_dir: PathLike, title: str | None = None) -> ReportFiles:
        """compare.html and compare.md (report format) plus changes.csv and servers.csv into ``output_dir``."""
        from analyzer.report import write_document
        from analyzer.report.export import write_csv_frame

        files = write_document(self.to_document(title), output_dir, stem="compare")
        for name, frame in (("changes", self.changes), ("servers", self.servers)):
            path = os.path.join(files.directory, f"{name}.csv")
            write_csv_frame(frame, path)
            files.tables.append(path)
        return files

    def __str__(self) -> str:
        return self.summary() + "\n\n" + self.table()


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _overall(r: AnalysisResult) -> str:
    hs = r.handshakes
    n = len(hs)
    failed = int((hs["outcome"] == "failed").sum()) if n else 0
    files = ", ".join(os.path.basename(f) for f in r.files)
    return f"{files}: {n} connection(s), {failed} failed" + (f" ({100 * failed / n:.0f}%)" if n else "")


def _result(source: Source, **analyze_kwargs: Any) -> AnalysisResult:
    if isinstance(source, AnalysisResult):
        return source
    return analyze(source, **analyze_kwargs)


def compare(
    before: Source, after: Source, *, by: str = "server", min_rate_change: float = 0.05, **analyze_kwargs: Any
) -> Comparison:
    """What changed per server between two captures (results, or paths analysed with ``analyze_kwargs``:
    ca_bundle=, trust_store=, intermediates=, client_ca=, keylog=, tls_ports=).

    ``by``: "server" (address, port, SNI), "endpoint" (address, port) or "sni" (the name alone: servers that
    moved). A failure-rate change smaller than ``min_rate_change`` is not reported unless a cause appears or goes."""
    import pandas as pd

    if by not in KEYS:
        raise ValueError(f"by must be one of {', '.join(KEYS)}, not {by!r}")
    rb, ra = _result(before, **analyze_kwargs), _result(after, **analyze_kwargs)
    fb, fa = server_facts(rb, by), server_facts(ra, by)
    change_rows: list[dict[str, object]] = []
    server_rows: list[dict[str, object]] = []
    order = list(dict.fromkeys([*fb, *fa]))
    for key in order:
        b, a = fb.get(key), fa.get(key)
        label = _label(key, by)
        found = _changes(b, a, min_rate_change)
        for aspect, vb, va, note in found:
            change_rows.append({"server": label, "aspect": aspect, "before": vb, "after": va, "note": note})
        status = "new" if b is None else "gone" if a is None else "changed" if found else "unchanged"
        row: dict[str, object] = {"server": label, "status": status, "changed": ", ".join(x[0] for x in found)}
        for side, f in (("before", b), ("after", a)):
            row[f"connections_{side}"] = f.connections if f else 0
            row[f"failed_{side}"] = f.failed if f else 0
            row[f"causes_{side}"] = _counts(f.causes) if f else ""
            row[f"leaf_{side}"] = "; ".join(f.leaves.values()) if f else ""
            row[f"versions_{side}"] = _counts(f.versions) if f else ""
            row[f"ciphers_{side}"] = _counts(f.ciphers) if f else ""
            row[f"client_stacks_{side}"] = _counts(f.stacks, 3) if f else ""
        server_rows.append(row)
    rank = {"changed": 0, "new": 1, "gone": 2, "unchanged": 3}
    servers = pd.DataFrame(server_rows, columns=_server_columns())
    if not servers.empty:
        servers = servers.sort_values("status", key=lambda s: s.map(rank), kind="stable").reset_index(drop=True)
    changes = pd.DataFrame(change_rows, columns=["server", "aspect", "before", "after", "note"])
    return Comparison(rb, ra, by, changes, servers)


def _server_columns() -> list[str]:
    cols = ["server", "status", "changed"]
    for name in ("connections", "failed", "causes", "leaf", "versions", "ciphers", "client_stacks"):
        cols += [f"{name}_before", f"{name}_after"]
    return cols


def plot_cause_shift(comparison: Comparison, *, ax: Axes | None = None) -> Axes:
    """Failed connections per cause in each capture, side by side (fixed cause colours; before hatched)."""
    import numpy as np

    from analyzer import plot

    ax = plot._axes(ax, (10, 4))
    cb = Counter(comparison.before.handshakes["failure_cause"].dropna())
    ca = Counter(comparison.after.handshakes["failure_cause"].dropna())
    causes = sorted(set(cb) | set(ca), key=lambda c: (-(cb[c] + ca[c]), c))
    title = "Failed connections by cause: before and after"
    if not causes:
        return plot._empty(ax, title, "no failed handshakes in either capture")
    y = np.arange(len(causes))
    colors = [plot.cause_color(c) for c in causes]
    ax.barh(y - 0.2, [cb[c] for c in causes], height=0.4, color=colors, alpha=0.45, hatch="//", label="before")
    ax.barh(y + 0.2, [ca[c] for c in causes], height=0.4, color=colors, label="after")
    ax.set_yticks(y, causes, fontsize="small")
    ax.set_ylim(max(len(causes), 4) - 0.5, -0.5)
    ax.set_xlabel("failed connections")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    return ax


__all__ = ["Comparison", "ServerFacts", "compare", "plot_cause_shift", "server_facts"]
