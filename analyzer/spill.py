"""Connections out of memory: idle flows evicted from the flow table to a temporary file, taken back
when a packet for them turns up, and read back in row order at the end.

Why: a capture's connections are diagnosed only once the whole capture has been read (server
profiles, chain verdicts seen elsewhere and the capture's end are needed), so every connection used
to stay in memory until the end: ~9 KB each, 389 MiB at 2 GB, 3.7 GB for a million short flows.
Now, once the flow table holds more than EVICT_MIN connections, the least recently active ones
(closed ones first; never one with a packet in the last second of capture time, never the wall
clock) become compact records in an unlinked temporary file (in ``$TMPDIR``) until the table is half
that size, with a few numbers per connection left in memory (where the record is, its row-order
key, a hash of its 4-tuple). The table then holds the active connections and at most EVICT_MIN
others. Nothing about the analysis changes: a packet for an evicted connection brings it back into
the table exactly as it was, so the results are those of a run that never evicts
(tests/test_spill.py compares every sample both ways).

Records: the flow's state (analyzer.tcp.flow.FLOW_STATE) as a ``marshal`` tuple of plain values (format 2):
as it is for TCP-only flows (most of a SYN flood or a scan; ~1 us to write); with the TLS state
turned into plain values first (TlsObserver.state, messages.pack, Reassembler.state) for TLS
connections; a pickle for the rest (a connection being decrypted with a key log, a cleartext
protocol being followed before STARTTLS). The key ring (key log) and the TLS port set are shared
by every flow: never written, given back on reading.
"""

from __future__ import annotations

import marshal
import os
import pickle
import tempfile
from array import array
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from analyzer.tcp.flow import FLOW_STATE, Flow
from analyzer.tcp.reassembly import Reassembler
from analyzer.tls.observer import RecordSeen, TlsObserver

if TYPE_CHECKING:
    from analyzer.tls.observer import KeyRing

EVICT_MIN = 5_000  # flows in the table before idle ones are evicted: small captures never touch the disk
IDLE_MIN_NS = 10**9  # a connection with a packet this recently (capture time) is never evicted
WRITE_BUFFER = 1 << 20
MARSHAL, TLS, PICKLE = b"M", b"T", b"P"
_write = os.write  # a name of its own, so that the tests can make the disk fill up
# marshal format 2: no back-references. Versions 3 and 4 look every object of a record up in a table
# of the ones already written (to share repeats), which took 15 us of a TLS record's ~410 objects
# against 8 us; the records are 10% larger. Records live only as long as the run that wrote them.
MARSHAL_VERSION = 2


def _pread(fd: int, length: int, at: int) -> bytes:
    """os.pread where it exists (POSIX); elsewhere seek, read, and go back to the end for the writes."""
    if hasattr(os, "pread"):
        return os.pread(fd, length, at)
    os.lseek(fd, at, os.SEEK_SET)
    try:
        return os.read(fd, length)
    finally:
        os.lseek(fd, 0, os.SEEK_END)


FILTER_BITS = 23  # a byte per 4-tuple hash slot (8 MiB): most lookups of a new 4-tuple end there
FILTER_MASK = (1 << FILTER_BITS) - 1


# what stages.survey reads of a connection: 4-tuple key, client direction, first packet time, file
# index, first frame, SNI, (version, cipher) agreed or None, server Certificate, its time, client
# Certificate, CertificateStatus
SurveyInput = tuple[
    tuple[int, ...], int, int, int, int, "str | None", "tuple[int, int] | None", Any, "int | None", Any, Any
]


def survey_part(flow: Flow) -> bytes:
    """The survey input of a connection whose wrap-up at the capture's end cannot change what the
    survey reads: no cleartext protocol being followed, roles known, nothing waiting behind a hole
    (Flow.finish() would deliver it to the TLS parser). Empty for any other connection, whose whole
    state the survey then reads. The record is only read if the connection is not taken back, so
    its state at the end is its state now."""
    obs = flow.obs
    if obs is None or flow.watcher is not None or flow.client_dir is None:
        return b""
    if flow.reasm is not None and (flow.reasm[0].waiting or flow.reasm[1].waiting):
        return b""
    sh = obs.server_hello
    ch = obs.client_hello
    value: SurveyInput = (
        flow.key,
        flow.client_dir,
        flow.first_ts,
        flow.file_index,
        flow.first_frame,
        ch.sni if ch is not None else None,
        (sh.selected_version, sh.cipher_suite) if sh is not None else None,
        obs.server_certificate,
        obs.server_certificate_ts,
        obs.client_certificate,
        obs.certificate_status,
    )
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


_as_record = partial(tuple.__new__, RecordSeen)  # a plain tuple back to a RecordSeen, without a Python call


_OBS, _REASM = FLOW_STATE.index("obs"), FLOW_STATE.index("reasm")


