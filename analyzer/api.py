"""analyze(): runs the stages over the capture files and returns an AnalysisResult."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from analyzer import schema
from analyzer.capture.reader import CaptureReader
from analyzer.certificates import TrustSettings, judge_certificates
from analyzer.diagnose.causes import Cause, Confidence
from analyzer.diagnose.evidence import Evidence, ServerProfile
from analyzer.diagnose.rules import Verdict, classify, failed
from analyzer.errors import CaptureError
from analyzer.packets import SkimStats
from analyzer.result import AnalysisResult
from analyzer.scan import scan_files
from analyzer.tables import TableBuilder, endpoint_ip
from analyzer.tcp.flow import DEFAULT_TLS_PORTS, Flow
from analyzer.tls.messages import clear_shared

if TYPE_CHECKING:
    from analyzer.tls.keylog import KeyLog

PathLike = str | os.PathLike[str]


def _server_endpoint(flow: Flow) -> tuple[str, int]:
    cd = flow.client_dir or 0
    pa, pb = flow.ports
    return endpoint_ip(flow.key, 1 - cd), (pb if cd == 0 else pa)


def _is_row(flow: Flow, ev: Evidence, tls_servers: set[tuple[str, int]], tls_ports: frozenset[int]) -> bool:
    """failure-causes.md: TLS seen, a server that speaks TLS elsewhere, a TLS answer, or a well-known TLS port."""
    if flow.obs is not None or flow.starttls is not None:
        return True
    if ev.server_sent_tls():
        return True
    if _server_endpoint(flow) in tls_servers:
        return True
    return ev.server_port in tls_ports and (ev.syn_seen or flow.syn_ack is not None)


def analyze(
    paths: PathLike | Sequence[PathLike],
    ca_bundle: Iterable[PathLike] | None = None,
    keylog: PathLike | Iterable[PathLike] | None = None,
    tls_ports: Iterable[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    trust_store: str = "default",
    intermediates: Iterable[PathLike] | None = None,
    client_ca: Iterable[PathLike] | None = None,
    jobs: int = 1,
) -> AnalysisResult:
    """Analyse one capture or several (rotated files, several sensors) as one.

    ``jobs > 1`` reads independent files in that many worker processes (see analyzer/scan.py for how
    files are grouped); the result is the same as with ``jobs=1``.

    Certificates are judged as of each connection's own time against certifi's roots plus
    ``ca_bundle`` (PEM files), plus the machine's store when ``trust_store="system"``;
    ``intermediates`` (PEM files) stand in for AIA fetching; ``client_ca`` (PEM files) are the
    anchors for client certificates.

    Never raises on damaged input (see ``result.warnings``); raises CaptureError when a file is
    not a capture at all. ``progress(done_bytes, total_bytes)`` is called between blocks.
    """
    return _run(paths, ca_bundle, keylog, tls_ports, progress, trust_store, intermediates, client_ca, jobs, None, True)


def stream_handshakes(
    paths: PathLike | Sequence[PathLike],
    on_row: Callable[[tuple[object, ...]], None],
    ca_bundle: Iterable[PathLike] | None = None,
    keylog: PathLike | Iterable[PathLike] | None = None,
    tls_ports: Iterable[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    trust_store: str = "default",
    intermediates: Iterable[PathLike] | None = None,
    client_ca: Iterable[PathLike] | None = None,
    jobs: int = 1,
) -> AnalysisResult:
    """analyze(), but each ``handshakes`` row (a tuple in schema.HANDSHAKES order) goes to ``on_row``
    as soon as it is built, in the same order, and is not kept; the alerts, events, chains and
    certificates tables are not built. What the CLI uses to write csv/json/jsonl files: memory then
    holds the connections being analysed, never the rows. The returned result has the warnings,
    file facts and empty tables."""
    return _run(
        paths, ca_bundle, keylog, tls_ports, progress, trust_store, intermediates, client_ca, jobs, on_row, False
    )


def _run(
    paths: PathLike | Sequence[PathLike],
    ca_bundle: Iterable[PathLike] | None,
    keylog: PathLike | Iterable[PathLike] | None,
    tls_ports: Iterable[int] | None,
    progress: Callable[[int, int], None] | None,
    trust_store: str,
    intermediates: Iterable[PathLike] | None,
    client_ca: Iterable[PathLike] | None,
    jobs: int,
    sink: Callable[[tuple[object, ...]], None] | None,
    details: bool,
) -> AnalysisResult:
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of short-lived acyclic objects: the cyclic collector only costs time here
    try:
        trust = TrustSettings(
            [os.fspath(p) for p in ca_bundle or ()],
            trust_store == "system",
            [os.fspath(p) for p in intermediates or ()],
            [os.fspath(p) for p in client_ca or ()],
        )
        if trust_store not in ("default", "system"):
            raise ValueError(f"trust_store must be 'default' or 'system', not {trust_store!r}")
        keylogs = [os.fspath(keylog)] if isinstance(keylog, str | os.PathLike) else [os.fspath(k) for k in keylog or ()]
        result = _analyze(paths, tls_ports, progress, trust, keylogs, jobs, sink, details)
    finally:
        clear_shared()
        if gc_was_enabled:
            gc.enable()
    return result


def _read_keylog(path: str, warnings: list[str]) -> KeyLog:
    from analyzer.tls.keylog import parse_keylog

    try:
        with open(path, "rb") as fh:
            log = parse_keylog(fh.read())
    except OSError as exc:
        raise CaptureError(f"{path}: cannot read the key log ({exc.strerror})") from exc
    if not len(log):
        warnings.append(f"{os.path.basename(path)}: no usable secrets in this key log")
    if log.skipped_lines:
        warnings.append(f"{os.path.basename(path)}: {log.skipped_lines} line(s) of the key log were not understood")
    return log


def _analyze(
    paths: PathLike | Sequence[PathLike],
    tls_ports: Iterable[int] | None,
    progress: Callable[[int, int], None] | None,
    trust: TrustSettings,
    keylogs: list[str],
    jobs: int = 1,
    sink: Callable[[tuple[object, ...]], None] | None = None,
    details: bool = True,
) -> AnalysisResult:
    files = [os.fspath(paths)] if isinstance(paths, str | os.PathLike) else [os.fspath(p) for p in paths]
    ports = frozenset(tls_ports) if tls_ports is not None else DEFAULT_TLS_PORTS
    warnings: list[str] = []
    logs = [_read_keylog(k, warnings) for k in keylogs]
    log: KeyLog | None = None
    if logs:
        from analyzer.tls.keylog import merge

        log = merge(*logs)
    readers = [CaptureReader(f) for f in files]  # fail fast on a non-capture before any work
    sizes = [r.info.size_bytes for r in readers]
    for r in readers:
        r.close()
    scans = scan_files(files, sizes, ports, log, jobs, progress)
    # merged in file order, as a sequential run would have met them
    warnings.extend(m for _, m in sorted((w for s in scans for w in s.warnings), key=lambda w: w[0]))
    errors = [m for _, m in sorted((e for s in scans for e in s.errors), key=lambda e: e[0])]
    st = SkimStats.merged([s.stats for s in sorted(scans, key=lambda s: s.files[0])])
    firsts = [s.first_ts for s in scans if s.first_ts is not None]
    lasts = [s.last_ts for s in scans if s.last_ts is not None]
    first_ts, last_ts = (min(firsts) if firsts else None), (max(lasts) if lasts else None)
    warnings.extend(errors[:100])
    if st.ip_fragments:
        warnings.append(f"{st.ip_fragments} IP fragment(s) not reassembled (first at frame {st.first_fragment_frame})")
    if st.truncated_headers:
        warnings.append(f"{st.truncated_headers} frame(s) too short for their TCP header (snap length?)")
    end = last_ts or 0
    flows = [f for s in scans for f in s.flows]
    del scans
    for flow in flows:
        flow.finish(end)
    flows.sort(key=lambda f: (f.first_ts, f.file_index, f.first_frame))
    evidence = [Evidence(f, end) for f in flows]
    certs = judge_certificates(flows, evidence, trust, warnings)
    servers: dict[tuple[str, int], ServerProfile] = {}
    for f in flows:
        if f.obs is not None and f.obs.server_hello is not None:
            sh = f.obs.server_hello
            servers.setdefault(_server_endpoint(f), ServerProfile()).add(sh.selected_version, sh.cipher_suite)
    tls_servers = set(servers)
    builder = TableBuilder([os.path.basename(f) for f in files], details)
    # rows are built in capture order and each connection's state is let go as soon as its row exists,
    # so the state of all flows and all rows are never held at once
    flows.reverse()
    evidence.reverse()
    while flows:
        flow, ev = flows.pop(), evidence.pop()
        endpoint = _server_endpoint(flow)
        ev.server_speaks_tls_elsewhere = endpoint in tls_servers
        ev.server = servers.get(endpoint)
        if not _is_row(flow, ev, tls_servers, ports):
            continue
        try:
            rule, verdict = classify(ev)
        except Exception as exc:  # a bug must cost one row its diagnosis, not the whole analysis
            rule, verdict = (
                "error",
                failed(
                    Cause.OTHER, f"internal error while diagnosing: {type(exc).__name__}: {exc}", Confidence.INFERRED
                ),
            )
            warnings.append(f"connection at frame {flow.first_frame}: diagnosis failed ({type(exc).__name__}: {exc})")
        try:
            builder.add(flow, ev, verdict, rule, flow.file_index)
        except Exception as exc:  # never lose the whole analysis to one connection
            warnings.append(
                f"connection at frame {flow.first_frame}: could not build its row ({type(exc).__name__}: {exc})"
            )
        if sink is not None:  # outside the try: a failing write (full disk, closed pipe) stops the run
            for row in builder.drain():
                sink(row)
    tables = builder.tables()
    if details:
        tables["certificates"] = certs.certificates_table(builder.cert_seen, (first_ts or 0, last_ts or 0), warnings)
    else:
        tables["certificates"] = {c.name: [] for c in schema.CERTIFICATES}
    return AnalysisResult(tables, warnings, files, st.frames, first_ts, last_ts, certs.describe_trust())


__all__ = ["Verdict", "analyze", "stream_handshakes"]
