"""--jobs N: worker processes that keep their files' connections between rounds, so that only summaries
and finished rows cross process boundaries (shipping connection state back costs more than reading it).

Each worker owns some units: groups of files (analyzer/scan.py: a group is a rotated series read
through one flow table) or, when there are fewer groups than workers (a single capture, say),
shards of them: each shard's worker reads the whole group and keeps the connections whose 4-tuple
hash falls in its shard (packets.shard_of, Engine.shard). Three rounds, each a message per unit,
answered as soon as the unit is done:

1. scan: the packet pass; the worker keeps the connections (idle ones in its own spill file,
   analyzer/spill.py) and answers with the unit's summary
   (warnings, times, which 4-tuples begin and end how). The parent checks, as scan_files does,
   that no connection continues from one group into another; if one does, the workers stop and
   the pass runs again with those groups joined. Once one group is left (or a pcapng secrets
   block turns up: its keys apply to the files after it), that group is split into shards.
2. judge: with the capture's end time, the worker wraps its connections up, judges the certificate
   chains they carried, and answers with what the other groups need: what each server agreed to,
   every visible chain verdict per server (for TLS 1.3 connections whose chain is hidden).
3. rows: with the merged server profiles and chain verdicts, the worker diagnoses its connections
   and sends their rows as they are built, ROW_CHUNK connections a message, each with its order
   key (for the CLI's csv/json/jsonl, as the text the parent writes).

The parent merges the units' rows as they arrive, in the order a sequential run makes them (first
packet time, file, frame), so the tables are identical to ``jobs=1`` (tests/test_parallel.py). Worker processes are
forked (Linux), so they start with the modules and the key log already loaded; elsewhere --jobs
falls back to the one-process path.
"""

from __future__ import annotations

import contextlib
import heapq
import io
import multiprocessing
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from analyzer import schema
from analyzer.certificates import CertStage, Seen, ServerKey, TrustSettings, in_row_order, row_preparer
from analyzer.certificates import rotations as certificate_rotations
from analyzer.diagnose.evidence import Evidence, ServerProfile
from analyzer.report.export import RowWriter
from analyzer.scan import Scan, merge_overlapping, plan_groups, scan_group
from analyzer.stages import Endpoint, Order, Verdicts, diagnose, in_order, order, profiles, survey, wrap_up
from analyzer.tables import TableBuilder
from analyzer.tcp.flow import Flow

if TYPE_CHECKING:
    from analyzer.spill import FlowStore
    from analyzer.tls.keylog import KeyLog

Rows = list[tuple[object, ...]]
Bundle = tuple[Order, Rows, Rows, Rows, Rows, list[str]]  # one connection's rows of the four tables, its warnings
CertSeen = dict[str, tuple[bytes, int, int, int]]
ROW_CHUNK = 2048  # connections' rows per message from a worker in round 3


class WorkerError(RuntimeError):
    """A worker process failed (a bug, or it was killed); the message says which and how."""


class WorkerLost(WorkerError):
    """A worker process ended without a word: killed, most likely by the out-of-memory killer."""


# modules every worker would otherwise import on its own (certificate judging, alert semantics, the
# spill file, STARTTLS): imported once before the fork, the workers share them (and the parent needs
# the X.509 ones for the certificates table anyway)
PRELOAD = (
    "analyzer.x509.judge",
    "analyzer.x509.trust",
    "analyzer.x509.certs",
    "analyzer.diagnose.alert_semantics",
    "analyzer.tcp.starttls",
    "analyzer.spill",
    "certifi",
)


def _preload() -> None:
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)


