"""--jobs benchmark: N capture files of different sites, the CLI with --jobs 1 and --jobs N, same output checked."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
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


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and the peak RSS (MiB) of the analyzer's main process (wait4 of that process;
    worker processes are smaller: they hold one group's connections)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{cmd[0]} exited with {proc.returncode}")
    return wall, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/tls-bench/jobs"), help="where the files are made")
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--size-mb", type=float, default=50.0, help="size of each file")
    ap.add_argument("--connections", type=int, default=0, help="per file (default: make_capture's 15 per MB)")
    ap.add_argument("--seed", type=Path, help="seed capture for make_capture.py")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--runs", type=int, default=3, help="median of this many runs")
    a = ap.parse_args(argv)
    files = build(a.dir, a.files, a.size_mb, a.connections, a.seed)
    exe = shutil.which("tls-analyzer") or str(Path(sys.executable).with_name("tls-analyzer"))
    size = sum(f.stat().st_size for f in files)
    rows = []
    outputs = []
    for jobs in (1, a.jobs):
        out = a.dir / f"out-jobs{jobs}.csv"
        cmd = [exe, "analyze", str(a.dir / "site*.pcap"), "--jobs", str(jobs), "--format", "csv", "-o", str(out)]
        runs = [timed(cmd) for _ in range(a.runs)]
        wall = statistics.median(r[0] for r in runs)
        rows.append((jobs, wall, max(r[1] for r in runs)))
        outputs.append(out.read_bytes())
    print(f"{len(files)} files, {size / 1e6:.0f} MB, median of {a.runs} runs")
    print("| --jobs | seconds | MB/s | peak RSS (main process) |")
    print("|---|---|---|---|")
    for jobs, wall, rss in rows:
        print(f"| {jobs} | {wall:.2f} | {size / 1e6 / wall:.0f} | {rss:.0f} MiB |")
    print(f"speed-up: {rows[0][1] / rows[1][1]:.2f}x; outputs identical: {outputs[0] == outputs[1]}")
    return 0 if outputs[0] == outputs[1] else 1


if __name__ == "__main__":
    sys.exit(main())
