"""The report as neutral data (sections, paragraphs, tables, figures, preformatted text); no markup here."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes


@dataclass(frozen=True, slots=True)
class Code:
    """Inline monospace text (a cause code, a connection id, a value from the wire)."""

    text: str


@dataclass(frozen=True, slots=True)
class Strong:
    """Inline emphasised text."""

    text: str


@dataclass(frozen=True, slots=True)
class Link:
    """A link to another section of the same document (never to anything outside it)."""

    text: str
    anchor: str


Inline = str | Code | Strong | Link


@dataclass(slots=True)
class Para:
    """A paragraph: plain strings and inline pieces, rendered in order."""

    parts: list[Inline]


@dataclass(slots=True)
class Bullets:
    """A bulleted list; each item is a list of inline pieces."""

    items: list[list[Inline]]


@dataclass(slots=True)
class Table:
    """Columns and rows of plain values (None shows as empty); ``note`` is said under the table."""

    columns: list[str]
    rows: list[list[object]]
    note: str = ""
    numeric: set[int] = field(default_factory=set)  # column indexes aligned right


@dataclass(slots=True)
class Pre:
    """Preformatted text (explain() output)."""

    text: str


@dataclass(slots=True)
class Figure:
    """A PNG (embedded in HTML, a file beside the Markdown); ``name`` is the file stem (ASCII, unique)."""

    name: str
    png: bytes
    alt: str
    caption: str = ""


Block = Para | Bullets | Table | Pre | Figure


@dataclass(slots=True)
class Section:
    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)
    subsections: list[Section] = field(default_factory=list)


@dataclass(slots=True)
class Document:
    title: str
    subtitle: str
    sections: list[Section] = field(default_factory=list)

    def figures(self) -> list[Figure]:
        out: list[Figure] = []

        def walk(sec: Section) -> None:
            out.extend(b for b in sec.blocks if isinstance(b, Figure))
            for sub in sec.subsections:
                walk(sub)

        for s in self.sections:
            walk(s)
        return out


def render_figure(
    name: str,
    draw: Callable[[Axes], object],
    size: tuple[float, float],
    alt: str,
    caption: str = "",
    dpi: int = 90,
) -> Figure:
    """Draw on a fresh Agg figure (never pyplot's global state) and keep the PNG bytes."""
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=size, layout="constrained")
    draw(fig.add_subplot())
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return Figure(name, buf.getvalue(), alt, caption)


__all__ = [
    "Block",
    "Bullets",
    "Code",
    "Document",
    "Figure",
    "Inline",
    "Link",
    "Para",
    "Pre",
    "Section",
    "Strong",
    "Table",
    "render_figure",
]
