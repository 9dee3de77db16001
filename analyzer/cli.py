"""The tls-analyzer command line: parse arguments, call the API, print or write; one-line errors, exit 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence

import pandas as pd

from analyzer.api import analyze
from analyzer.errors import CaptureError

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
TABLE_COLUMNS = [
    "conn_id",
    "ts",
    "client_ip",
    "server_ip",
    "server_port",
    "sni",
    "version",
    "outcome",
    "failure_cause",
    "alert",
]


def neutralise(value: object) -> object:
    """Cells from the wire must not run as spreadsheet formulas (OWASP CSV injection)."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _safe_frame(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == "string":
            out[col] = out[col].map(neutralise, na_action="ignore").astype("string")
    return out


class Progress:
    """A one-line progress bar on stderr, only for a terminal and only after two seconds."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.start = time.monotonic()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or time.monotonic() - self.start < 2 or total <= 0:
            return
        frac = min(1.0, done / total)
        bar = "#" * int(frac * 30)
        rate = done / 1e6 / max(1e-9, time.monotonic() - self.start)
        sys.stderr.write(f"\r[{bar:<30}] {frac:6.1%}  {rate:7.1f} MB/s")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()


def _print_table(df: pd.DataFrame, out: Callable[[str], object]) -> None:
    if df.empty:
        out("no TLS connections found")
        return
    view = df[TABLE_COLUMNS].copy()
    view["ts"] = view["ts"].dt.strftime("%H:%M:%S.%f").str[:-3]
    view = view.astype("string").fillna("")
    for col in view.columns:
        view[col] = view[col].str.slice(0, 40)
    widths = {c: max(len(c), int(view[c].str.len().max() or 0)) for c in view.columns}
    out("  ".join(c.ljust(widths[c]) for c in view.columns))
    for row in view.itertuples(index=False):
        out("  ".join(str(v).ljust(widths[c]) for c, v in zip(view.columns, row, strict=True)))


def _write(df: pd.DataFrame, fmt: str, output: str | None) -> None:
    if fmt == "table":
        if output:
            with open(output, "w") as fh:
                _print_table(df, lambda s: fh.write(s + "\n"))
        else:
            _print_table(df, print)
        return
    if fmt == "csv":
        text = _safe_frame(df).to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    elif fmt == "json":
        text = df.to_json(orient="records", date_format="iso", date_unit="ns", indent=1) or "[]"
        text += "\n"
    elif fmt == "parquet":
        if not output:
            raise SystemExit("tls-analyzer: --format parquet needs --output PATH")
        try:
            df.to_parquet(output, index=False)
        except ImportError:
            raise SystemExit(
                "tls-analyzer: parquet output needs pyarrow (pip install 'tls-analyzer[parquet]')"
            ) from None
        return
    else:
        raise SystemExit(f"tls-analyzer: unknown format {fmt}")
    if output:
        with open(output, "w", newline="") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)


def _ports(text: str) -> list[int]:
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of ports: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tls-analyzer", description="Explain the TLS handshakes in packet captures.")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("analyze", help="one row per TLS connection attempt")
    a.add_argument("captures", nargs="+", metavar="CAPTURE", help="pcap / pcapng files (gzip or zstd ok)")
    a.add_argument("--ca-bundle", action="append", default=[], metavar="PEM", help="extra trust anchors (repeatable)")
    a.add_argument("--keylog", action="append", default=[], metavar="FILE", help="NSS key log (SSLKEYLOGFILE)")
    a.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    a.add_argument("--output", "-o", metavar="PATH", help="write to PATH instead of standard output")
    a.add_argument(
        "--tls-ports",
        type=_ports,
        metavar="P,P,...",
        help="ports where a bare SYN counts as a TLS attempt (replaces the default list)",
    )
    a.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for path in args.captures:
        if not os.path.exists(path):
            print(f"tls-analyzer: {path}: no such file", file=sys.stderr)
            return 2
    progress = Progress(sys.stderr.isatty() and not args.no_progress)
    try:
        result = analyze(
            args.captures,
            ca_bundle=args.ca_bundle or None,
            keylog=args.keylog or None,
            tls_ports=args.tls_ports,
            progress=progress,
        )
    except CaptureError as exc:
        progress.close()
        print(f"tls-analyzer: {exc}", file=sys.stderr)
        return 2
    progress.close()
    try:
        _write(result.handshakes, args.format, args.output)
    except BrokenPipeError:
        return 0
    except OSError as exc:
        print(f"tls-analyzer: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return 2
    for w in result.warnings[:20]:
        print(f"warning: {w}", file=sys.stderr)
    if len(result.warnings) > 20:
        print(f"warning: ... and {len(result.warnings) - 20} more", file=sys.stderr)
    if args.format == "table" and not args.output:
        print("\n" + result.summary().split("\n", 1)[-1] if len(result.handshakes) else "")
    return 0


def _json_default(o: object) -> str:
    return str(o)


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["json", "main"]
