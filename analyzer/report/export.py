"""Table export: CSV (spreadsheet-formula safe), JSON lines and Parquet (pyarrow optional) of any result table."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from analyzer import schema
from analyzer.result import iso

if TYPE_CHECKING:
    import pandas as pd

    from analyzer.result import AnalysisResult

PathLike = str | os.PathLike[str]
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")  # the same rule as `analyze --format csv`
FORMULA_FIRST = frozenset(FORMULA_PREFIXES)


class ExportError(RuntimeError):
    """An export that cannot run here (a missing optional dependency); the message says what to install."""


def neutralise(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula gets a leading ' (OWASP CSV injection)."""
    if isinstance(value, str) and value[:1] in FORMULA_FIRST:
        return "'" + value
    return value


def _cells(result: AnalysisResult, table: str) -> tuple[list[str], list[list[object]]]:
    """Header and one list per column, straight from the result: times as ISO 8601 UTC, NaN and
    missing as None; prepared column by column (a million rows must not cost a Python call per cell)."""
    columns = schema.TABLES[table]
    data = result.columns[table]
    names = [c.name for c in columns]
    n = len(data[names[0]]) if names and names[0] in data else 0
    cells: list[list[object]] = []
    for c in columns:
        values = data.get(c.name)
        if values is None:
            cells.append([None] * n)
        elif c.dtype == schema.TS:
            cells.append([None if v is None else iso(v) for v in values])  # type: ignore[arg-type]
        elif c.dtype == "Float64":
            cells.append([None if isinstance(v, float) and math.isnan(v) else v for v in values])
        else:
            cells.append(list(values))
    return names, cells


def _rows(result: AnalysisResult, table: str) -> tuple[list[str], Iterator[tuple[object, ...]]]:
    names, cells = _cells(result, table)
    return names, zip(*cells, strict=True)


def write_csv(result: AnalysisResult, out: IO[str], table: str = "handshakes") -> None:
    names, cells = _cells(result, table)
    safe = [_neutralise_column(col) for col in cells]
    w = csv.writer(out, lineterminator="\n")
    w.writerow(names)
    w.writerows(zip(*safe, strict=True))


def _neutralise_column(col: list[object]) -> list[object]:
    """neutralise() over a column; its distinct values are checked first (most columns hold a few
    distinct values, and most hold no formula-like text at all)."""
    p = FORMULA_PREFIXES
    if not any(isinstance(v, str) and v.startswith(p) for v in set(col)):
        return col
    return [("'" + v) if isinstance(v, str) and v.startswith(p) else v for v in col]


class RowWriter:
    """Writes ``handshakes`` rows one at a time as they are built (analyzer.api.stream_handshakes):
    the same text as write_csv / write_jsonl / write_json give for the whole table."""

    def __init__(self, fmt: str, out: IO[str], table: str = "handshakes") -> None:
        if fmt not in ("csv", "json", "jsonl"):
            raise ValueError(f"cannot stream {fmt!r}")
        columns = schema.TABLES[table]
        self.fmt, self.out = fmt, out
        self.names = [c.name for c in columns]
        self._ts = [i for i, c in enumerate(columns) if c.dtype == schema.TS]
        self._float = [i for i, c in enumerate(columns) if c.dtype == "Float64"]
        self._text = [i for i, c in enumerate(columns) if c.dtype == "string"]  # the only cells neutralised
        self._csv = csv.writer(out, lineterminator="\n")
        self._buffer = io.StringIO()  # format() writes one CSV row here
        self._line = csv.writer(self._buffer, lineterminator="\n")
        self.rows = 0
        self._started = False

    def _start(self) -> None:
        self._started = True
        if self.fmt == "csv":
            self._csv.writerow(self.names)
        elif self.fmt == "json":
            self.out.write("[\n")

    def row(self, values: tuple[object, ...]) -> None:
        self.write_line(self.format(values))

    __call__ = row  # a RowWriter is itself a row sink (api.stream_handshakes)

    def format(self, values: tuple[object, ...]) -> str:
        """One row's text, newline included (and no JSON array separator: write_line adds it). Pure, so
        that --jobs workers format their rows and the parent only writes text (analyzer/parallel.py)."""
        cells = list(values)
        for i in self._ts:
            v = cells[i]
            cells[i] = None if v is None else iso(v)  # type: ignore[arg-type]
        for i in self._float:
            v = cells[i]
            if isinstance(v, float) and math.isnan(v):
                cells[i] = None
        if self.fmt == "csv":
            for i in self._text:  # neutralise()'s rule, inline: this runs for every row of --format csv
                v = cells[i]
                if isinstance(v, str) and v[:1] in FORMULA_FIRST:
                    cells[i] = "'" + v
            self._line.writerow(cells)
            text = self._buffer.getvalue()
            self._buffer.seek(0)
            self._buffer.truncate()
            return text
        return json.dumps(dict(zip(self.names, cells, strict=True)), ensure_ascii=False) + "\n"

    def write_line(self, text: str) -> None:
        """A row's text from format() (here or in a worker process) to the output."""
        if not self._started:
            self._start()
        if self.fmt == "json" and self.rows:
            self.out.write(",")
        self.out.write(text)
        self.rows += 1

    def close(self) -> None:
        if not self._started:
            self._start()
        if self.fmt == "json":
            self.out.write("]\n")


