"""The tls-analyzer command line: parse arguments, call the API, print or write; one-line errors, exit 2."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from analyzer.api import analyze, stream_handshakes
from analyzer.errors import CaptureError
from analyzer.report.export import RowWriter, neutralise, write_csv, write_json, write_jsonl
from analyzer.result import AnalysisResult, iso
from analyzer.scan import expand_captures

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


def _print_table(result: AnalysisResult, out: Callable[[str], object]) -> None:
    cols = result.columns["handshakes"]
    n = len(cols["conn_id"])
    if not n:
        out("no TLS connections found")
        return
    view = {c: ["" if v is None else str(v)[:40] for v in cols[c]] for c in TABLE_COLUMNS}
    view["ts"] = [iso(v)[11:23] for v in cols["ts"]]  # type: ignore[arg-type]
    widths = {c: max(len(c), *(len(v) for v in view[c])) for c in TABLE_COLUMNS}
    out("  ".join(c.ljust(widths[c]) for c in TABLE_COLUMNS).rstrip())
    for i in range(n):
        out("  ".join(view[c][i].ljust(widths[c]) for c in TABLE_COLUMNS).rstrip())


def _write(result: AnalysisResult, fmt: str, output: str | None) -> None:
    if fmt == "parquet":
        if not output:
            raise UsageError("--format parquet needs --output PATH")
        try:
            result.handshakes.to_parquet(output, index=False)
        except ImportError:
            raise UsageError("parquet output needs pyarrow (pip install 'tls-analyzer[parquet]')") from None
        return
    with open(output, "w", newline="", encoding="utf-8") if output else contextlib.nullcontext(sys.stdout) as fh:
        if fmt == "table":
            _print_table(result, lambda s: fh.write(s + "\n"))
        else:  # csv (formula-safe), json (one array), jsonl (one object per line): the report's exporters
            {"csv": write_csv, "json": write_json, "jsonl": write_jsonl}[fmt](result, fh)


def _stream(args: argparse.Namespace, progress: Progress) -> AnalysisResult:
    """csv / json / jsonl: each row is written as soon as it is built and not kept (memory follows the
    connections being analysed, not the rows); a run that fails leaves no partial file behind."""
    try:
        fh = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
    writer = RowWriter(args.format, fh)
    done = False
    try:
        result = stream_handshakes(args.captures, writer, progress=progress, jobs=args.jobs, **_analysis_options(args))
        writer.close()
        done = True
    finally:
        if args.output:
            fh.close()
            if not done:
                with contextlib.suppress(OSError):
                    os.remove(args.output)
    return result


def _lost_worker(exc: BaseException) -> bool:
    """A --jobs worker killed from outside (the out-of-memory killer): not a bug to report."""
    parallel = sys.modules.get("analyzer.parallel")  # only loaded when --jobs was used
    return parallel is not None and isinstance(exc, parallel.WorkerLost)


class UsageError(Exception):
    """Bad usage found after argument parsing; the CLI prints it in one line and exits 2."""


def _ports(text: str) -> list[int]:
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of ports: {text!r}") from None


JOBS_HELP = "N worker processes: independent files in parallel, one capture split by connection (0: one per core)"


def _jobs(text: str) -> int:
    """N worker processes; 0 means one per CPU core."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of processes: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError("--jobs must be 0 (one per core) or more")
    return n or (os.cpu_count() or 1)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tls-analyzer", description="Explain the TLS handshakes in packet captures.")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("analyze", help="one row per TLS connection attempt")
    a.add_argument(
        "captures", nargs="+", metavar="CAPTURE", help="pcap / pcapng files (gzip or zstd ok), directories or globs"
    )
    a.add_argument("--jobs", "-j", type=_jobs, default=1, metavar="N", help=JOBS_HELP)
    a.add_argument("--ca-bundle", action="append", default=[], metavar="PEM", help="extra trust anchors (repeatable)")
    a.add_argument(
        "--trust-store",
        choices=["default", "system"],
        default="default",
        help="default: certifi's roots (reproducible) plus --ca-bundle; system: also this machine's store",
    )
    a.add_argument(
        "--intermediates",
        action="append",
        default=[],
        metavar="PEM",
        help="intermediate CAs the path builder may use when a server did not send them (stands in for AIA fetching)",
    )
    a.add_argument(
        "--client-ca", action="append", default=[], metavar="PEM", help="anchors for client certificates (mutual TLS)"
    )
    a.add_argument("--keylog", action="append", default=[], metavar="FILE", help="NSS key log (SSLKEYLOGFILE)")
    a.add_argument("--format", choices=["table", "csv", "json", "jsonl", "parquet"], default="table")
    a.add_argument("--output", "-o", metavar="PATH", help="write to PATH instead of standard output")
    a.add_argument(
        "--tls-ports",
        type=_ports,
        metavar="P,P,...",
        help="ports where a bare SYN counts as a TLS attempt (replaces the default list)",
    )
    a.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    _add_report_commands(sub)
    return p


