"""Evicting idle connections to the spill file (analyzer/spill.py) changes nothing a user sees."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import ROOT, SAMPLES, ZEEK_TRACES

from analyzer import analyze, spill
from analyzer.capture.reader import CaptureReader
from analyzer.scan import scan_group
from analyzer.tcp.flow import DEFAULT_TLS_PORTS, FLOW_STATE

ROOT_PEM = SAMPLES / "gen" / "pki" / "root.pem"
CASES = [(str(p), str(SAMPLES / "keylogs" / (p.name.split(".")[0] + ".keys"))) for p in sorted(SAMPLES.glob("*.pcap*"))]
CASES = [(p, k if os.path.exists(k) else None) for p, k in CASES]
CASES += [(str(p), None) for p in sorted(ZEEK_TRACES.glob("tls/*.pcap"))]


def _plain(path: str, keys: str | None) -> dict[str, Any]:
    r = analyze(path, ca_bundle=[str(ROOT_PEM)], keylog=keys)
    return json.loads(json.dumps({"tables": r.columns, "warnings": r.warnings}, default=str))  # type: ignore[no-any-return]


def _evict_everything(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Blocks of 7 frames, and after every block each connection idle for 1 ns leaves the table:
    the most eviction and taking back a capture can get."""
    counts = {"put": 0, "take": 0, "back": 0, "settled": 0}
    monkeypatch.setattr(spill, "EVICT_MIN", 0)
    monkeypatch.setattr(spill, "IDLE_MIN_NS", 0)
    blocks, put, take = CaptureReader.blocks, spill.FlowStore.put, spill.FlowStore.take
    survey_input = spill.FlowStore.survey_input

    def counted_survey_input(self: spill.FlowStore, i: int) -> Any:
        given = survey_input(self, i)
        counts["settled"] += given is not None
        return given

    def small_blocks(self: CaptureReader, block_size: int = 0, progress: Any = None) -> Any:
        return blocks(self, 7, progress)

    def counted_put(self: spill.FlowStore, flow: Any, findable: bool) -> None:
        counts["put"] += 1
        put(self, flow, findable)

    def counted_take(self: spill.FlowStore, key: tuple[int, ...]) -> Any:
        counts["take"] += 1
        flow = take(self, key)
        counts["back"] += flow is not None
        return flow

    monkeypatch.setattr(CaptureReader, "blocks", small_blocks)
    monkeypatch.setattr(spill.FlowStore, "put", counted_put)
    monkeypatch.setattr(spill.FlowStore, "take", counted_take)
    monkeypatch.setattr(spill.FlowStore, "survey_input", counted_survey_input)
    return counts