def encode(flow: Flow, keys: KeyRing) -> bytes:
    values = flow.state()
    obs = flow.obs
    if flow.watcher is None and flow.adat is None and flow.starttls_outcome is None:
        try:
            if obs is None and flow.reasm is None:
                return MARSHAL + marshal.dumps(values, MARSHAL_VERSION)
            if obs is not None:  # TLS state as plain values too (TlsObserver.state, messages.pack)
                plain = list(values)
                plain[_OBS] = obs.state(flow.events)
                plain[_REASM] = None if flow.reasm is None else [r.state() for r in flow.reasm]
                return TLS + marshal.dumps(tuple(plain), MARSHAL_VERSION)
        except (ValueError, KeyError):  # a value marshal or pack() does not know, a decryptor: pickle it
            pass
    records = None
    if obs is not None:
        obs.keys = None  # the key ring is shared by every connection: given back by decode()
        # named tuples pickle through a Python-level call each (a third of the time for a TLS
        # connection's ~10 handshake records); plain tuples do not. decode() names them again.
        records, obs.records = obs.records, [tuple(r) for r in obs.records]  # type: ignore[misc]
    try:
        return PICKLE + pickle.dumps(values, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        if obs is not None:
            obs.keys = keys
            obs.records = records  # type: ignore[assignment]


def decode(record: bytes, keys: KeyRing, tls_ports: frozenset[int]) -> Flow:
    body = memoryview(record)[1:]
    kind = record[:1]
    flow = Flow(tls_ports=tls_ports, keys=keys)
    if kind == TLS:
        plain = list(marshal.loads(body))
        obs_state, reasm_state = plain[_OBS], plain[_REASM]
        plain[_OBS] = plain[_REASM] = None
        flow.restore(tuple(plain))
        obs = flow.obs = TlsObserver(flow.events, keys)
        obs.restore(obs_state, flow.events)
        if reasm_state is not None:
            flow.reasm = [Reassembler() for _ in reasm_state]
            for r, st in zip(flow.reasm, reasm_state, strict=True):
                r.restore(st)
        return flow
    values = marshal.loads(body) if kind == MARSHAL else pickle.loads(body)
    flow.restore(values)
    if flow.obs is not None:
        flow.obs.keys = keys
        flow.obs.records = list(map(_as_record, flow.obs.records))
    return flow


class FlowStore:
    """Evicted and retired connections of one flow table, as records in an unlinked temporary file."""

    def __init__(self, keys: KeyRing, tls_ports: frozenset[int]) -> None:
        self.keys, self.tls_ports = keys, tls_ports
        self._file = tempfile.TemporaryFile(prefix="tls-analyzer-")  # noqa: SIM115 (lives as long as the store; unlinked)
        self._fd = self._file.fileno()
        self._tail = bytearray()  # records not yet written (all of them from here on if writing failed)
        self._written = 0
        self.problem: str | None = None  # writing failed (disk full?): a warning for the user
        # one entry per record
        self._offset = array("q")
        self._length = array("q")
        self._survey_length = array("q")  # a settled TLS connection's survey part, before its state; 0: none
        self._first_ts = array("q")
        self._file_index = array("q")
        self._first_frame = array("q")
        self._alive = bytearray()
        self._tls = bytearray()  # the connection had TLS state when it was written
        # evicted (not retired) records by 4-tuple hash: a sorted part and a recent part
        self._hashes = np.empty(0, np.int64)
        self._hash_records = np.empty(0, np.int64)
        self._recent: dict[int, list[int]] = {}
        # 4-tuple hashes are salted per run: a capture cannot be crafted so that many connections share
        # one (Python's hash of a tuple of ints can be inverted), which would make every lookup slow.
        # Only where a record is looked up depends on it, never a result.
        self._salt = int.from_bytes(os.urandom(8), "big")
        self._filter = bytearray(1 << FILTER_BITS)  # set for every findable hash ever put (never cleared)

    def __len__(self) -> int:
        return len(self._offset)

    def put(self, flow: Flow, findable: bool) -> None:
        """Write a connection; ``findable``: it may still get packets (evicted, not retired)."""
        record = encode(flow, self.keys)
        part = survey_part(flow)
        if part:
            record = part + record
        i = len(self._offset)
        self._offset.append(self._written + len(self._tail))
        self._length.append(len(record))
        self._survey_length.append(len(part))
        self._first_ts.append(flow.first_ts)
        self._file_index.append(flow.file_index)
        self._first_frame.append(flow.first_frame)
        self._alive.append(1)
        self._tls.append(1 if flow.obs is not None else 0)
        self._tail += record
        if len(self._tail) >= WRITE_BUFFER and self.problem is None:
            self._flush()
        if findable:
            h = hash((self._salt, flow.key))
            self._filter[h & FILTER_MASK] = 1
            self._recent.setdefault(h, []).append(i)
            if len(self._recent) > max(4096, min(len(self._hashes) // 8, 65536)):
                self._merge_recent()

    def _flush(self) -> None:
        """Write the buffered records; if the disk refuses (full, quota), keep them in memory from then on."""
        if not self._tail or self.problem is not None:
            return
        view = memoryview(self._tail)
        done = 0
        try:
            while done < len(view):
                done += _write(self._fd, view[done:])
        except OSError as exc:
            self.problem = (
                f"the temporary file of idle connections could not be written ({exc.strerror or exc}); "
                "they stayed in memory from then on"
            )
        finally:
            view.release()
        self._written += done
        del self._tail[:done]

    def _merge_recent(self) -> None:
        pairs = [(h, i) for h, idx in self._recent.items() for i in idx]
        hs = np.concatenate([self._hashes, np.fromiter((p[0] for p in pairs), np.int64, len(pairs))])
        rs = np.concatenate([self._hash_records, np.fromiter((p[1] for p in pairs), np.int64, len(pairs))])
        alive = np.frombuffer(self._alive, np.uint8)[rs] != 0  # taken-back records leave the index
        hs, rs = hs[alive], rs[alive]
        by = np.argsort(hs, kind="stable")
        self._hashes, self._hash_records = hs[by], rs[by]
        self._recent = {}

    def _read(self, i: int, start: int, length: int) -> bytes:
        self._flush()
        at = self._offset[i] + start
        if at >= self._written:  # still (or, after a write failure, for good) in memory
            return bytes(self._tail[at - self._written : at - self._written + length])
        on_disk = min(length, self._written - at)  # a partial write can leave a record's end in memory
        data = _pread(self._fd, on_disk, at) + bytes(self._tail[: length - on_disk])
        if len(data) != length:
            raise OSError(f"temporary file of evicted connections is short (record {i})")
        return data

    def load(self, i: int) -> Flow:
        skip = self._survey_length[i]
        return decode(self._read(i, skip, self._length[i] - skip), self.keys, self.tls_ports)

    def survey_input(self, i: int) -> SurveyInput | None:
        """What the survey needs of a settled TLS connection, without reading its whole state."""
        n = self._survey_length[i]
        if not n:
            return None
        value: SurveyInput = pickle.loads(self._read(i, 0, n))
        return value

    def take(self, key: tuple[int, ...]) -> Flow | None:
        """The evicted connection on this 4-tuple, out of the store (a packet for it arrived), or None."""
        h = hash((self._salt, key))
        if not self._filter[h & FILTER_MASK]:
            return None
        candidates = list(self._recent.get(h, ()))
        if len(self._hashes):
            lo = int(np.searchsorted(self._hashes, h, "left"))
            hi = int(np.searchsorted(self._hashes, h, "right"))
            if hi > lo:
                candidates.extend(self._hash_records[lo:hi].tolist())
        for i in candidates:
            if not self._alive[i]:
                continue
            flow = self.load(i)
            if flow.key == key:
                self._alive[i] = 0
                idx = self._recent.get(h)
                if idx is not None and i in idx:
                    idx.remove(i)
                    if not idx:
                        del self._recent[h]
                return flow
        return None

    def tls_records(self) -> list[int]:
        """Live records of connections with TLS state, in the order they were written."""
        if not len(self):
            return []
        alive = np.frombuffer(self._alive, np.uint8) != 0
        tls = np.frombuffer(self._tls, np.uint8) != 0
        out: list[int] = np.flatnonzero(alive & tls).tolist()
        return out

    def row_order(self) -> Iterator[int]:
        """Live records in row order (first packet time, file, first frame); the order is kept as one
        numpy array and handed out a slice at a time (a list of a million ints would be 36 MB)."""
        if not len(self):
            return
        alive = np.flatnonzero(np.frombuffer(self._alive, np.uint8) != 0)
        ts = np.frombuffer(self._first_ts, np.int64)[alive]
        fi = np.frombuffer(self._file_index, np.int64)[alive]
        fr = np.frombuffer(self._first_frame, np.int64)[alive]
        ordered = alive[np.lexsort((fr, fi, ts))]
        del alive, ts, fi, fr
        for start in range(0, len(ordered), 4096):
            yield from ordered[start : start + 4096].tolist()

    def order(self, i: int) -> tuple[int, int, int]:
        return self._first_ts[i], self._file_index[i], self._first_frame[i]

    def first_ts(self) -> int | None:
        if not len(self):
            return None
        alive = np.frombuffer(self._alive, np.uint8) != 0
        ts = np.frombuffer(self._first_ts, np.int64)[alive]
        return int(ts.min()) if len(ts) else None

    def close(self) -> None:
        self._tail = bytearray()
        self._file.close()


__all__ = ["EVICT_MIN", "IDLE_MIN_NS", "FlowStore", "SurveyInput", "decode", "encode", "survey_part"]
