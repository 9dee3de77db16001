"""The packet loop: header-skimmed blocks to flows, with per-packet Python only for undecided/deep flows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from analyzer import packets
from analyzer.capture.reader import FrameBlock
from analyzer.packets import SkimStats, TcpColumns, skim
from analyzer.tcp.flow import ACK, DEFAULT_TLS_PORTS, FIN, RST, SKIP, SYN, Flow
from analyzer.tls.observer import KeyRing

if TYPE_CHECKING:
    from analyzer.spill import FlowStore

CTRL = SYN | FIN | RST
PacketLists = tuple[list[int], list[int], list[int], list[int], list[int], list[int], list[int], list[int]]
OPEN_RANK = 1 << 62  # added to an open flow's last packet time when choosing which idle flows to evict


class Engine:
    """Holds the flow table across blocks (and across the files of one analysis)."""

    def __init__(
        self, tls_ports: frozenset[int] = DEFAULT_TLS_PORTS, spill: bool = False, shard: tuple[int, int] | None = None
    ) -> None:
        self.tls_ports = tls_ports
        # shard (k, n): only the connections whose 4-tuple hashes to shard k of n (packets.shard_of;
        # --jobs splitting one capture between n processes, analyzer/parallel.py): the header pass
        # reads every packet, the rest of the work is done for this shard's connections only
        self.shard = shard
        self.flows: dict[tuple[int, ...], Flow] = {}
        self.retired: list[Flow] = []
        # spill: idle connections leave the table for a temporary file (analyzer/spill.py) once it is
        # large; off where the flows must stay in this process' memory (--jobs scans send them on)
        self.spill = spill
        self.store: FlowStore | None = None
        self._evict_at = 0
        self.now = 0  # the latest packet time seen: the clock of eviction
        # per 4-tuple, Flow.head() of its first and Flow.tail() of its last connection sent to the store
        # (kept only when the scan is summarised: scan.py joins groups of files with them)
        self.ends: (
            tuple[dict[tuple[int, ...], tuple[bool, int | None]], dict[tuple[int, ...], tuple[int | None, bool]]] | None
        ) = None
        self.stats = SkimStats()
        self.file_index = 0
        self.errors: list[tuple[int, str]] = []  # (frame, message); frame -1: not about one frame
        self.keys = KeyRing()  # key log (files and pcapng secrets blocks), shared with every connection

    def process(self, blk: FrameBlock) -> None:
        cols = skim(blk, self.stats, self.shard)
        if not len(cols):
            return
        data = blk.data
        starts_np = cols.starts
        st = starts_np[:-1]
        d0 = cols.dir == 0
        wl = cols.wlen
        pk0 = np.add.reduceat(d0.astype(np.int64), st).tolist()
        by0 = np.add.reduceat(np.where(d0, wl, 0), st).tolist()
        pkt = np.diff(starts_np).tolist()
        byt = np.add.reduceat(wl, st).tolist()
        tsmax = np.maximum.reduceat(cols.ts_ns, st).tolist()
        nctrl = np.add.reduceat(((cols.flags & CTRL) != 0).astype(np.int64), st).tolist()
        starts = starts_np.tolist()
        # many short runs (a SYN flood, a scan, small requests): what the per-packet loop reads becomes
        # Python lists packets.LIST_CHUNK packets at a time (whole runs), instead of eight small conversions per
        # run (~5 us a run); not the whole block at once: 65,536 packets as lists hold ~19 MB
        short = len(cols.keys) * packets.SHORT_RUNS > len(cols)
        chunk: PacketLists | None = None
        chunk_at = chunk_end = 0
        flows = self.flows
        store = self.store
        for g, key in enumerate(cols.keys):
            flow = flows.get(key)
            if flow is None and store is not None:
                flow = store.take(key)  # a packet for an evicted connection: it comes back as it was
                if flow is not None:
                    flows[key] = flow
            if flow is not None and flow.mode == SKIP and nctrl[g] == 0:
                # bulk data: one dictionary lookup and a few additions for the whole run
                flow.pkts[0] += pk0[g]
                flow.pkts[1] += pkt[g] - pk0[g]
                flow.bytes[0] += by0[g]
                flow.bytes[1] += byt[g] - by0[g]
                if tsmax[g] > flow.last_ts:
                    flow.last_ts = tsmax[g]
                continue
            s, e = starts[g], starts[g + 1]
            if short and e > chunk_end:  # the next piece of the block's columns, from this run on
                chunk_at, chunk_end = s, min(len(cols), max(e, s + packets.LIST_CHUNK))
                chunk = _as_lists(cols, chunk_at, chunk_end)
            self._run(key, flow, cols, data, s, e, chunk, chunk_at)  # chunk stays None unless short
        if self.spill:
            now = max(tsmax)
            if now > self.now:
                self.now = now
            if len(flows) > self._evict_at:
                self._evict()

    def _evict(self) -> None:
        """Past EVICT_MIN flows, the least recently active ones (closed ones first) go to the store until
        the table is half that size; a flow with a packet in the last IDLE_MIN_NS of capture time stays.
        The next check waits until the table has doubled (or is past EVICT_MIN again)."""
        from analyzer.spill import EVICT_MIN, IDLE_MIN_NS, FlowStore

        flows = self.flows
        if len(flows) > EVICT_MIN:
            before = self.now - IDLE_MIN_NS
            # least recently active first, closed ones before open ones: one int per flow (the open
            # bit above the time) sorts several times faster than a tuple per flow; ties keep the
            # table's order. Which flows go is a matter of speed only: a flow comes back as it was.
            keys: list[tuple[int, ...]] = []
            ranks: list[int] = []
            for k, f in flows.items():
                ts = f.last_ts
                if ts < before:
                    keys.append(k)
                    ranks.append(ts if f.closed else ts + OPEN_RANK)
            order = sorted(range(len(ranks)), key=ranks.__getitem__)[: len(flows) - EVICT_MIN // 2]
            out = [keys[i] for i in order]
            if out or self.retired:
                if self.store is None:
                    try:
                        self.store = FlowStore(self.keys, self.tls_ports)
                    except OSError as exc:  # no usable $TMPDIR: everything stays in memory, as before
                        self.spill = False
                        self.errors.append(
                            (
                                -1,
                                f"cannot create a temporary file for idle connections ({exc.strerror or exc}); "
                                "all connections stay in memory",
                            )
                        )
                        return
                for old in self.retired:
                    self._store(old, False)
                self.retired.clear()
                for k in out:
                    self._store(flows.pop(k), True)
        self._evict_at = max(EVICT_MIN, 2 * len(flows))

    def _store(self, flow: Flow, findable: bool) -> None:
        assert self.store is not None
        if self.ends is not None:
            heads, tails = self.ends
            if flow.key not in heads:
                heads[flow.key] = flow.head()
            tails[flow.key] = flow.tail()
        self.store.put(flow, findable)

    def _new_flow(self, key: tuple[int, ...], ts: int, frame: int) -> Flow:
        old = self.flows.get(key)
        if old is not None:
            if self.store is not None:
                self._store(old, False)
            else:
                self.retired.append(old)
        flow = Flow(key, ts, frame, self.tls_ports, self.keys)
        flow.file_index = self.file_index
        self.flows[key] = flow
        return flow

    @staticmethod
    def _is_new_connection(flow: Flow, flags: int, seq: int) -> bool:
        """A SYN that does not belong to the connection we know: the 4-tuple was reused."""
        if not flags & SYN or flags & ACK:
            return False
        if flow.syn_seq is not None:
            return seq != flow.syn_seq
        return flow.closed or flow.first_payload[0] is not None or flow.first_payload[1] is not None

    def _run(
        self,
        key: tuple[int, ...],
        flow: Flow | None,
        cols: TcpColumns,
        data: np.ndarray,
        s: int,
        e: int,
        lists_of_run: PacketLists | None,
        lists_at: int,
    ) -> None:
        """The packets of one 4-tuple in this block, in order. Per-packet Python only while the flow
        is not skimmed; the columns become Python lists a window at a time, so a bulk run that is
        skimmed after its first packets is never converted as a whole (``lists_of_run``: packets
        ``lists_at`` on as lists already, this run's among them, for a block of short runs)."""
        i = s
        if flow is None:
            flow = self._new_flow(key, int(cols.ts_ns[s]), int(cols.frame[s]))
        window = 16
        while i < e:
            if lists_of_run is not None:
                lists, base, w = lists_of_run, lists_at, e
            else:
                w = min(e, i + window)
                window *= 4  # long deep runs (a slow handshake) convert in growing steps
                lists, base = _as_lists(cols, i, w), i
            frames, tss, dirs, flags, seqs, wlens, poffs, plens = lists
            j = i - base  # list index of packet i
            while j < w - base:
                f = flags[j]
                if f & SYN and self._is_new_connection(flow, f, seqs[j]):
                    flow = self._new_flow(key, tss[j], frames[j])
                if flow.mode == SKIP:
                    nxt = self._skim_rest(flow, cols, base + j, e)
                    if nxt < e:
                        flow = self._new_flow(key, int(cols.ts_ns[nxt]), int(cols.frame[nxt]))
                    i = nxt
                    break
                d = dirs[j]
                wl = wlens[j]
                flow.pkts[d] += 1
                flow.bytes[d] += wl
                if tss[j] > flow.last_ts:
                    flow.last_ts = tss[j]
                if f & CTRL:
                    flow.control(d, f, seqs[j], tss[j], frames[j])
                if wl:
                    off = poffs[j]
                    payload = data[off : off + plens[j]].tobytes()
                    try:
                        flow.payload(d, seqs[j], payload, wl, tss[j], frames[j])
                    except Exception as exc:  # a parser bug costs this flow its deep view, not the analysis
                        self.errors.append(
                            (
                                frames[j],
                                f"frame {frames[j]}: internal error in TLS parsing ({type(exc).__name__}: {exc}); connection no longer parsed",
                            )
                        )
                        flow.stop_deep()
                j += 1
            else:
                i = w

    def _skim_rest(self, flow: Flow, cols: TcpColumns, i: int, e: int) -> int:
        """Packets i..e of a run once its flow is skimmed: numpy sums, Python only for SYN/FIN/RST.

        Returns where a new connection on the same 4-tuple starts (or ``e``)."""
        end = e
        for j in (np.flatnonzero(cols.flags[i:e] & CTRL) + i).tolist():
            f, seq = int(cols.flags[j]), int(cols.seq[j])
            if f & SYN and j > i and self._is_new_connection(flow, f, seq):
                end = j
                break
            flow.control(int(cols.dir[j]), f, seq, int(cols.ts_ns[j]), int(cols.frame[j]))
        if end > i:
            d = cols.dir[i:end]
            w = cols.wlen[i:end]
            n0 = int(np.count_nonzero(d == 0))
            b0 = int(w[d == 0].sum())
            flow.pkts[0] += n0
            flow.pkts[1] += end - i - n0
            flow.bytes[0] += b0
            flow.bytes[1] += int(w.sum()) - b0
            last = int(cols.ts_ns[i:end].max())
            if last > flow.last_ts:
                flow.last_ts = last
        return end


def _as_lists(cols: TcpColumns, i: int, w: int) -> PacketLists:
    """Packets i..w of a block's columns as Python lists, for the per-packet loop (Engine._run)."""
    return (
        cols.frame[i:w].tolist(),
        cols.ts_ns[i:w].tolist(),
        cols.dir[i:w].tolist(),
        cols.flags[i:w].tolist(),
        cols.seq[i:w].tolist(),
        cols.wlen[i:w].tolist(),
        cols.poff[i:w].tolist(),
        cols.plen[i:w].tolist(),
    )
