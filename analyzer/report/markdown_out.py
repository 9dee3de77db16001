"""Render a report Document as Markdown with the figures as PNG files beside it; every text escaped."""

from __future__ import annotations

import re

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

_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_LINE_START = re.compile(r"^(\s*)([#+=-])")
_ORDERED = re.compile(r"^(\s*\d+)([.)])")
_NEWLINES = re.compile(r"\r\n|\r|\n")


def md(text: object, line_start: bool = True) -> str:
    """Escape a value for Markdown text or a table cell: markup characters backslashed, & < > as entities,
    newlines shown as ' ↵ ' (a newline would end a table row); ``line_start``: also what would open a heading,
    a list or a quote when the text begins a line."""
    s = "" if text is None else str(text)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _SPECIAL.sub(r"\\\1", s)
    if line_start:
        s = _starts_line(s)
    return _NEWLINES.sub(" ↵ ", s)


def _starts_line(s: str) -> str:
    s = _LINE_START.sub(r"\1\\\2", s)  # no heading, list or setext line from a value's first character
    return _ORDERED.sub(r"\1\\\2", s)


def md_code(text: str) -> str:
    """Inline code that no backtick run in the text can close early; | escaped for tables, newlines shown."""
    s = _NEWLINES.sub(" ↵ ", text).replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def _inline(part: Inline) -> str:
    if isinstance(part, Code):
        return md_code(part.text)
    if isinstance(part, Strong):
        return f"**{md(part.text)}**"
    if isinstance(part, Link):
        return f"[{md(part.text)}](#{part.anchor})"
    return md(part, line_start=False)


def _block(b: Block) -> str:
    if isinstance(b, Para):
        return _starts_line("".join(_inline(p) for p in b.parts))
    if isinstance(b, Bullets):
        return "\n".join("- " + _starts_line("".join(_inline(p) for p in item)) for item in b.items)
    if isinstance(b, Table):
        lines = ["| " + " | ".join(md(c) for c in b.columns) + " |"]
        lines.append("|" + "|".join("---:" if i in b.numeric else "---" for i in range(len(b.columns))) + "|")
        lines.extend("| " + " | ".join(md(v) for v in row) + " |" for row in b.rows)
        if b.note:
            lines.append("\n" + f"_{md(b.note)}_")
        return "\n".join(lines)
    if isinstance(b, Pre):
        longest = max((len(m) for m in re.findall(r"`{3,}", b.text)), default=2)
        fence = "`" * (longest + 1)
        return f"{fence}text\n{b.text}\n{fence}"
    if isinstance(b, Figure):
        cap = f"\n\n_{md(b.caption)}_" if b.caption else ""
        return f"![{md(b.alt)}]({b.name}.png){cap}"
    raise TypeError(f"unknown block {type(b).__name__}")


def _section(s: Section, level: int) -> str:
    parts = [f'<a id="{s.anchor}"></a>\n\n{"#" * level} {md(s.title)}']
    parts.extend(_block(b) for b in s.blocks)
    parts.extend(_section(sub, min(level + 1, 6)) for sub in s.subsections)
    return "\n\n".join(parts)


def render_markdown(doc: Document) -> str:
    """The document; figures are referenced as ``<name>.png`` in the same directory."""
    toc = "\n".join(f"- [{md(s.title)}](#{s.anchor})" for s in doc.sections)
    body = "\n\n".join(_section(s, 2) for s in doc.sections)
    return f"# {md(doc.title)}\n\n{md(doc.subtitle)}\n\n{toc}\n\n{body}\n"


__all__ = ["md", "md_code", "render_markdown"]