def _serve(
    conn: Connection,
    files: list[str],
    ports: frozenset[int],
    log: KeyLog | None,
    trust: TrustSettings,
    details: bool,
) -> None:
    """A worker's loop: answer the parent's messages for the groups it owns until told to stop."""
    flows_of: dict[int, list[Flow]] = {}
    stores_of: dict[int, FlowStore | None] = {}  # each group's spilled connections (analyzer/spill.py)
    evidence_of: dict[int, list[Evidence]] = {}
    kept_of: dict[int, tuple[int, dict[int, Verdicts]]] = {}  # capture end, spilled connections' verdicts
    names = [os.path.basename(f) for f in files]
    try:
        while True:
            msg = conn.recv()
            cmd, g = msg[0], msg[1]
            if cmd == "stop":
                return
            try:
                if cmd == "scan":
                    idx: list[int] = msg[2]
                    shard: tuple[int, int] | None = msg[3]
                    summarise: bool = msg[
                        4
                    ]  # not for the shards of a lone group: nothing else can share its connections
                    paths = [files[i] for i in idx]
                    scan = scan_group(paths, idx, ports, log, summarise=summarise, spill=True, shard=shard)
                    flows_of[g], scan.flows = scan.flows, []
                    stores_of[g], scan.store = scan.store, None
                    conn.send(("ok", g, scan))
                elif cmd == "judge":
                    flows, end = flows_of[g], msg[2]
                    evidence = evidence_of[g] = wrap_up(flows, end)
                    warnings: list[str] = []
                    found = survey(flows, evidence, stores_of[g], end, trust, warnings)
                    kept_of[g] = (end, found.kept)
                    stage = found.stage
                    answer = (
                        found.agreed,
                        found.seen,
                        stage.judge is not None,
                        stage.trust_label,
                        warnings,
                        found.first_ts,
                    )
                    conn.send(("ok", g, answer))
                elif cmd == "rows":  # all of this worker's units, in order, with what they share
                    for g in msg[2]:
                        store = stores_of.pop(g)
                        end, kept = kept_of.pop(g)
                        try:
                            pairs = in_order(flows_of.pop(g), evidence_of.pop(g), store, end, kept)
                            part = lambda bundles, g=g: conn.send(("part", g, bundles))  # noqa: E731
                            cert_seen, first_seen = _rows(pairs, msg[3], ports, trust, names, details, part)
                            problem = store.problem if store is not None else None
                            conn.send(("ok", g, (cert_seen, first_seen, problem)))
                        finally:
                            if store is not None:
                                store.close()
            except Exception as exc:  # reported to the parent, which stops the analysis with it
                conn.send(("error", g, f"{type(exc).__name__}: {exc}"))
    except (EOFError, KeyboardInterrupt):
        return
    finally:
        conn.close()


def _per_group(scans: list[Scan]) -> list[Scan]:
    """The shards of each group of files as one scan summary, for merge_overlapping: their 4-tuples
    are disjoint, so the union of their heads and tails is the group's own."""
    out: dict[tuple[int, ...], Scan] = {}
    for scan in scans:
        key = tuple(scan.files)
        whole = out.get(key)
        if whole is None:
            out[key] = Scan(list(scan.files), [], scan.stats, [], [], None, None, dict(scan.heads), dict(scan.tails))
        else:
            whole.heads.update(scan.heads)
            whole.tails.update(scan.tails)
    return list(out.values())


