"""The stages after the packet pass (wrap-up, server profiles, diagnosis, rows), shared by the one-process
path (api.py) and the worker processes of --jobs (parallel.py), so both build rows the same way."""

from __future__ import annotations

from collections.abc import Callable

from analyzer.diagnose.causes import Cause, Confidence
from analyzer.diagnose.evidence import Evidence, ServerProfile
from analyzer.diagnose.rules import classify, failed
from analyzer.tables import TableBuilder, endpoint_ip
from analyzer.tcp.flow import Flow

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


def negotiated(flows: list[Flow]) -> list[tuple[Order, Endpoint, int, int]]:
    """What each server endpoint agreed to, connection by connection (for the server profiles)."""
    out = []
    for f in flows:
        if f.obs is not None and f.obs.server_hello is not None:
            sh = f.obs.server_hello
            out.append((order(f), server_endpoint(f), sh.selected_version, sh.cipher_suite))
    return out


def profiles(agreed: list[tuple[Order, Endpoint, int, int]]) -> dict[Endpoint, ServerProfile]:
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
    flows: list[Flow],
    evidence: list[Evidence],
    servers: dict[Endpoint, ServerProfile],
    tls_ports: frozenset[int],
    builder: TableBuilder,
    warnings: list[str],
    after: Callable[[Flow], None] | None = None,
) -> None:
    """Classify every connection that is a row and build its rows, in row order; ``after(flow)`` runs
    once each row is built (to hand it on). Each connection's state is let go as soon as its row
    exists (the lists are emptied), so all flows and all rows are never held at once."""
    tls_servers = set(servers)
    flows.reverse()
    evidence.reverse()
    while flows:
        flow, ev = flows.pop(), evidence.pop()
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


__all__ = ["Endpoint", "Order", "diagnose", "negotiated", "order", "profiles", "server_endpoint", "wrap_up"]
