"""Table export: CSV (spreadsheet-formula safe), JSON lines and Parquet (pyarrow optional) of any result table."""

from __future__ import annotations

import csv
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


class ExportError(RuntimeError):
    """An export that cannot run here (a missing optional dependency); the message says what to install."""


def neutralise(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula gets a leading ' (OWASP CSV injection)."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _rows(result: AnalysisResult, table: str) -> tuple[list[str], Iterator[list[object]]]:
    """Header and rows straight from the result's columns: times as ISO 8601 UTC, nulls as None."""
    columns = schema.TABLES[table]
    data = result.columns[table]
    names = [c.name for c in columns]
    ts = {c.name for c in columns if c.dtype == schema.TS}
    n = len(data[names[0]]) if names and names[0] in data else 0

    def rows() -> Iterator[list[object]]:
        for i in range(n):
            row: list[object] = []
            for name in names:
                v = data[name][i] if name in data else None
                if name in ts:
                    v = iso(v) if v is not None else None  # type: ignore[arg-type]
                elif isinstance(v, float) and math.isnan(v):
                    v = None
                row.append(v)
            yield row

    return names, rows()


def write_csv(result: AnalysisResult, out: IO[str], table: str = "handshakes") -> None:
    names, rows = _rows(result, table)
    w = csv.writer(out, lineterminator="\n")
    w.writerow(names)
    for row in rows:
        w.writerow([neutralise(v) for v in row])


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
