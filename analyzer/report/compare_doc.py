"""The comparison of two captures in report format: a Document with the changes, the servers and a cause plot."""

from __future__ import annotations

import os
from collections import Counter
from typing import TYPE_CHECKING

from analyzer.report.content import when
from analyzer.report.document import Document, Para, Section, Strong, Table, render_figure

if TYPE_CHECKING:
    from analyzer.compare import Comparison
    from analyzer.result import AnalysisResult


def _capture(r: AnalysisResult) -> str:
    files = ", ".join(os.path.basename(f) for f in r.files)
    if r.first_ts_ns is None or r.last_ts_ns is None:
        return f"{files} (no packets)"
    return f"{files}, from {when(r.first_ts_ns, 0)} to {when(r.last_ts_ns, 0)}"


def comparison_document(c: Comparison, title: str | None = None) -> Document:
    from analyzer.compare import plot_cause_shift

    doc = Document(
        title or "TLS comparison of two captures",
        f"Generated from capture {_capture(c.before)} (before) and {_capture(c.after)} (after).",
    )
    head = Section("Summary", "summary")
    lines = c.summary().splitlines()
    head.blocks.append(Para([Strong(lines[0]), "."]))
    head.blocks.append(Para([lines[1].strip(), "; ", lines[2].strip(), "."]))
    cb = Counter(c.before.handshakes["failure_cause"].dropna())
    ca = Counter(c.after.handshakes["failure_cause"].dropna())
    causes = sorted(set(cb) | set(ca), key=lambda k: (-(cb[k] + ca[k]), k))
    if causes:
        head.blocks.append(
            Table(
                ["cause", "failed before", "failed after", "change"],
                [[k, cb[k], ca[k], f"{ca[k] - cb[k]:+d}"] for k in causes],
                numeric={1, 2, 3},
            )
        )
        head.blocks.append(
            render_figure(
                "cause-shift",
                lambda ax: plot_cause_shift(c, ax=ax),
                (10, 1.6 + 0.4 * max(4, len(causes))),
                "failed connections by cause",
            )
        )
    changes = Section("Changes per server", "changes")
    if c.changes.empty:
        changes.blocks.append(Para(["No difference between the captures for any server."]))
    else:
        changes.blocks.append(Table(list(c.changes.columns), c.changes.to_numpy().tolist()))
    servers = Section("Every server", "servers")
    cols = [
        "server",
        "status",
        "changed",
        "connections_before",
        "connections_after",
        "failed_before",
        "failed_after",
        "causes_before",
        "causes_after",
    ]
    servers.blocks.append(
        Table(
            cols,
            c.servers[cols].to_numpy().tolist() if not c.servers.empty else [],
            "All columns (leaf certificates, versions, ciphers, client stacks) are in servers.csv.",
            numeric={3, 4, 5, 6},
        )
    )
    doc.sections = [head, changes, servers]
    return doc


__all__ = ["comparison_document"]
