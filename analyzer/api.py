"""analyze(): runs the stages over the capture files and returns an AnalysisResult."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from analyzer import schema
from analyzer.capture.reader import CaptureReader
from analyzer.certificates import TrustSettings, rotations, row_preparer
from analyzer.diagnose.rules import Verdict
from analyzer.errors import CaptureError
from analyzer.packets import SkimStats, release_buffer
from analyzer.result import AnalysisResult
from analyzer.scan import merged_errors, scan_files
from analyzer.stages import diagnose, in_order, profiles, survey, wrap_up
from analyzer.tables import TableBuilder
from analyzer.tcp.flow import DEFAULT_TLS_PORTS, Flow
from analyzer.tls.messages import clear_shared

if TYPE_CHECKING:
    from analyzer.tls.keylog import KeyLog

PathLike = str | os.PathLike[str]


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

    ``jobs > 1`` analyses independent files in that many worker processes, or splits a single
    capture (or one rotated series) between them by connection (analyzer/parallel.py); the result
    is the same as with ``jobs=1``.

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
        release_buffer()  # scan_group hands it back when its pass ends; this covers a pass that raised
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
    par = None
    if jobs > 1:
        from analyzer.parallel import Parallel

        par = Parallel.start(files, sizes, ports, log, trust, jobs, progress, details)  # None off Linux
    scans = par.scans if par is not None else scan_files(files, sizes, ports, log, jobs, progress)
    # merged in file order, as a sequential run would have met them
    warnings.extend(m for _, m in sorted((w for s in scans for w in s.warnings), key=lambda w: w[0]))
    errors = merged_errors(scans)
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
    names = [os.path.basename(f) for f in files]
    window = (first_ts or 0, last_ts or 0)
    if par is not None:  # the workers diagnose their own connections; rows come back in order
        tables, trust_label = par.finish(end, window, warnings, sink)
        return AnalysisResult(tables, warnings, files, st.frames, first_ts, last_ts, {"trust": trust_label})
    flows = [f for s in scans for f in s.flows]
    stores = [s.store for s in scans if s.store is not None]
    store = stores[0] if stores else None  # only a one-group scan spills (scan_group)
    del scans
    try:
        evidence = wrap_up(flows, end)
        found = survey(flows, evidence, store, end, trust, warnings)
        certs = found.stage
        rotations(found.seen, warnings)
        servers = profiles(found.agreed)
        prepare = row_preparer(trust, certs.judge is not None, certs.trust_label, found.first_ts or 0, found.seen)
        builder = TableBuilder(names, details)

        def hand_on(_flow: Flow) -> None:
            if sink is not None:
                for row in builder.drain():
                    sink(row)

        pairs = in_order(flows, evidence, store, end, found.kept)
        diagnose(pairs, servers, ports, builder, warnings, hand_on, prepare)
    finally:
        if store is not None:
            if store.problem is not None:
                warnings.append(store.problem)
            store.close()
    tables = builder.tables()
    if details:
        tables["certificates"] = certs.certificates_table(builder.cert_seen, window, warnings)
    else:
        tables["certificates"] = schema.empty(schema.CERTIFICATES)
    return AnalysisResult(tables, warnings, files, st.frames, first_ts, last_ts, certs.describe_trust())


__all__ = ["Verdict", "analyze", "stream_handshakes"]