def _state(obj: object, depth: int = 0) -> object:
    """Plain nested data of an object graph (slots, dataclass fields, containers), for comparing."""
    if depth > 40 or obj is None or isinstance(obj, int | float | str | bytes | bool | frozenset):
        return obj
    if isinstance(obj, list | tuple):
        return [type(obj).__name__, *(_state(x, depth + 1) for x in obj)]
    if isinstance(obj, dict):
        return {repr(k): _state(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, bytearray | memoryview):
        return bytes(obj)
    if type(obj).__name__ == "KeyRing":
        return "KeyRing"
    names = [n for n in dir(obj) if not n.startswith("__") and not callable(getattr(obj, n, None))]
    return [type(obj).__name__, {n: _state(getattr(obj, n), depth + 1) for n in names}]


def test_flow_state_names_every_slot_but_the_shared_ones() -> None:
    tree = ast.parse((ROOT / "analyzer" / "tcp" / "flow.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Flow")
    slots = next(
        n.value for n in cls.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "__slots__"
    )
    names = {elt.value for elt in slots.elts}  # type: ignore[attr-defined]
    assert names == set(FLOW_STATE) | {"keys", "tls_ports"}
    # state() and restore() list the same attributes in FLOW_STATE's order
    for method in ("state", "restore"):
        fn = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == method)
        attrs = [a.attr for a in ast.walk(fn) if isinstance(a, ast.Attribute) and getattr(a.value, "id", "") == "self"]
        assert attrs == list(FLOW_STATE), method


def test_a_record_gives_back_the_same_connection() -> None:
    from analyzer.tls.keylog import parse_keylog

    kinds = set()
    cases = [("incident-mixed.pcapng", None), ("tls13-openssl-bulk.pcapng", "tls13-openssl-bulk.keys")]
    for name, keys in cases:
        log = parse_keylog((SAMPLES / "keylogs" / keys).read_bytes()) if keys else None
        scan = scan_group([str(SAMPLES / name)], [0], DEFAULT_TLS_PORTS, log)
        for flow in scan.flows:
            record = spill.encode(flow, flow.keys)  # type: ignore[arg-type]
            kinds.add(record[:1])
            back = spill.decode(record, flow.keys, DEFAULT_TLS_PORTS)  # type: ignore[arg-type]
            assert _state(back) == _state(flow)
            assert back.keys is flow.keys and (back.obs is None or back.obs.keys is flow.keys)
            assert b"KeyRing" not in record and (flow.obs is None or flow.obs.keys is flow.keys)
            if flow.obs is not None:  # the observer appends to the flow's own event list, as before
                assert (back.obs.events is back.events) == (flow.obs.events is flow.events)  # type: ignore[union-attr]
    # TCP-only connections, TLS ones as plain values, and decrypted ones (pickled) all present
    assert kinds == {spill.MARSHAL, spill.TLS, spill.PICKLE}


def test_observer_state_names_every_attribute_but_the_shared_ones() -> None:
    from analyzer.tls.observer import OBS_STATE

    tree = ast.parse((ROOT / "analyzer" / "tls" / "observer.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TlsObserver")

    def method(name: str) -> ast.FunctionDef:
        return next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == name)

    def self_attrs(node: ast.AST) -> list[str]:
        found = [a for a in ast.walk(node) if isinstance(a, ast.Attribute) and getattr(a.value, "id", "") == "self"]
        return [a.attr for a in sorted(found, key=lambda a: (a.lineno, a.col_offset))]

    init = {
        t.attr
        for n in ast.walk(method("__init__"))
        if isinstance(n, ast.AnnAssign | ast.Assign)
        for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
        if isinstance(t, ast.Attribute)
    }
    assert init == set(OBS_STATE) | {"keys", "decryptor"}  # the key ring is shared; a decryptor is pickled
    returned = next(n for n in ast.walk(method("state")) if isinstance(n, ast.Return))
    assert [self_attrs(e)[0] for e in returned.value.elts] == list(OBS_STATE)  # type: ignore[union-attr]
    unpacked = next(n for n in ast.walk(method("restore")) if isinstance(n, ast.Assign)).targets[0]
    names = [e.attr if isinstance(e, ast.Attribute) else e.id for e in unpacked.elts]  # type: ignore[attr-defined]
    assert names == list(OBS_STATE)


def test_evicting_every_idle_connection_gives_the_same_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sample (with its key log) and every Zeek TLS trace: tables and warnings identical."""
    plain = {path: _plain(path, keys) for path, keys in CASES}
    counts = _evict_everything(monkeypatch)
    rows = 0
    for path, keys in CASES:
        assert _plain(path, keys) == plain[path], f"{Path(path).name}: eviction changed the result"
        rows += len(plain[path]["tables"]["handshakes"]["conn_id"])
    assert rows > 400
    # the stores really were used: connections were evicted, packets brought some of them back, and
    # the survey took settled TLS connections from their short survey part
    assert counts["put"] > 1000 and counts["back"] > 30 and counts["settled"] > 100, counts


def _first_case_with_many_connections() -> tuple[str, str | None]:
    return str(SAMPLES / "workload-mixed.pcap"), None


def test_a_full_disk_keeps_the_records_in_memory_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    path, keys = _first_case_with_many_connections()
    plain = _plain(path, keys)
    counts = _evict_everything(monkeypatch)
    monkeypatch.setattr(spill, "WRITE_BUFFER", 4096)
    writes = {"n": 0}

    def fills_up(fd: int, data: Any) -> int:
        writes["n"] += 1
        if writes["n"] > 3:
            raise OSError(28, "No space left on device")
        return os.write(fd, data[: len(data) // 2])  # partial writes too

    monkeypatch.setattr(spill, "_write", fills_up)
    got = _plain(path, keys)
    assert writes["n"] > 3 and counts["put"] > 100
    note = "the temporary file of idle connections could not be written (No space left on device)"
    assert [w for w in got["warnings"] if w not in plain["warnings"]] == [note + "; they stayed in memory from then on"]
    assert got["tables"] == plain["tables"]


def test_no_temporary_directory_means_no_eviction_and_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    path, keys = _first_case_with_many_connections()
    plain = _plain(path, keys)
    counts = _evict_everything(monkeypatch)

    def refused(*args: object, **kw: object) -> None:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(spill.tempfile, "TemporaryFile", refused)
    got = _plain(path, keys)
    assert counts["put"] == 0
    extra = [w for w in got["warnings"] if w not in plain["warnings"]]
    assert len(extra) == 1 and "cannot create a temporary file for idle connections (Permission denied)" in extra[0]
    assert got["tables"] == plain["tables"]


def test_workers_that_spill_give_the_tables_of_one_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """--jobs workers evict too (forked, they inherit the patched thresholds); the rows they send back,
    and the 4-tuple summaries that decide whether files must be joined, are unchanged by it."""
    from test_parallel import _independent_samples, _same, _split_pcap

    import analyzer.parallel as parallel

    files = _independent_samples()
    root = SAMPLES / "gen" / "pki" / "root.pem"
    seq = analyze(files, ca_bundle=[root])
    cut_a, cut_b = tmp_path / "morning.pcap", tmp_path / "evening.pcap"
    _split_pcap(SAMPLES / "cert-expired.pcap", cut_a, cut_b, at=9)  # a connection crosses the two files
    whole = analyze(SAMPLES / "cert-expired.pcap")
    one = SAMPLES / "workload-mixed.pcap"  # a single capture: the workers split its connections
    seq_one = analyze(one, ca_bundle=[root])
    _evict_everything(monkeypatch)
    monkeypatch.setattr(spill, "IDLE_MIN_NS", -1)  # even the latest connection leaves after each block
    log = tmp_path / "puts"
    put = spill.FlowStore.put

    def logged_put(self: spill.FlowStore, flow: Any, findable: bool) -> None:  # counted across processes
        with open(log, "ab") as fh:
            fh.write(b".")
        put(self, flow, findable)

    monkeypatch.setattr(spill.FlowStore, "put", logged_put)
    used = []
    finish = parallel.Parallel.finish
    monkeypatch.setattr(parallel.Parallel, "finish", lambda self, *a: used.append(1) or finish(self, *a))
    par = analyze(files, ca_bundle=[root], jobs=2)
    assert used == [1] and log.stat().st_size > 500  # the worker path, and its workers evicted
    _same(seq, par)
    stitched = analyze([cut_a, cut_b], jobs=2)
    cols = ["conn_id", "outcome", "failure_cause", "alert"]
    pd.testing.assert_frame_equal(whole.handshakes[cols], stitched.handshakes[cols])
    before = log.stat().st_size
    _same(seq_one, analyze(one, ca_bundle=[root], jobs=2))
    assert log.stat().st_size - before > 500  # the shards evicted too


def test_without_pread_the_records_are_read_by_seeking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows has no os.pread: the fallback must read the same records and keep appending at the end."""
    path = str(SAMPLES / "workload-mixed.pcap")
    plain = _plain(path, None)
    _evict_everything(monkeypatch)
    monkeypatch.setattr(spill, "WRITE_BUFFER", 4096)  # written (and read back) in small pieces
    monkeypatch.delattr(os, "pread")
    assert _plain(path, None) == plain


@pytest.mark.parametrize(
    ("path", "name"),
    [("tcp/reassembly.py", "Reassembler"), ("tls/records.py", "RecordLayer"), ("tls/records.py", "HandshakeAssembler")],
)
def test_slot_classes_state_names_every_slot_in_order(path: str, name: str) -> None:
    """state() and restore() of the classes a TLS record holds list every slot, in __slots__ order."""
    tree = ast.parse((ROOT / "analyzer" / path).read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)
    slots = next(
        n.value for n in cls.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "__slots__"
    )
    names = [elt.value for elt in slots.elts]  # type: ignore[attr-defined]

    def listed(method: str) -> list[str]:
        fn = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == method)
        found = [a for a in ast.walk(fn) if isinstance(a, ast.Attribute) and getattr(a.value, "id", "") == "self"]
        return [a.attr for a in sorted(found, key=lambda a: (a.lineno, a.col_offset))]

    assert listed("state") == names
    restore = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "restore")
    unpacked = next(n for n in ast.walk(restore) if isinstance(n, ast.Assign)).targets[0]
    targets = [e.attr if isinstance(e, ast.Attribute) else e.id for e in unpacked.elts]  # type: ignore[attr-defined]
    # in state()'s order; a buffer goes through a local (buf) that restore() turns back into a bytearray
    assert [t.lstrip("_") for t in targets] == [n.lstrip("_") for n in names]
