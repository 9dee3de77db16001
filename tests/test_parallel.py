"""--jobs: worker processes give the same tables as one sequential pass, including across rotated files."""

from __future__ import annotations

import pathlib
import struct

import pandas as pd
import pytest

from analyzer import analyze
from analyzer.cli import main
from analyzer.scan import expand_captures, plan_groups, scan_files, scan_group
from analyzer.tcp.flow import DEFAULT_TLS_PORTS

SAMPLES = pathlib.Path(__file__).resolve().parent.parent / "samples"
TABLES = ("handshakes", "alerts", "events", "certificates", "chains")


def _same(a: object, b: object) -> None:
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), obj=name)
    assert a.warnings == b.warnings  # type: ignore[attr-defined]
    assert a.packets == b.packets  # type: ignore[attr-defined]


def test_every_sample_in_two_processes_equals_one_pass() -> None:
    files = sorted(str(p) for p in SAMPLES.glob("*.pcap*") if "dsb" not in p.name)
    assert len(files) > 50
    # loopback captures reuse 4-tuples, so some files are joined and the rest run on their own
    scans = scan_files(files, [1] * len(files), DEFAULT_TLS_PORTS, None, jobs=2)
    assert len(scans) > 10 and any(len(s.files) > 1 for s in scans)
    seq = analyze(files)
    par = analyze(files, jobs=2)
    assert len(seq.handshakes) > 400
    _same(seq, par)


def test_a_decryption_secrets_block_reaches_later_files_as_in_one_pass() -> None:
    files = [str(SAMPLES / "python-ssl-ok-dsb.pcapng"), str(SAMPLES / "cert-expired.pcap")]
    _same(analyze(files), analyze(files, jobs=2))