def _trust_options(c: argparse.ArgumentParser) -> None:
    """The analysis options of `analyze`, for the commands that analyse before they report."""
    c.add_argument("--ca-bundle", action="append", default=[], metavar="PEM", help="extra trust anchors (repeatable)")
    c.add_argument("--trust-store", choices=["default", "system"], default="default", help="as for analyze")
    c.add_argument("--intermediates", action="append", default=[], metavar="PEM", help="as for analyze")
    c.add_argument("--client-ca", action="append", default=[], metavar="PEM", help="as for analyze")
    c.add_argument("--keylog", action="append", default=[], metavar="FILE", help="NSS key log (SSLKEYLOGFILE)")
    c.add_argument("--tls-ports", type=_ports, metavar="P,P,...", help="as for analyze")


def _add_report_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    r = sub.add_parser("report", help="incident report: HTML (plots embedded) and Markdown into a directory")
    r.add_argument(
        "captures", nargs="+", metavar="CAPTURE", help="pcap / pcapng files (gzip or zstd ok), directories or globs"
    )
    r.add_argument("--jobs", "-j", type=_jobs, default=1, metavar="N", help=JOBS_HELP)
    r.add_argument("--output", "-o", required=True, metavar="DIR", help="directory for the report (created)")
    r.add_argument("--title", help="report title (default: names the capture files)")
    _trust_options(r)
    c = sub.add_parser("compare", help="what changed per server between two captures")
    c.add_argument("captures", nargs=2, metavar="CAPTURE", help="BEFORE and AFTER")
    c.add_argument(
        "--by",
        choices=["server", "endpoint", "sni"],
        default="server",
        help="server: (address, port, SNI); endpoint: (address, port); sni: the name alone",
    )
    c.add_argument("--format", choices=["table", "csv"], default="table", help="how to print the changes")
    c.add_argument("--output", "-o", metavar="DIR", help="also write the comparison in report format to DIR")
    _trust_options(c)
    e = sub.add_parser("extract", help="write only the packets of chosen connections to a pcap")
    e.add_argument("captures", nargs="+", metavar="CAPTURE", help="pcap / pcapng files (gzip or zstd ok)")
    e.add_argument("--conn", action="append", default=[], metavar="ID", help="a conn_id (repeatable)")
    e.add_argument("--cause", metavar="CODE", help="also every failed connection with this failure_cause")
    e.add_argument("--output", "-o", required=True, metavar="PATH", help="pcap to write (.pcapng: pcapng)")
    e.add_argument("--format", choices=["pcap", "pcapng"], help="default: pcap, or pcapng for several link types")
    _trust_options(e)


def _check_inputs(args: argparse.Namespace) -> str | None:
    """Expand directory/glob CAPTUREs (not for compare: exactly two files) and check every input
    exists; the problem as one line, or None."""
    if args.command != "compare":
        args.captures, problem = expand_captures(args.captures)
        if problem:
            return problem
    for path in [*args.captures, *args.ca_bundle, *args.intermediates, *args.client_ca, *args.keylog]:
        if not os.path.exists(path):
            return f"{path}: no such file"
    return None


def _analysis_options(args: argparse.Namespace) -> dict[str, Any]:
    """The trust, key-log and port options every subcommand passes on to analyze()."""
    return {
        "ca_bundle": args.ca_bundle or None,
        "keylog": args.keylog or None,
        "tls_ports": args.tls_ports,
        "trust_store": args.trust_store,
        "intermediates": args.intermediates or None,
        "client_ca": args.client_ca or None,
    }


