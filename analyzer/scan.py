"""Capture files to unfinished flows: the packet pass, per group of files, in this process or in worker processes.

A *group* is a run of files whose connections may continue from one file into the next (a rotated
series from ``tcpdump -C/-G``): its files go through one flow table in order, exactly as a sequential
run does. Groups share no flow table, so they can be scanned in parallel; everything that looks
across connections (server profiles, certificate verdicts, diagnosis) runs afterwards on the merged
flows, in the parent, so ``--jobs N`` gives the same rows as a sequential run.

Whether two groups really are independent is not guessed: each scan reports the 4-tuples it saw,
and groups that share one are merged and scanned again as one group (correct first, fast when the
files are independent, which is the case parallelism is for). Files named like one rotated series
(same directory, same name once the digits are removed) are grouped from the start so that a
series is not read twice. A pcapng Decryption Secrets Block applies to the files after it in a
sequential run, so when one turns up in a multi-group run the whole run is scanned as one group.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from analyzer.capture.reader import CaptureReader, DecryptionSecrets
from analyzer.engine import Engine
from analyzer.packets import LINKTYPE_NAMES, SkimStats, release_buffer
from analyzer.tcp.flow import Flow

if TYPE_CHECKING:
    from analyzer.spill import FlowStore
    from analyzer.tls.keylog import KeyLog

Progress = Callable[[int, int], None]


@dataclass(slots=True)
class Scan:
    """What the packet pass of one group leaves: its flows (not yet finished) and what it noticed."""

    files: list[int]  # indexes into the analysis' file list
    flows: list[Flow]
    stats: SkimStats
    errors: list[tuple[int, int, str]]  # (file index, frame, message): merged in that order
    warnings: list[tuple[int, str]]
    first_ts: int | None
    last_ts: int | None
    # per 4-tuple: how its first connection here began (a bare SYN? its sequence number) and how its
    # last one was left (SYN sequence number, closed or carried data): enough to tell, as the flow
    # table of a sequential run would, whether the next group continues it or starts a new one
    heads: dict[tuple[int, ...], tuple[bool, int | None]] = field(default_factory=dict)
    tails: dict[tuple[int, ...], tuple[int | None, bool]] = field(default_factory=dict)
    had_secrets: bool = False
    store: FlowStore | None = None  # connections evicted from the flow table (analyzer/spill.py)


def _add_secrets(engine: Engine, blocks: Sequence[DecryptionSecrets], warnings: list[str]) -> None:
    from analyzer.tls.keylog import keylog_from_dsb, merge

    for dsb in blocks:
        log = keylog_from_dsb(dsb.secrets_type, dsb.data)
        if log is None:
            warnings.append(f"decryption secrets block of type 0x{dsb.secrets_type:08x} is not a TLS key log; ignored")
            continue
        engine.keys.log = merge(engine.keys.log, log) if engine.keys.log is not None else log


def scan_group(
    paths: Sequence[str],
    indexes: Sequence[int],
    ports: frozenset[int],
    log: KeyLog | None,
    progress: Progress | None = None,
    done: int = 0,
    total: int = 0,
    summarise: bool = False,
    spill: bool | None = None,
    shard: tuple[int, int] | None = None,
) -> Scan:
    """The packet pass over one group of files, in order, through one flow table; ``summarise``
    fills ``heads``/``tails`` (needed only to decide whether groups must be joined). ``spill``: idle
    connections may go to a temporary file (``Scan.store``, analyzer/spill.py); by default only when
    not summarised, since a summarised scan sent to another process must carry all its flows (a
    --jobs worker that keeps its connections asks for it). ``shard`` (k, n): only the connections
    whose 4-tuple hash is k modulo n (Engine.shard); what concerns the files rather than connections
    (file warnings, the counts of skipped frames) is reported by shard 0 alone."""
    engine = Engine(ports, spill=not summarise if spill is None else spill, shard=shard)
    lead = shard is None or shard[0] == 0
    if summarise:
        engine.ends = ({}, {})
    engine.keys.log = log
    warnings: list[tuple[int, str]] = []
    errors: list[tuple[int, int, str]] = []
    first_ts: int | None = None
    last_ts: int | None = None
    had_secrets = False
    for path, i in zip(paths, indexes, strict=True):
        reader = CaptureReader(path)
        engine.file_index = i
        base = done
        cb = (lambda n, b=base: progress(b + n, total)) if progress else None
        secrets_seen = 0
        notes: list[str] = []
        for blk in reader.blocks(progress=cb):
            if len(reader.info.secrets) > secrets_seen:  # a pcapng Decryption Secrets Block was read
                _add_secrets(engine, reader.info.secrets[secrets_seen:], notes)
                secrets_seen = len(reader.info.secrets)
                had_secrets = True
            engine.process(blk)
        done += reader.info.size_bytes
        info = reader.info
        notes.extend(info.warnings)
        notes.extend(
            f"{os.path.basename(info.path)}: link type {lt} is not supported; its frames were skipped"
            for lt in info.linktypes
            if lt not in LINKTYPE_NAMES
        )
        if lead:
            warnings.extend((i, n) for n in notes)
        errors.extend((i, frame, e) for frame, e in engine.errors)
        engine.errors.clear()
        if info.first_ts_ns is not None:
            first_ts = info.first_ts_ns if first_ts is None else min(first_ts, info.first_ts_ns)
        if info.last_ts_ns is not None:
            last_ts = info.last_ts_ns if last_ts is None else max(last_ts, info.last_ts_ns)
        reader.close()
    release_buffer()  # the header pass is over: its buffer need not stay through the survey and the rows
    flows = engine.retired + list(engine.flows.values())
    heads, tails = engine.ends if engine.ends is not None else ({}, {})  # those of spilled connections
    for f in sorted(flows, key=lambda f: (f.file_index, f.first_frame)) if summarise else ():
        if f.key not in heads:
            heads[f.key] = f.head()
        tails[f.key] = f.tail()
    return Scan(
        list(indexes),
        flows,
        engine.stats if lead else SkimStats(),
        errors,
        warnings,
        first_ts,
        last_ts,
        heads,
        tails,
        had_secrets,
        engine.store,
    )


def merged_errors(scans: Sequence[Scan]) -> list[str]:
    """The scans' errors by file and frame, as one pass over the files meets them; a message about no
    particular frame (frame -1) that several shards of one capture report is given once."""
    out: list[str] = []
    general: set[str] = set()
    for _i, frame, message in sorted((e for s in scans for e in s.errors), key=lambda e: e[:2]):
        if frame < 0:
            if message in general:
                continue
            general.add(message)
        out.append(message)
    return out


def _starts_anew(tail: tuple[int | None, bool], head: tuple[bool, int | None]) -> bool:
    """Would a sequential run start a new connection here (Engine._is_new_connection), not continue?"""
    bare_syn, seq = head
    if not bare_syn:
        return False
    syn_seq, used = tail
    return seq != syn_seq if syn_seq is not None else used


def _stem(path: str) -> tuple[str, str]:
    return os.path.dirname(os.path.abspath(path)), re.sub(r"\d{4,}", "#", re.sub(r"\d+$", "", os.path.basename(path)))


def plan_groups(files: Sequence[str]) -> list[list[int]]:
    """Consecutive files that look like one rotated series: same directory, same name but for a number
    appended after it (tcpdump -C/-W: x.pcap, x.pcap1, x.pcap01) or runs of 4+ digits (-G strftime
    times, editcap -c). Only a guess to avoid reading a series twice: shared 4-tuples decide."""
    groups: list[list[int]] = []
    for i, f in enumerate(files):
        if groups and _stem(files[groups[-1][-1]]) == _stem(f):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def merge_overlapping(scans: list[Scan]) -> list[list[int]] | None:
    """Groups to scan again when a connection may cross from one into a later one; None if none can."""
    latest: dict[tuple[int, ...], tuple[int, tuple[int | None, bool]]] = {}
    parent = list(range(len(scans)))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    joined = False
    for g in sorted(range(len(scans)), key=lambda g: scans[g].files[0]):
        scan = scans[g]
        for key, head in scan.heads.items():
            seen = latest.get(key)
            if seen is not None and not _starts_anew(seen[1], head) and root(seen[0]) != root(g):
                parent[root(g)] = root(seen[0])
                joined = True
        for key, tail in scan.tails.items():
            latest[key] = (g, tail)
    if not joined:
        return None
    merged: dict[int, list[int]] = {}
    for g, scan in enumerate(scans):
        merged.setdefault(root(g), []).extend(scan.files)
    return sorted(sorted(m) for m in merged.values())


def scan_files(
    files: Sequence[str],
    sizes: Sequence[int],
    ports: frozenset[int],
    log: KeyLog | None,
    jobs: int = 1,
    progress: Progress | None = None,
) -> list[Scan]:
    """Every file scanned; with ``jobs > 1`` independent groups run in worker processes."""
    total = sum(sizes)
    if jobs <= 1 or len(files) <= 1:
        return [scan_group(files, range(len(files)), ports, log, progress, 0, total)]
    groups = plan_groups(files)
    if len(groups) == 1:
        return [scan_group(files, groups[0], ports, log, progress, 0, total)]
    from concurrent.futures import ProcessPoolExecutor  # imported only when used (a few MB of modules)

    done_scans: dict[tuple[int, ...], Scan] = {}  # a group that is not merged is not scanned twice
    with ProcessPoolExecutor(max_workers=min(jobs, len(groups))) as pool:
        while True:
            todo = [tuple(g) for g in groups if tuple(g) not in done_scans]
            # largest groups first, so that the longest job is not the last one started
            todo.sort(key=lambda g: -sum(sizes[i] for i in g))
            futures = {
                g: pool.submit(scan_group, [files[i] for i in g], list(g), ports, log, summarise=True) for g in todo
            }
            done = sum(sizes[i] for g in groups if tuple(g) in done_scans for i in g)
            for g in todo:
                done_scans[g] = futures[g].result()
                done += sum(sizes[i] for i in g)
                if progress:
                    progress(done, total)
            scans = [done_scans[tuple(g)] for g in groups]
            if any(s.had_secrets for s in scans):
                return [scan_group(files, range(len(files)), ports, log, progress, 0, total)]
            regroup = merge_overlapping(scans)
            if regroup is None:
                return scans
            groups = regroup
            if len(groups) == 1:
                return [scan_group(files, groups[0], ports, log, progress, 0, total)]


# what a capture file starts with: pcap (both byte orders, us/ns), pcapng, gzip, zstd; a directory is
# filtered by content, not by name, because tcpdump -C names its files NAME, NAME1, NAME2, ...
CAPTURE_MAGIC = (
    b"\xd4\xc3\xb2\xa1",
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",
    b"\xa1\xb2\x3c\x4d",
    b"\x0a\x0d\x0d\x0a",
    b"\x1f\x8b",
    b"\x28\xb5\x2f\xfd",
)


def _looks_like_capture(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head.startswith(CAPTURE_MAGIC)


def _natural(path: str) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


def expand_captures(args: Sequence[str]) -> tuple[list[str], str | None]:
    """Command-line CAPTUREs to files: a directory gives the capture files in it, a glob its matches,
    both in natural order (NAME, NAME1, ..., NAME10; -G timestamps sort as time). Error: a message."""
    import glob

    out: list[str] = []
    for arg in args:
        if os.path.isdir(arg):
            names = [
                os.path.join(arg, n)
                for n in os.listdir(arg)
                if os.path.isfile(os.path.join(arg, n)) and _looks_like_capture(os.path.join(arg, n))
            ]
            if not names:
                return out, f"{arg}: no capture files in this directory"
            out.extend(sorted(names, key=_natural))
        elif os.path.exists(arg):
            out.append(arg)
        elif glob.has_magic(arg):
            matches = [m for m in glob.glob(arg) if os.path.isfile(m)]
            if not matches:
                return out, f"{arg}: no file matches"
            out.extend(sorted(matches, key=_natural))
        else:
            return out, f"{arg}: no such file"
    return out, None
