"""The packet loop: header-skimmed blocks to flows, with per-packet Python only for undecided/deep flows."""

from __future__ import annotations

import numpy as np

from analyzer.capture.reader import FrameBlock
from analyzer.packets import SkimStats, TcpColumns, skim
from analyzer.tcp.flow import ACK, DEFAULT_TLS_PORTS, FIN, RST, SKIP, SYN, Flow
from analyzer.tls.observer import KeyRing

CTRL = SYN | FIN | RST


class Engine:
    """Holds the flow table across blocks (and across the files of one analysis)."""

    def __init__(self, tls_ports: frozenset[int] = DEFAULT_TLS_PORTS) -> None:
        self.tls_ports = tls_ports
        self.flows: dict[tuple[int, ...], Flow] = {}
        self.retired: list[Flow] = []
        self.stats = SkimStats()
        self.file_index = 0
        self.errors: list[str] = []
        self.keys = KeyRing()  # key log (files and pcapng secrets blocks), shared with every connection

    def process(self, blk: FrameBlock) -> None:
        cols = skim(blk, self.stats)
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
        flows = self.flows
        for g, key in enumerate(cols.keys):
            flow = flows.get(key)
            if flow is not None and flow.mode == SKIP and nctrl[g] == 0:
                # bulk data: one dictionary lookup and a few additions for the whole run
                flow.pkts[0] += pk0[g]
                flow.pkts[1] += pkt[g] - pk0[g]
                flow.bytes[0] += by0[g]
                flow.bytes[1] += byt[g] - by0[g]
                if tsmax[g] > flow.last_ts:
                    flow.last_ts = tsmax[g]
                continue
            self._run(key, flow, cols, data, starts[g], starts[g + 1])

    def _new_flow(self, key: tuple[int, ...], ts: int, frame: int) -> Flow:
        old = self.flows.get(key)
        if old is not None:
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

    def _run(self, key: tuple[int, ...], flow: Flow | None, cols: TcpColumns, data: np.ndarray, s: int, e: int) -> None:
        frames = cols.frame[s:e].tolist()
        tss = cols.ts_ns[s:e].tolist()
        dirs = cols.dir[s:e].tolist()
        flags = cols.flags[s:e].tolist()
        seqs = cols.seq[s:e].tolist()
        wlens = cols.wlen[s:e].tolist()
        if flow is None:
            flow = self._new_flow(key, tss[0], frames[0])
        n = e - s
        i = 0
        while i < n:
            f = flags[i]
            if f & SYN and self._is_new_connection(flow, f, seqs[i]):
                flow = self._new_flow(key, tss[i], frames[i])
            if flow.mode == SKIP:
                i = self._skim_rest(flow, cols, s, i, n, flags, seqs, dirs, tss, frames)
                if i < n:
                    flow = self._new_flow(key, tss[i], frames[i])
                continue
            d = dirs[i]
            flow.pkts[d] += 1
            flow.bytes[d] += wlens[i]
            if tss[i] > flow.last_ts:
                flow.last_ts = tss[i]
            if f & CTRL:
                flow.control(d, f, seqs[i], tss[i], frames[i])
            wl = wlens[i]
            if wl:
                k = s + i
                off = int(cols.poff[k])
                payload = data[off : off + int(cols.plen[k])].tobytes()
                try:
                    flow.payload(d, seqs[i], payload, wl, tss[i], frames[i])
                except Exception as exc:  # a parser bug costs this flow its deep view, not the analysis
                    self.errors.append(
                        f"frame {frames[i]}: internal error in TLS parsing ({type(exc).__name__}: {exc}); connection no longer parsed"
                    )
                    flow.stop_deep()
            i += 1

    def _skim_rest(
        self,
        flow: Flow,
        cols: TcpColumns,
        s: int,
        i: int,
        n: int,
        flags: list[int],
        seqs: list[int],
        dirs: list[int],
        tss: list[int],
        frames: list[int],
    ) -> int:
        """The rest of a run once its flow is skimmed: numpy sums, Python only for SYN/FIN/RST.

        Returns where a new connection on the same 4-tuple starts (or ``n``)."""
        end = n
        for j in (np.flatnonzero(cols.flags[s + i : s + n] & CTRL) + i).tolist():
            if flags[j] & SYN and j > i and self._is_new_connection(flow, flags[j], seqs[j]):
                end = j
                break
            flow.control(dirs[j], flags[j], seqs[j], tss[j], frames[j])
        if end > i:
            d = cols.dir[s + i : s + end]
            w = cols.wlen[s + i : s + end]
            n0 = int(np.count_nonzero(d == 0))
            b0 = int(w[d == 0].sum())
            flow.pkts[0] += n0
            flow.pkts[1] += end - i - n0
            flow.bytes[0] += b0
            flow.bytes[1] += int(w.sum()) - b0
            last = int(cols.ts_ns[s + i : s + end].max())
            if last > flow.last_ts:
                flow.last_ts = last
        return end
