"""Render a report Document as one self-contained HTML page: inline CSS, data: PNGs, no script, all escaped."""

from __future__ import annotations

import base64
import html

from analyzer.report.document import (
    Block,
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
)

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1180px;padding:0 24px 48px;
color:#1b1b1b;line-height:1.45}
h1{margin-bottom:0}.subtitle{color:#555;margin-top:4px}
h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:40px}h3{margin-top:28px}
table{border-collapse:collapse;margin:10px 0;font-size:13px}
th,td{border:1px solid #d0d0d0;padding:3px 8px;text-align:left;vertical-align:top;max-width:560px;
overflow-wrap:break-word}
th{background:#f2f2f2;white-space:nowrap}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#fafafa}
pre{background:#f6f6f6;border:1px solid #e0e0e0;padding:8px;overflow-x:auto;font-size:12px;white-space:pre-wrap;
overflow-wrap:anywhere}
code{background:#f2f2f2;padding:0 3px;border-radius:3px;overflow-wrap:anywhere}
figure{margin:12px 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:13px}.note{color:#555;font-size:13px}
nav ul{columns:2}
"""


def esc(text: object) -> str:
    """Escape any value for HTML text and attribute context (quotes included)."""
    return html.escape("" if text is None else str(text), quote=True)


def _inline(part: Inline) -> str:
    if isinstance(part, Code):
        return f"<code>{esc(part.text)}</code>"
    if isinstance(part, Strong):
        return f"<strong>{esc(part.text)}</strong>"
    if isinstance(part, Link):
        return f'<a href="#{esc(part.anchor)}">{esc(part.text)}</a>'
    return esc(part)


def _cell(value: object) -> str:
    if value is None:
        return ""
    return esc(value)


def _block(b: Block) -> str:
    if isinstance(b, Para):
        return "<p>" + "".join(_inline(p) for p in b.parts) + "</p>"
    if isinstance(b, Bullets):
        return "<ul>" + "".join("<li>" + "".join(_inline(p) for p in item) + "</li>" for item in b.items) + "</ul>"
    if isinstance(b, Table):
        head = "".join(f"<th>{esc(c)}</th>" for c in b.columns)
        body = []
        for row in b.rows:
            cells = "".join(
                f'<td class="n">{_cell(v)}</td>' if i in b.numeric else f"<td>{_cell(v)}</td>"
                for i, v in enumerate(row)
            )
            body.append(f"<tr>{cells}</tr>")
        note = f'<p class="note">{esc(b.note)}</p>' if b.note else ""
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{note}"
    if isinstance(b, Pre):
        return f"<pre>{esc(b.text)}</pre>"
    if isinstance(b, Figure):
        data = base64.b64encode(b.png).decode("ascii")
        cap = f"<figcaption>{esc(b.caption)}</figcaption>" if b.caption else ""
        return f'<figure><img alt="{esc(b.alt)}" src="data:image/png;base64,{data}">{cap}</figure>'
    raise TypeError(f"unknown block {type(b).__name__}")


def _section(s: Section, level: int) -> str:
    parts = [f'<section id="{esc(s.anchor)}"><h{level}>{esc(s.title)}</h{level}>']
    parts.extend(_block(b) for b in s.blocks)
    parts.extend(_section(sub, min(level + 1, 6)) for sub in s.subsections)
    parts.append("</section>")
    return "\n".join(parts)


def render_html(doc: Document) -> str:
    """The whole page. Content-Security-Policy forbids scripts and any load from elsewhere, as a second line
    of defence behind the escaping."""
    toc = "".join(f'<li><a href="#{esc(s.anchor)}">{esc(s.title)}</a></li>' for s in doc.sections)
    body = "\n".join(_section(s, 2) for s in doc.sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(doc.title)}</title>\n<style>{CSS}</style></head>\n<body>\n"
        f'<h1>{esc(doc.title)}</h1>\n<p class="subtitle">{esc(doc.subtitle)}</p>\n'
        f"<nav><ul>{toc}</ul></nav>\n{body}\n</body></html>\n"
    )


__all__ = ["esc", "render_html"]
