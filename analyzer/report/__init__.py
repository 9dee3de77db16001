"""The incident report (HTML with embedded plots, Markdown with PNGs beside it) and table exports."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from analyzer.report.export import ExportError, neutralise, to_csv, to_jsonl, to_parquet

if TYPE_CHECKING:
    from analyzer.report.document import Document
    from analyzer.report.html_out import render_html as render_html
    from analyzer.report.markdown_out import render_markdown as render_markdown
    from analyzer.result import AnalysisResult

PathLike = str | os.PathLike[str]


@dataclass(slots=True)
class ReportFiles:
    """What write_report / write_document wrote."""

    directory: str
    html: str
    markdown: str
    figures: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"wrote {self.html} and {self.markdown} ({len(self.figures)} figure(s), {len(self.tables)} table(s))"


def write_document(doc: Document, output_dir: PathLike, stem: str = "report") -> ReportFiles:
    """Write ``doc`` as <stem>.html (self-contained) and <stem>.md with its figures as PNG files beside it."""
    from analyzer.report.html_out import render_html
    from analyzer.report.markdown_out import render_markdown

    out = os.fspath(output_dir)
    os.makedirs(out, exist_ok=True)
    files = ReportFiles(out, os.path.join(out, f"{stem}.html"), os.path.join(out, f"{stem}.md"))
    with open(files.html, "w", encoding="utf-8") as fh:
        fh.write(render_html(doc))
    with open(files.markdown, "w", encoding="utf-8") as fh:
        fh.write(render_markdown(doc))
    for fig in doc.figures():
        path = os.path.join(out, f"{fig.name}.png")
        with open(path, "wb") as fh:
            fh.write(fig.png)
        files.figures.append(path)
    return files


def write_report(
    result: AnalysisResult, output_dir: PathLike, *, title: str | None = None, max_appendix_rows: int = 2000
) -> ReportFiles:
    """The incident report of ``result`` into ``output_dir``: report.html, report.md, the PNGs, and the
    per-connection table as connections.csv (formula-safe) and connections.jsonl."""
    from analyzer.report.content import build_document  # matplotlib is imported only when a report is made

    doc = build_document(result, title=title, max_appendix_rows=max_appendix_rows)
    files = write_document(doc, output_dir)
    csv_path = os.path.join(files.directory, "connections.csv")
    jsonl_path = os.path.join(files.directory, "connections.jsonl")
    to_csv(result, csv_path)
    to_jsonl(result, jsonl_path)
    files.tables += [csv_path, jsonl_path]
    return files


def __getattr__(name: str) -> Any:
    """The renderers load on first use: `analyze --format csv` imports this package for its exporters only."""
    if name == "render_html":
        from analyzer.report.html_out import render_html

        return render_html
    if name == "render_markdown":
        from analyzer.report.markdown_out import render_markdown

        return render_markdown
    raise AttributeError(f"module 'analyzer.report' has no attribute {name!r}")


__all__ = [
    "ExportError",
    "ReportFiles",
    "neutralise",
    "render_html",
    "render_markdown",
    "to_csv",
    "to_jsonl",
    "to_parquet",
    "write_document",
    "write_report",
]