def to_csv(result: AnalysisResult, path: PathLike, table: str = "handshakes") -> None:
    """One table as CSV, the schema's columns in order; cells starting with = + - @ tab CR are prefixed with '."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        write_csv(result, fh, table)


def frame_csv(frame: pd.DataFrame, out: IO[str]) -> None:
    """Any DataFrame as formula-safe CSV (nulls empty) to an open text file."""
    import pandas as pd

    w = csv.writer(out, lineterminator="\n")
    w.writerow([neutralise(str(c)) for c in frame.columns])
    for row in frame.itertuples(index=False):
        w.writerow(["" if v is None or (not isinstance(v, str) and bool(pd.isna(v))) else neutralise(v) for v in row])


def write_csv_frame(frame: pd.DataFrame, path: PathLike) -> None:
    """Any DataFrame as formula-safe CSV (nulls empty) to ``path``."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        frame_csv(frame, fh)


def write_jsonl(result: AnalysisResult, out: IO[str], table: str = "handshakes") -> None:
    names, rows = _rows(result, table)
    for row in rows:
        out.write(json.dumps(dict(zip(names, row, strict=True)), ensure_ascii=False) + "\n")


def write_json(result: AnalysisResult, out: IO[str], table: str = "handshakes") -> None:
    """One JSON array of row objects (what pandas.read_json expects), written row by row."""
    names, rows = _rows(result, table)
    out.write("[\n")
    for i, row in enumerate(rows):
        out.write(("," if i else "") + json.dumps(dict(zip(names, row, strict=True)), ensure_ascii=False) + "\n")
    out.write("]\n")


def to_jsonl(result: AnalysisResult, path: PathLike, table: str = "handshakes") -> None:
    """One table as JSON lines: one object per row, times as ISO 8601 UTC strings, nulls as null."""
    with open(path, "w", encoding="utf-8") as fh:
        write_jsonl(result, fh, table)


def to_parquet(result: AnalysisResult, path: PathLike, table: str = "handshakes") -> None:
    """One table as Parquet with its pandas dtypes (needs pyarrow: pip install 'tls-analyzer[parquet]')."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ExportError("Parquet export needs pyarrow: pip install 'tls-analyzer[parquet]'") from None
    frame = getattr(result, table)
    frame.to_parquet(path, index=False)


__all__ = [
    "ExportError",
    "RowWriter",
    "frame_csv",
    "neutralise",
    "to_csv",
    "to_jsonl",
    "to_parquet",
    "write_csv",
    "write_csv_frame",
    "write_json",
    "write_jsonl",
]