def _split_pcap(src: pathlib.Path, first: pathlib.Path, second: pathlib.Path, at: int) -> None:
    """A tcpdump -C style cut: records [0, at) and [at, end) of a classic little-endian pcap."""
    raw = src.read_bytes()
    head, off, records = raw[:24], 24, []
    assert struct.unpack("<I", head[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D)
    while off + 16 <= len(raw):
        incl = struct.unpack("<I", raw[off + 8 : off + 12])[0]
        records.append(raw[off : off + 16 + incl])
        off += 16 + incl
    assert 0 < at < len(records)
    first.write_bytes(head + b"".join(records[:at]))
    second.write_bytes(head + b"".join(records[at:]))


def test_a_connection_cut_by_file_rotation_is_stitched(tmp_path: pathlib.Path) -> None:
    src = SAMPLES / "cert-expired.pcap"
    whole = analyze(src)
    # names that do not look like one series, so only the shared 4-tuples can join them
    a, b = tmp_path / "morning.pcap", tmp_path / "evening.pcap"
    _split_pcap(src, a, b, at=9)  # inside the first connection's handshake
    seq = analyze([a, b])
    par = analyze([a, b], jobs=2)
    _same(seq, par)
    cols = ["conn_id", "outcome", "failure_cause", "server_cert_subject", "alert"]
    cols = [c for c in cols if c in whole.handshakes.columns]
    pd.testing.assert_frame_equal(whole.handshakes[cols], par.handshakes[cols])
    assert (par.handshakes["failure_cause"] == "cert_expired").sum() >= 6


def test_cli_directory_with_jobs_equals_sequential(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("cert-expired.pcap", "cert-wronghost.pcap", "protocol-version.pcap"):
        src = SAMPLES / name
        if src.exists():
            (tmp_path / name).write_bytes(src.read_bytes())
    assert main(["analyze", str(tmp_path), "--format", "csv"]) == 0
    one = capsys.readouterr().out
    assert main(["analyze", str(tmp_path / "*.pcap"), "--format", "csv", "--jobs", "2"]) == 0
    two = capsys.readouterr().out
    assert one == two and one.count("\n") > 10


def test_expansion_order_and_rotated_series(tmp_path: pathlib.Path) -> None:
    for n in ("cap", "cap1", "cap2", "cap10", "notes.txt"):
        (tmp_path / n).write_bytes(b"notes" if n.endswith(".txt") else (SAMPLES / "cert-expired.pcap").read_bytes())
    files, problem = expand_captures([str(tmp_path)])
    assert problem is None
    assert [pathlib.Path(f).name for f in files] == ["cap", "cap1", "cap2", "cap10"]
    assert plan_groups(files) == [[0, 1, 2, 3]]
    assert plan_groups(["/x/site1.pcap", "/x/site2.pcap"]) == [[0], [1]]
    assert plan_groups(["/x/a.pcap", "/x/a.pcap01", "/x/a-20261127-1400.pcap", "/x/a-20261127-1500.pcap"]) == [
        [0, 1],
        [2, 3],
    ]
    assert expand_captures([str(tmp_path / "*.nothing")])[1] is not None


def _reuse_ports_later(packets: list[tuple[int, bytes]], shift_ns: int, seq_shift: int) -> list[tuple[int, bytes]]:
    """The same conversations an hour later with other sequence numbers: the 4-tuples come back (port
    reuse), but every connection opens with a fresh SYN."""
    out = []
    for ts, frame in packets:
        b = bytearray(frame)
        if b[12:14] == b"\x08\x00" and b[23] == 6:
            t = 14 + (b[14] & 0x0F) * 4
            for off in (t + 4, t + 8):
                v = (int.from_bytes(b[off : off + 4], "big") + seq_shift) & 0xFFFFFFFF
                b[off : off + 4] = v.to_bytes(4, "big")
        out.append((ts + shift_ns, bytes(b)))
    return out


def test_reused_four_tuples_with_fresh_syns_stay_in_separate_groups(tmp_path: pathlib.Path) -> None:
    from forge import pcap, read_pcap

    packets = read_pcap(str(SAMPLES / "cert-expired.pcap"))
    a, b = tmp_path / "before.pcap", tmp_path / "after.pcap"
    a.write_bytes(pcap(packets))
    b.write_bytes(pcap(_reuse_ports_later(packets, 3600 * 10**9, 0x10000000)))
    scans = scan_files([str(a), str(b)], [1, 1], DEFAULT_TLS_PORTS, None, jobs=2)
    assert [s.files for s in scans] == [[0], [1]]  # no connection crosses: read in parallel
    seq, par = analyze([a, b]), analyze([a, b], jobs=2)
    _same(seq, par)
    assert len(par.handshakes) == 2 * len(analyze(a).handshakes)
    # and the same file twice is one connection seen twice (same SYN): the groups are joined
    c = tmp_path / "again.pcap"
    c.write_bytes(a.read_bytes())
    assert len(scan_files([str(a), str(c)], [1, 1], DEFAULT_TLS_PORTS, None, jobs=2)) == 1
    _same(analyze([a, c]), analyze([a, c], jobs=2))


def test_key_logs_decrypt_the_same_in_worker_processes() -> None:
    """Decryption state crosses the process boundary (AEAD objects are rebuilt from their keys)."""
    names = ("cert-expired", "cert-wronghost", "cert-revoked", "cert-untrusted-root")
    files = [str(SAMPLES / f"{n}.pcap") for n in names]
    keys = [str(SAMPLES / "keylogs" / f"{n}.keys") for n in names]
    root = SAMPLES / "gen" / "pki" / "root.pem"
    scans = scan_files(files, [1] * len(files), DEFAULT_TLS_PORTS, None, jobs=2)
    assert len(scans) > 1  # really in workers
    seq = analyze(files, keylog=keys, ca_bundle=[root])
    par = analyze(files, keylog=keys, ca_bundle=[root], jobs=2)
    _same(seq, par)
    decrypted = par.handshakes[par.handshakes.keylog_status == "decrypted"]
    assert len(decrypted) > 10 and (decrypted.version == "TLS 1.3").any()


def _independent_samples() -> list[str]:
    """Samples no connection of which continues into another file (so --jobs keeps them apart)."""
    from analyzer.scan import merge_overlapping, scan_group

    files = sorted(str(p) for p in SAMPLES.glob("*.pcap*") if "dsb" not in p.name)
    scans = [scan_group([f], [i], DEFAULT_TLS_PORTS, None, summarise=True) for i, f in enumerate(files)]
    joined = merge_overlapping(scans) or []
    drop = {i for group in joined if len(group) > 1 for i in group}
    return [f for i, f in enumerate(files) if i not in drop]


def test_workers_diagnose_their_own_connections_and_rows_come_back_in_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    """The three-round path (analyzer/parallel.py): connections never leave their worker, yet the
    tables, warnings and trust label equal one pass, with key logs, a CA bundle, certificate
    verdicts lent between connections of different files, and the streamed CSV of the CLI."""
    import analyzer.parallel as parallel

    files = _independent_samples()
    assert len(files) > 20
    names = [pathlib.Path(f).name.split(".")[0] for f in files]
    keys = [str(k) for k in (SAMPLES / "keylogs" / f"{n}.keys" for n in names) if k.exists()]
    root = SAMPLES / "gen" / "pki" / "root.pem"
    used = []
    finish = parallel.Parallel.finish
    monkeypatch.setattr(parallel.Parallel, "finish", lambda self, *a: used.append(1) or finish(self, *a))
    seq = analyze(files, keylog=keys, ca_bundle=[root])
    par = analyze(files, keylog=keys, ca_bundle=[root], jobs=2)
    assert used == [1]  # really the worker path, not the fallback
    _same(seq, par)
    assert seq.trust == par.trust
    assert len(par.handshakes) > 200 and len(par.certificates) > 5
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    assert main(["analyze", *files, "--ca-bundle", str(root), "--format", "csv", "-o", str(one)]) == 0
    assert main(["analyze", *files, "--ca-bundle", str(root), "--format", "csv", "-o", str(two), "-j", "2"]) == 0
    assert one.read_bytes() == two.read_bytes()


def test_a_failing_worker_stops_the_analysis_with_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import analyzer.parallel as parallel

    files = _independent_samples()[:6]

    def broken(*args: object, **kw: object) -> None:
        raise ValueError("injected")

    monkeypatch.setattr(parallel, "survey", broken)  # the workers are forked: they inherit it
    with pytest.raises(parallel.WorkerError, match="injected"):
        analyze(files, jobs=2)


def test_shards_of_one_capture_partition_its_connections() -> None:
    """Engine.shard: each connection (4-tuple and first frame) is in exactly one shard, whole."""
    path = SAMPLES / "workload-mixed.pcap"
    whole = scan_group([str(path)], [0], DEFAULT_TLS_PORTS, None, spill=False)
    parts = [scan_group([str(path)], [0], DEFAULT_TLS_PORTS, None, spill=False, shard=(k, 3)) for k in range(3)]
    ids = [{(f.key, f.first_frame, sum(f.pkts)) for f in p.flows} for p in parts]
    assert all(len(i) > 100 for i in ids)
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert ids[0] | ids[1] | ids[2] == {(f.key, f.first_frame, sum(f.pkts)) for f in whole.flows}
    # what concerns the file rather than connections is counted by shard 0 alone
    assert parts[0].stats.frames == whole.stats.frames and parts[1].stats.frames == 0


def test_one_capture_split_between_workers_equals_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """--jobs on a single capture: every worker reads it and keeps its shard of the connections; every
    sample, with its key log and the CA bundle, gives the tables and warnings of one pass."""
    import analyzer.parallel as parallel

    root = SAMPLES / "gen" / "pki" / "root.pem"
    cases = [(p, SAMPLES / "keylogs" / (p.name.split(".")[0] + ".keys")) for p in sorted(SAMPLES.glob("*.pcap*"))]
    used = []
    finish = parallel.Parallel.finish
    monkeypatch.setattr(parallel.Parallel, "finish", lambda self, *a: used.append(1) or finish(self, *a))
    rows = 0
    for path, keys in cases:
        log = keys if keys.exists() else None
        seq = analyze(path, ca_bundle=[root], keylog=log)
        par = analyze(path, ca_bundle=[root], keylog=log, jobs=2)
        _same(seq, par)
        rows += len(par.handshakes)
    assert len(used) == len(cases) > 50 and rows > 400  # really the worker path each time


def test_a_damaged_capture_split_between_workers_warns_once(tmp_path: pathlib.Path) -> None:
    """A file's own warnings (here: cut off inside a record) come from one shard, not from each."""
    data = (SAMPLES / "workload-mixed.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) - 7])
    seq, par = analyze(cut), analyze(cut, jobs=3)
    _same(seq, par)
    assert len([w for w in par.warnings if "truncated" in w]) == 1, par.warnings


def test_cli_one_capture_with_jobs_writes_the_same_csv(tmp_path: pathlib.Path) -> None:
    path = str(SAMPLES / "workload-mixed.pcap")
    root = str(SAMPLES / "gen" / "pki" / "root.pem")
    one, three = tmp_path / "one.csv", tmp_path / "three.csv"
    assert main(["analyze", path, "--ca-bundle", root, "--format", "csv", "-o", str(one)]) == 0
    assert main(["analyze", path, "--ca-bundle", root, "--format", "csv", "-o", str(three), "--jobs", "3"]) == 0
    assert one.read_bytes() == three.read_bytes() and one.read_text().count("\n") > 800


def test_errors_of_shards_merge_in_frame_order() -> None:
    from analyzer.packets import SkimStats
    from analyzer.scan import Scan, merged_errors

    def scan(errors: list[tuple[int, int, str]]) -> Scan:
        return Scan([0], [], SkimStats(), errors, [], None, None)

    general = "cannot create a temporary file for idle connections (Permission denied); all connections stay in memory"
    a = scan([(0, -1, general), (0, 7, "frame 7: a"), (1, 3, "frame 3: c")])
    b = scan([(0, -1, general), (0, 5, "frame 5: b"), (1, 9, "frame 9: d")])
    assert merged_errors([a, b]) == [general, "frame 5: b", "frame 7: a", "frame 3: c", "frame 9: d"]


def test_rows_stream_back_in_small_chunks_and_merge_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Round 3 sends each unit's rows a chunk at a time and the parent merges the units' streams: with
    chunks of 5 connections (many messages per unit, workers owning several units, shards of one
    capture) the tables are still those of one pass."""
    import analyzer.parallel as parallel

    monkeypatch.setattr(parallel, "ROW_CHUNK", 5)  # the workers are forked: they inherit it
    files = _independent_samples()
    one = SAMPLES / "workload-mixed.pcap"
    _same(analyze(files), analyze(files, jobs=2))
    _same(analyze(one), analyze(one, jobs=3))


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_cli_streamed_formats_with_jobs_are_byte_identical(tmp_path: pathlib.Path, fmt: str) -> None:
    """With --jobs the workers format their rows (RowWriter.format) and the parent only writes the
    text: csv, json (its separators) and jsonl come out as one process writes them."""
    files = [str(SAMPLES / "workload-mixed.pcap"), str(SAMPLES / "incident-mixed.pcapng")]
    one, two = tmp_path / f"one.{fmt}", tmp_path / f"two.{fmt}"
    assert main(["analyze", *files, "--format", fmt, "-o", str(one)]) == 0
    assert main(["analyze", *files, "--format", fmt, "-o", str(two), "--jobs", "2"]) == 0
    assert one.read_bytes() == two.read_bytes() and len(one.read_bytes()) > 100_000


def test_fewer_files_than_workers_are_split_into_shards(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    """Two independent files and four workers: each file is read by two workers, each keeping half of
    its connections; and a connection cut between two files is still found, joined and stitched."""
    import analyzer.parallel as parallel

    seen_units: list[list[object]] = []
    scan = parallel.Parallel._scan.__func__  # type: ignore[attr-defined]

    def recorded(cls: type, serve_args: object, units: list[object], *rest: object) -> object:
        seen_units.append(list(units))
        return scan(cls, serve_args, units, *rest)

    monkeypatch.setattr(parallel.Parallel, "_scan", classmethod(recorded))
    files = [str(SAMPLES / "workload-mixed.pcap"), str(SAMPLES / "incident-mixed.pcapng")]
    assert len(plan_groups(files)) == 2
    _same(analyze(files), analyze(files, jobs=4))
    assert [u[1] for u in seen_units[0]] == [(0, 2), (1, 2), (0, 2), (1, 2)]  # two shards per file
    cut_a, cut_b = tmp_path / "morning.pcap", tmp_path / "evening.pcap"
    _split_pcap(SAMPLES / "cert-expired.pcap", cut_a, cut_b, at=9)
    whole = analyze(SAMPLES / "cert-expired.pcap")
    seen_units.clear()
    stitched = analyze([cut_a, cut_b], jobs=4)
    assert len(seen_units) == 2 and len(seen_units[1]) == 4  # sharded per file, then joined into one group
    cols = ["conn_id", "outcome", "failure_cause", "alert"]
    pd.testing.assert_frame_equal(whole.handshakes[cols], stitched.handshakes[cols])


def test_cli_says_plainly_when_a_worker_is_killed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker that dies without a word (the out-of-memory killer) ends the run with one line that
    says so, exit status 1, no partial output file and no worker left behind."""
    import multiprocessing
    import os

    import analyzer.parallel as parallel

    def killed(*args: object, **kw: object) -> None:
        os._exit(137)  # what SIGKILL looks like from outside: no exception, no message

    monkeypatch.setattr(parallel, "scan_group", killed)  # the workers are forked: they inherit it
    out = tmp_path / "rows.csv"
    code = main(["analyze", str(SAMPLES / "workload-mixed.pcap"), "--jobs", "2", "--format", "csv", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "a worker process ended unexpectedly (killed, or out of memory?)" in err
    assert "internal error" not in err and not out.exists()
    assert not multiprocessing.active_children()
