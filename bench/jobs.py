"""--jobs benchmark: the CLI with --jobs 1 and --jobs N, same output checked; on N capture files of
different sites (made here), or with --capture on one capture, which the workers split by connection.
Memory is sampled over the whole process tree (/proc, every 20 ms): the main process and all together."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build(out: Path, files: int, size_mb: float, connections: int, seed: Path | None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(1, files + 1):
        path = out / f"site{i}.pcap"
        if not path.exists():
            cmd = [sys.executable, str(HERE / "make_capture.py"), "--out", str(path), "--size-mb", str(size_mb)]
            cmd += ["--rng-seed", str(i), "--site", str(i)]
            if connections:
                cmd += ["--connections", str(connections)]
            if seed is not None:
                cmd += ["--seed", str(seed)]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        made.append(path)
    return made


def _tree(pid: int) -> list[int]:
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                for child in fh.read().split():
                    out += _tree(int(child))
    except OSError:
        pass
    return out


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def timed(cmd: list[str]) -> tuple[float, float, float]:
    """Wall seconds, and the peak RSS (MiB) of the main process and of all its processes together,
    sampled every 20 ms (forked workers share the parent's pages, so the sum counts those twice)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    ended: list[float] = []
    waiter = threading.Thread(target=lambda: (proc.wait(), ended.append(time.perf_counter())))
    waiter.start()  # the end time to the microsecond, not to the next 20 ms sample
    main_peak = all_peak = 0
    while not ended:
        sizes = [_rss_kib(p) for p in _tree(proc.pid)]
        main_peak, all_peak = max(main_peak, sizes[0]), max(all_peak, sum(sizes))
        time.sleep(0.02)
    waiter.join()
    wall = ended[0] - t
    if proc.returncode:
        raise SystemExit(f"{cmd[0]} exited with {proc.returncode}")
    return wall, main_peak / 1024, all_peak / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/tls-bench/jobs"), help="where the files are made")
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--size-mb", type=float, default=50.0, help="size of each file")
    ap.add_argument("--connections", type=int, default=0, help="per file (default: make_capture's 15 per MB)")
    ap.add_argument("--seed", type=Path, help="seed capture for make_capture.py")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--runs", type=int, default=3, help="median of this many runs")
    ap.add_argument("--capture", type=Path, help="time this one capture instead of making site files")
    a = ap.parse_args(argv)
    if a.capture is not None:
        files, target, out_dir = [a.capture], str(a.capture), Path("/tmp")
    else:
        files = build(a.dir, a.files, a.size_mb, a.connections, a.seed)
        target, out_dir = str(a.dir / "site*.pcap"), a.dir
    exe = shutil.which("tls-analyzer") or str(Path(sys.executable).with_name("tls-analyzer"))
    size = sum(f.stat().st_size for f in files)
    rows = []
    outputs = []
    runs: dict[int, list[tuple[float, float, float]]] = {1: [], a.jobs: []}
    for _ in range(a.runs):  # interleaved, so that a slow spell of this shared VM hits both alike
        for jobs in runs:
            cmd = [
                exe,
                "analyze",
                target,
                "--jobs",
                str(jobs),
                "--format",
                "csv",
                "-o",
                str(out_dir / f"tls-analyzer-jobs{jobs}.csv"),
            ]
            runs[jobs].append(timed(cmd))
    for jobs, timings in runs.items():
        wall = statistics.median(r[0] for r in timings)
        rows.append((jobs, wall, max(r[1] for r in timings), max(r[2] for r in timings)))
        outputs.append((out_dir / f"tls-analyzer-jobs{jobs}.csv").read_bytes())
    print(f"{len(files)} file(s), {size / 1e6:.0f} MB, median of {a.runs} runs")
    print("| --jobs | seconds | MB/s | peak RSS, main process | all processes |")
    print("|---|---|---|---|---|")
    for jobs, wall, rss, rss_all in rows:
        print(f"| {jobs} | {wall:.2f} | {size / 1e6 / wall:.0f} | {rss:.0f} MiB | {rss_all:.0f} MiB |")
    print(f"speed-up: {rows[0][1] / rows[1][1]:.2f}x; outputs identical: {outputs[0] == outputs[1]}")
    return 0 if outputs[0] == outputs[1] else 1


if __name__ == "__main__":
    sys.exit(main())
