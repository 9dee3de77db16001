"""analyze(): runs the stages over the capture files and returns an AnalysisResult."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from analyzer.capture.reader import CaptureReader, DecryptionSecrets
from analyzer.certificates import TrustSettings, judge_certificates
from analyzer.diagnose.causes import Cause, Confidence
from analyzer.diagnose.evidence import Evidence, ServerProfile
from analyzer.diagnose.rules import Verdict, classify, failed
from analyzer.engine import Engine
from analyzer.errors import CaptureError
from analyzer.packets import LINKTYPE_NAMES
from analyzer.result import AnalysisResult
from analyzer.tables import TableBuilder, endpoint_ip
from analyzer.tcp.flow import DEFAULT_TLS_PORTS, Flow

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
) -> AnalysisResult:
    """Analyse one capture or several (rotated files, several sensors) as one.

    Certificates are judged as of each connection's own time against certifi's roots plus
    ``ca_bundle`` (PEM files), plus the machine's store when ``trust_store="system"``;
    ``intermediates`` (PEM files) stand in for AIA fetching; ``client_ca`` (PEM files) are the
    anchors for client certificates.

    Never raises on damaged input (see ``result.warnings``); raises CaptureError when a file is
    not a capture at all. ``progress(done_bytes, total_bytes)`` is called between blocks.
    """
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
        result = _analyze(paths, tls_ports, progress, trust, keylogs)
    finally:
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


def _add_secrets(engine: Engine, blocks: Sequence[DecryptionSecrets], warnings: list[str]) -> None:
    from analyzer.tls.keylog import keylog_from_dsb, merge

    for dsb in blocks:
        log = keylog_from_dsb(dsb.secrets_type, dsb.data)
        if log is None:
            warnings.append(f"decryption secrets block of type 0x{dsb.secrets_type:08x} is not a TLS key log; ignored")
            continue
        engine.keys.log = merge(engine.keys.log, log) if engine.keys.log is not None else log


def _analyze(
    paths: PathLike | Sequence[PathLike],
    tls_ports: Iterable[int] | None,
    progress: Callable[[int, int], None] | None,
    trust: TrustSettings,
    keylogs: list[str],
) -> AnalysisResult:
    files = [os.fspath(paths)] if isinstance(paths, str | os.PathLike) else [os.fspath(p) for p in paths]
    ports = frozenset(tls_ports) if tls_ports is not None else DEFAULT_TLS_PORTS
    engine = Engine(ports)
    warnings: list[str] = []
    logs = [_read_keylog(k, warnings) for k in keylogs]
    if logs:
        from analyzer.tls.keylog import merge

        engine.keys.log = merge(*logs)
    readers = [CaptureReader(f) for f in files]  # fail fast on a non-capture before any work
    total = sum(r.info.size_bytes for r in readers)
    done = 0
    first_ts: int | None = None
    last_ts: int | None = None
    for i, reader in enumerate(readers):
        engine.file_index = i
        base = done
        cb = (lambda n, b=base: progress(b + n, total)) if progress else None
        secrets_seen = 0
        for blk in reader.blocks(progress=cb):
            if len(reader.info.secrets) > secrets_seen:  # a pcapng Decryption Secrets Block was read
                _add_secrets(engine, reader.info.secrets[secrets_seen:], warnings)
                secrets_seen = len(reader.info.secrets)
            engine.process(blk)
        done += reader.info.size_bytes
        info = reader.info
        warnings.extend(info.warnings)
        for lt in info.linktypes:
            if lt not in LINKTYPE_NAMES:
                warnings.append(
                    f"{os.path.basename(info.path)}: link type {lt} is not supported; its frames were skipped"
                )
        if info.first_ts_ns is not None:
            first_ts = info.first_ts_ns if first_ts is None else min(first_ts, info.first_ts_ns)
        if info.last_ts_ns is not None:
            last_ts = info.last_ts_ns if last_ts is None else max(last_ts, info.last_ts_ns)
        reader.close()
    st = engine.stats
    warnings.extend(engine.errors[:100])
    if st.ip_fragments:
        warnings.append(f"{st.ip_fragments} IP fragment(s) not reassembled (first at frame {st.first_fragment_frame})")
    if st.truncated_headers:
        warnings.append(f"{st.truncated_headers} frame(s) too short for their TCP header (snap length?)")
    end = last_ts or 0
    flows = engine.finish(end)
    evidence = [Evidence(f, end) for f in flows]
    certs = judge_certificates(flows, evidence, trust, warnings)
    servers: dict[tuple[str, int], ServerProfile] = {}
    for f in flows:
        if f.obs is not None and f.obs.server_hello is not None:
            sh = f.obs.server_hello
            servers.setdefault(_server_endpoint(f), ServerProfile()).add(sh.selected_version, sh.cipher_suite)
    tls_servers = set(servers)
    builder = TableBuilder([os.path.basename(f) for f in files])
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
    tables = builder.tables()
    tables["certificates"] = certs.certificates_table(builder.cert_seen, (first_ts or 0, last_ts or 0), warnings)
    return AnalysisResult(tables, warnings, files, st.frames, first_ts, last_ts, certs.describe_trust())


__all__ = ["Verdict", "analyze"]