def _rows(
    pairs: Iterator[tuple[Flow, Evidence]],
    shared: tuple[dict[Endpoint, ServerProfile], bool, str, int, dict[ServerKey, list[Seen]], str | None],
    ports: frozenset[int],
    trust: TrustSettings,
    names: list[str],
    details: bool,
    send: Callable[[list[Bundle]], None],
) -> tuple[CertSeen, dict[str, tuple[Order, int]]]:
    """Diagnose a unit's connections; their rows go to ``send`` in row order, ROW_CHUNK connections at
    a time, as they are built (a worker holds one chunk of rows, never all of them)."""
    servers, loaded, label, first_ns, seen, text = shared
    prepare = row_preparer(trust, loaded, label, first_ns, seen)
    formatter = RowWriter(text, io.StringIO()) if text is not None else None  # rows sent as their text
    builder = TableBuilder(names, details)
    bundles: list[Bundle] = []
    warnings: list[str] = []
    first_seen: dict[str, tuple[Order, int]] = {}

    def after(flow: Flow) -> None:
        key = order(flow)
        if len(builder.cert_seen) > len(first_seen):
            for sha in list(builder.cert_seen)[len(first_seen) :]:
                first_seen[sha] = (key, len(first_seen))  # in the connection's own order: leaf, then issuers
        hs, al, ev, ch = builder.drain_all()
        if formatter is not None:
            hs = [formatter.format(row) for row in hs]  # type: ignore[misc]
        bundles.append((key, hs, al, ev, ch, warnings[:]))
        warnings.clear()
        if len(bundles) >= ROW_CHUNK:
            send(bundles[:])
            bundles.clear()

    diagnose(pairs, servers, ports, builder, warnings, after, prepare)
    if bundles:
        send(bundles)
    return builder.cert_seen, first_seen


