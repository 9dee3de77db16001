"""The stages after the packet pass (wrap-up, survey of chains and agreed versions, server profiles,
diagnosis, rows), shared by the one-process path (api.py) and the worker processes of --jobs
(parallel.py), so both build rows the same way.

A scan's connections are partly in memory and partly in its spill file (analyzer/spill.py): the
survey reads the spilled ones that had TLS once, the diagnosis reads every one once more, in row
order, beside the ones in memory, so that a connection is in memory only while it is looked at."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from analyzer.certificates import CertStage, ChainJudging, Seen, ServerKey, TrustSettings, server_key_of
from analyzer.diagnose.causes import Cause, Confidence
from analyzer.diagnose.evidence import Evidence, ServerProfile
from analyzer.diagnose.rules import classify, failed
from analyzer.tables import TableBuilder, endpoint_ip
from analyzer.tcp.flow import Flow

if TYPE_CHECKING:
    from analyzer.spill import FlowStore
    from analyzer.x509.ocsp import OcspVerdict
    from analyzer.x509.validate import ChainVerdict

Order = tuple[int, int, int]  # (first packet time, file index, first frame): the order of rows
Endpoint = tuple[str, int]


def order(flow: Flow) -> Order:
    return flow.first_ts, flow.file_index, flow.first_frame


def server_endpoint(flow: Flow) -> Endpoint:
    cd = flow.client_dir or 0
    pa, pb = flow.ports
    return endpoint_ip(flow.key, 1 - cd), (pb if cd == 0 else pa)


def wrap_up(flows: list[Flow], end: int) -> list[Evidence]:
    """Finish every connection at the capture's end, sort them into row order (in place), and give
    each its Evidence."""
    for flow in flows:
        flow.finish(end)
    flows.sort(key=order)
    return [Evidence(f, end) for f in flows]


Agreed = tuple[Order, Endpoint, int, int]
Verdicts = tuple["ChainVerdict | None", "OcspVerdict | None", "ChainVerdict | None"]


@dataclass(slots=True)
class Survey:
    """What the connections of one scan say about the others: the certificate stage and every visible
    chain verdict per server, what each server agreed to, the first connection's time; and the
    verdicts of spilled connections, kept for when they are read back for their rows."""

    stage: CertStage
    seen: dict[ServerKey, list[Seen]]
    agreed: list[Agreed]
    first_ts: int | None
    kept: dict[int, Verdicts]


def _agreed(f: Flow, out: list[Agreed]) -> None:
    if f.obs is not None and f.obs.server_hello is not None:
        sh = f.obs.server_hello
        out.append((order(f), server_endpoint(f), sh.selected_version, sh.cipher_suite))


def _read_back(store: FlowStore, i: int, end: int) -> tuple[Flow, Evidence]:
    flow = store.load(i)
    flow.finish(end)
    return flow, Evidence(flow, end)


def survey(
    flows: list[Flow],
    evidence: list[Evidence],
    store: FlowStore | None,
    end: int,
    settings: TrustSettings,
    warnings: list[str],
    load: bool = False,
) -> Survey:
    """Judge every chain (as of its own connection's time) and note what every server agreed to."""
    judging = ChainJudging(settings, warnings, load)
    agreed: list[Agreed] = []
    for f, ev in zip(flows, evidence, strict=True):
        judging.add(f, ev)
        _agreed(f, agreed)
    kept: dict[int, Verdicts] = {}
    firsts = [flows[0].first_ts] if flows else []  # wrap_up sorted them
    if store is not None:
        for i in store.tls_records():
            given = store.survey_input(i)
            if given is None:  # its state may still change at the capture's end: read it whole
                f, ev = _read_back(store, i, end)
                judging.add(f, ev)
                _agreed(f, agreed)
                verdicts: Verdicts = (ev.cert_verdict, ev.ocsp, ev.client_cert_verdict)
            else:
                key, cd, first_ts, file_index, first_frame, sni, hello, cert, cert_ts, ccert, status = given
                at: Order = (first_ts, file_index, first_frame)
                skey = server_key_of(key, cd, sni)
                verdicts = judging.judge(at, key, skey, cert, status, ccert, cert_ts)
                if hello is not None:
                    agreed.append((at, skey[:2], *hello))
            if verdicts != (None, None, None):
                kept[i] = verdicts
        spilled_first = store.first_ts()
        if spilled_first is not None:
            firsts.append(spilled_first)
    return Survey(judging.stage, judging.seen(), agreed, min(firsts) if firsts else None, kept)


def in_order(
    flows: list[Flow], evidence: list[Evidence], store: FlowStore | None, end: int, kept: dict[int, Verdicts]
) -> Iterator[tuple[Flow, Evidence]]:
    """Every connection with its Evidence, in row order; the lists are emptied as they go (and spilled
    connections are read back one at a time), so that each is let go once its row is built."""
    flows.reverse()
    evidence.reverse()
    spilled = store.row_order() if store is not None else iter(())
    i = next(spilled, -1)
    while flows or i >= 0:
        if i >= 0 and (not flows or store.order(i) < order(flows[-1])):  # type: ignore[union-attr]
            f, ev = _read_back(store, i, end)  # type: ignore[arg-type]
            verdicts = kept.pop(i, None)
            if verdicts is not None:
                ev.cert_verdict, ev.ocsp, ev.client_cert_verdict = verdicts
            i = next(spilled, -1)
            yield f, ev
        else:
            yield flows.pop(), evidence.pop()


def profiles(agreed: list[Agreed]) -> dict[Endpoint, ServerProfile]:
    """Server profiles, built in row order (ties in their counters keep that order)."""
    servers: dict[Endpoint, ServerProfile] = {}
    for _order, endpoint, version, cipher in sorted(agreed, key=lambda a: a[0]):
        servers.setdefault(endpoint, ServerProfile()).add(version, cipher)
    return servers


def _is_row(flow: Flow, ev: Evidence, tls_servers: set[Endpoint], tls_ports: frozenset[int]) -> bool:
    """failure-causes.md: TLS seen, a server that speaks TLS elsewhere, a TLS answer, or a well-known TLS port."""
    if flow.obs is not None or flow.starttls is not None:
        return True
    if ev.server_sent_tls():
        return True
    if server_endpoint(flow) in tls_servers:
        return True
    return ev.server_port in tls_ports and (ev.syn_seen or flow.syn_ack is not None)


def diagnose(
    pairs: Iterator[tuple[Flow, Evidence]],
    servers: dict[Endpoint, ServerProfile],
    tls_ports: frozenset[int],
    builder: TableBuilder,
    warnings: list[str],
    after: Callable[[Flow], None] | None = None,
    prepare: Callable[[Flow, Evidence], None] | None = None,
) -> None:
    """Classify every connection that is a row and build its rows, in the order ``pairs`` gives them
    (in_order: row order); ``prepare(flow, ev)`` first completes its Evidence, ``after(flow)`` runs
    once its row is built (to hand it on)."""
    tls_servers = set(servers)
    for flow, ev in pairs:
        if prepare is not None:
            prepare(flow, ev)
        endpoint = server_endpoint(flow)
        ev.server_speaks_tls_elsewhere = endpoint in tls_servers
        ev.server = servers.get(endpoint)
        if not _is_row(flow, ev, tls_servers, tls_ports):
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
        if after is not None:  # outside the try: a failing write (full disk, closed pipe) stops the run
            after(flow)


__all__ = [
    "Endpoint",
    "Order",
    "Survey",
    "diagnose",
    "in_order",
    "order",
    "profiles",
    "server_endpoint",
    "survey",
    "wrap_up",
]