def _run_report_command(args: argparse.Namespace) -> int:
    """report / compare / extract: analyse, then write; bad input is one line and exit 2."""
    from analyzer import extract, report
    from analyzer.compare import compare

    problem = _check_inputs(args)
    if problem:
        print(f"tls-analyzer: {problem}", file=sys.stderr)
        return 2
    options = _analysis_options(args)
    try:
        if args.command == "compare":
            cmp = compare(args.captures[0], args.captures[1], by=args.by, **options)
            if args.format == "csv":
                report.export.frame_csv(cmp.changes, sys.stdout)
            else:
                print(cmp)
            if args.output:
                print(cmp.write(args.output), file=sys.stderr)
            return 0
        result = analyze(args.captures, jobs=getattr(args, "jobs", 1), **options)
        if args.command == "report":
            print(report.write_report(result, args.output, title=args.title))
        else:
            ids = extract.conn_ids_for(result, args.conn, args.cause)
            if not ids:
                raise UsageError("no connection chosen: give --conn ID or --cause CODE that matches a failed row")
            print(extract.write_pcap(result, ids, args.output, fmt=args.format))
    except (CaptureError, UsageError) as exc:
        print(f"tls-analyzer: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:  # an unknown --conn id
        print(f"tls-analyzer: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError, report.ExportError) as exc:
        print(f"tls-analyzer: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: one line for the user, the traceback on request
        if os.environ.get("TLS_ANALYZER_DEBUG"):
            raise
        if _lost_worker(exc):
            print(f"tls-analyzer: {exc}", file=sys.stderr)
            return 1
        print(
            f"tls-analyzer: internal error ({type(exc).__name__}: {exc}); rerun with TLS_ANALYZER_DEBUG=1",
            file=sys.stderr,
        )
        return 1
    for w in result.warnings[:20]:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "analyze":
        return _run_report_command(args)
    problem = _check_inputs(args)
    if problem:
        print(f"tls-analyzer: {problem}", file=sys.stderr)
        return 2
    progress = Progress(sys.stderr.isatty() and not args.no_progress)
    streaming = args.format in ("csv", "json", "jsonl")
    try:
        if streaming:
            result = _stream(args, progress)
        else:
            result = analyze(args.captures, progress=progress, jobs=args.jobs, **_analysis_options(args))
    except UsageError as exc:
        progress.close()
        print(f"tls-analyzer: {exc}", file=sys.stderr)
        return 2
    except CaptureError as exc:
        progress.close()
        print(f"tls-analyzer: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: one line for the user, the traceback on request
        progress.close()
        if os.environ.get("TLS_ANALYZER_DEBUG"):
            raise
        if _lost_worker(exc):
            print(f"tls-analyzer: {exc}", file=sys.stderr)
            return 1
        print(
            f"tls-analyzer: internal error ({type(exc).__name__}: {exc}); rerun with TLS_ANALYZER_DEBUG=1 and report it",
            file=sys.stderr,
        )
        return 1
    progress.close()
    try:
        if not streaming:
            _write(result, args.format, args.output)
    except BrokenPipeError:
        return 0
    except UsageError as exc:
        print(f"tls-analyzer: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tls-analyzer: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return 2
    for w in result.warnings[:20]:
        print(f"warning: {w}", file=sys.stderr)
    if len(result.warnings) > 20:
        print(f"warning: ... and {len(result.warnings) - 20} more", file=sys.stderr)
    if args.format == "table" and not args.output and result.columns["handshakes"]["conn_id"]:
        print("\n" + result.summary())
    return 0


def entry() -> None:
    """Console-script entry: run, flush, and leave without tearing down every object one by one
    (freeing a large analysis object by object costs a noticeable share of a short run)."""
    try:
        code = main()
        sys.stdout.flush()
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code if isinstance(exc.code, int) else 2
    except BrokenPipeError:  # `tls-analyzer analyze x.pcap | head`: the reader left, that is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    with contextlib.suppress(BrokenPipeError):
        sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()

__all__ = ["entry", "main", "neutralise"]