class Parallel:
    """The workers of one analysis, between the packet pass and the rows."""

    def __init__(self, conns: list[Connection], procs: list[Any], owner: list[int], scans: list[Scan]) -> None:
        self.conns, self.procs, self.owner, self.scans = conns, procs, owner, scans

    @classmethod
    def start(
        cls,
        files: Sequence[str],
        sizes: Sequence[int],
        ports: frozenset[int],
        log: KeyLog | None,
        trust: TrustSettings,
        jobs: int,
        progress: Callable[[int, int], None] | None,
        details: bool,
    ) -> Parallel | None:
        """Start the workers and run the packet pass over independent groups of files, each group split
        into shards by connection when there are fewer groups than workers. When groups turn out to
        share a connection they are joined and the pass runs again with the joined groups, until the
        groups are independent (the workers then hold them: returned); a single group is split
        between all the workers. None off Linux (no fork) or with one job: the caller reads the files
        in this process (scan.scan_files)."""
        groups = plan_groups(files)
        if sys.platform != "linux" or jobs < 2:
            return None
        serve_args = (list(files), ports, log, trust, details)  # what each worker's loop (_serve) is given
        _preload()
        while len(groups) > 1:
            per = jobs // len(groups)  # shards per group, so that no worker is left idle
            units = [(g, (k, per) if per > 1 else None, True) for g in groups for k in range(per if per > 1 else 1)]
            par = cls._scan(serve_args, units, sizes, jobs, progress)
            if any(s.had_secrets for s in par.scans):
                par.stop()  # secrets apply to the files after them: one flow table
                groups = [list(range(len(files)))]
                break
            joined = merge_overlapping(_per_group(par.scans))
            if joined is None:
                return par
            par.stop()  # a connection crosses groups: join them and read again
            groups = joined
        # One group (one capture, one rotated series, or files that share connections): every worker
        # reads all of it and keeps the connections of its own shard of 4-tuples. A connection's packets
        # all have its 4-tuple, so each shard holds whole connections and nothing is stitched between
        # them; what crosses connections (server profiles, chain verdicts) is merged as for groups.
        shards = [(groups[0], (k, jobs), False) for k in range(jobs)]
        return cls._scan(serve_args, shards, sizes, jobs, progress)

    @classmethod
    def _scan(
        cls,
        serve_args: tuple[Any, ...],
        units: Sequence[tuple[list[int], tuple[int, int] | None, bool]],
        sizes: Sequence[int],
        jobs: int,
        progress: Callable[[int, int], None] | None,
    ) -> Parallel:
        """Fork the workers, hand each its units (a group of files, or a shard of one: Engine.shard),
        and run round 1 (the packet pass)."""
        ctx = multiprocessing.get_context("fork")
        n = min(jobs, len(units))
        size = [sum(sizes[i] for i in group) for group, _shard, _summarise in units]
        # largest units first, each to the least loaded worker
        load = [0] * n
        owner = [0] * len(units)
        for g in sorted(range(len(units)), key=lambda g: -size[g]):
            w = load.index(min(load))
            owner[g] = w
            load[w] += size[g]
        conns: list[Connection] = []
        procs: list[Any] = []
        for _ in range(n):
            parent_end, child_end = ctx.Pipe()
            p = ctx.Process(target=_serve, args=(child_end, *serve_args), daemon=True)
            p.start()
            child_end.close()
            conns.append(parent_end)
            procs.append(p)
        par = cls(conns, procs, owner, [])
        total, done = sum(size), 0
        scans: dict[int, Scan] = {}
        try:
            messages = [(owner[g], ("scan", g, *unit)) for g, unit in enumerate(units)]
            for g, scan in par._round(messages):
                scans[g] = scan
                done += size[g]
                if progress:
                    progress(done, total)
        except BaseException:
            par.stop()
            raise
        par.scans = [scans[g] for g in range(len(units))]
        return par

    @contextlib.contextmanager
    def _sending(self, messages: list[tuple[int, tuple[Any, ...]]]) -> Iterator[None]:
        """Send (worker, message) pairs from a thread while the caller reads the answers: a worker
        blocked sending a large answer must never wait on a parent blocked sending it the next message
        (both pipes full)."""
        failure: list[BaseException] = []

        def send_all() -> None:
            try:
                for w, msg in messages:
                    self.conns[w].send(msg)
            except BaseException as exc:  # the reader reports the worker's own error first
                failure.append(exc)

        sender = threading.Thread(target=send_all, daemon=True)
        sender.start()
        try:
            yield
        finally:
            sender.join(timeout=5)
            if failure and not isinstance(failure[0], OSError):
                raise failure[0]

    def _round(self, messages: list[tuple[int, tuple[Any, ...]]]) -> list[tuple[int, Any]]:
        """Send (worker, message) pairs and gather the answers, as they come (no worker waits on another)."""
        out: list[tuple[int, Any]] = []
        with self._sending(messages):
            while len(out) < len(messages):
                for conn in wait(self.conns):
                    assert isinstance(conn, Connection)
                    out.append(self._receive(conn)[1:])
        return out

    def _receive(self, conn: Connection) -> tuple[str, int, Any]:
        try:
            status, g, payload = conn.recv()
        except EOFError:
            raise WorkerLost(
                "a worker process ended unexpectedly (killed, or out of memory?); try again with fewer --jobs"
            ) from None
        if status == "error":
            raise WorkerError(f"worker failed on files {self.scans[g].files if self.scans else g}: {payload}")
        return status, g, payload

    def _merged_rows(self, shared: Any, finals: dict[int, Any]) -> Iterator[Bundle]:
        """Round 3: every unit's rows, merged into row order as the workers send them (each unit's come
        in row order, ROW_CHUNK connections a message), so that the parent holds a chunk per unit, not
        the rows of the capture (more only where a worker owns several units: the later ones wait in
        memory while the parent reads the earlier). Each unit's last answer goes to ``finals``."""
        units = range(len(self.scans))
        pending: dict[int, deque[list[Bundle]]] = {g: deque() for g in units}

        def unit(g: int) -> Iterator[Bundle]:
            conn = self.conns[self.owner[g]]
            while True:
                while not pending[g] and g not in finals:
                    status, h, payload = self._receive(conn)
                    if status == "part":
                        pending[h].append(payload)
                    else:
                        finals[h] = payload
                if not pending[g]:
                    return
                yield from pending[g].popleft()

        # One message per worker, sent from this thread before any rows come back: every worker is
        # idle, reading, so no send can block on a full pipe. (Sent from a helper thread, one copy of
        # ``shared`` per unit, it crawled: each pipe-sized write waited for the GIL while this thread
        # was busy with the first rows, and a worker with a second unit sat idle for ~50 ms.)
        for w, conn in enumerate(self.conns):
            mine = [g for g in units if self.owner[g] == w]
            if mine:
                with contextlib.suppress(OSError):  # a lost worker: reading its answer says so (WorkerLost)
                    conn.send(("rows", -1, mine, shared))
        yield from heapq.merge(*(unit(g) for g in units), key=lambda b: b[0])

    def stop(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(("stop", -1))
            conn.close()
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()

    def finish(
        self,
        end: int,
        window: tuple[int, int],
        warnings: list[str],
        sink: Callable[[tuple[object, ...]], None] | None,
    ) -> tuple[dict[str, schema.Columns], str]:
        """Rounds 2 and 3, then the workers stop; returns the tables and the trust label. Warnings are
        added in the order a one-process run adds them. When ``sink`` is a RowWriter (the CLI writing
        csv/json/jsonl), the workers send each row as its text and the parent only writes it."""
        writer = sink if isinstance(sink, RowWriter) else None
        try:
            groups = range(len(self.scans))
            judged = dict(self._round([(self.owner[g], ("judge", g, end)) for g in groups]))
            agreed: list[tuple[Order, Endpoint, int, int]] = []
            seen: dict[ServerKey, list[Seen]] = {}
            label = CertStage().trust_label
            loaded = False
            firsts = []
            for g in groups:  # in file order, as one process would have met them
                g_agreed, g_seen, g_loaded, g_label, g_warnings, g_first = judged[g]
                agreed.extend(g_agreed)
                for key, items in g_seen.items():
                    seen.setdefault(key, []).extend(items)
                if g_loaded and not loaded:
                    loaded, label = True, g_label
                    warnings.extend(g_warnings)  # the trust store's own warnings, once
                if g_first is not None:
                    firsts.append(g_first)
            seen = in_row_order(seen)
            certificate_rotations(seen, warnings)
            text = writer.fmt if writer is not None else None
            shared = (profiles(agreed), loaded, label, min(firsts) if firsts else 0, seen, text)
            hs: Rows = []
            al: Rows = []
            ev: Rows = []
            ch: Rows = []
            finals: dict[int, Any] = {}
            for _key, b_hs, b_al, b_ev, b_ch, b_warnings in self._merged_rows(shared, finals):
                warnings.extend(b_warnings)
                if writer is not None:
                    for line in b_hs:
                        writer.write_line(line)  # type: ignore[arg-type]
                elif sink is not None:
                    for row in b_hs:
                        sink(row)
                else:
                    hs.extend(b_hs)
                al.extend(b_al)
                ev.extend(b_ev)
                ch.extend(b_ch)
            cert_seen: CertSeen = {}
            first_seen: dict[str, tuple[Order, int]] = {}
            problems: list[str] = []
            for g in groups:
                g_cert_seen, g_first_seen, g_problem = finals[g]
                if g_problem is not None and g_problem not in problems:
                    problems.append(g_problem)
                for sha, (der, first, last, count) in g_cert_seen.items():
                    old = cert_seen.get(sha)
                    cert_seen[sha] = (
                        (der, first, last, count)
                        if old is None
                        else (der, min(first, old[1]), max(last, old[2]), count + old[3])
                    )
                    first_seen[sha] = min(first_seen.get(sha, g_first_seen[sha]), g_first_seen[sha])
            warnings.extend(problems)  # a spill file that could not be written (api.py adds it last too)
            tables = TableBuilder.from_rows(hs, al, ev, ch)
            if cert_seen:
                ordered = {sha: cert_seen[sha] for sha in sorted(cert_seen, key=lambda s: first_seen[s])}
                tables["certificates"] = CertStage().certificates_table(ordered, window, warnings)
            else:
                tables["certificates"] = schema.empty(schema.CERTIFICATES)
            return tables, label

        finally:
            self.stop()


__all__ = ["Parallel", "WorkerError", "WorkerLost"]
