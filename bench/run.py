"""Time tls-analyzer and its peers (tshark, Suricata, ndpiReader) on one capture: rate and peak RSS."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_ANALYZER = "{exe} analyze {capture} --format csv --output {output}"
TSHARK_ARGS = [
    "-Y", "tls.handshake.type==1", "-T", "fields",
    "-e", "ip.src", "-e", "tls.handshake.extensions_server_name", "-e", "tls.handshake.ja3",
]  # fmt: skip
PEER_PACKAGES = {"tshark": "tshark", "suricata": "suricata", "ndpiReader": "libndpi-bin"}
SURICATA_YAML = """%YAML 1.1
---
default-log-dir: {logdir}
max-pending-packets: 1024
runmode: single
outputs:
  - eve-log:
      enabled: yes
      filetype: regular
      filename: eve.json
      append: no
      types:
        - tls:
            extended: yes
app-layer:
  protocols:
    tls:
      enabled: yes
      detection-ports:
        dp: 443
stream:
  memcap: 256mb
  reassembly:
    memcap: 512mb
    depth: 1mb
"""


@dataclass
class Result:
    tool: str
    command: list[str] = field(default_factory=list)
    packets: int = 0
    file_bytes: int = 0
    seconds: list[float] = field(default_factory=list)  # wall time of each run
    peak_rss_mib: list[float] = field(default_factory=list)  # of each run
    returncodes: list[int] = field(default_factory=list)
    rows: int | None = None  # what the tool reported: CSV rows, ClientHello lines, eve tls events, flows
    rows_what: str = ""
    skipped: str = ""  # why the tool did not run
    error: str = ""  # stderr tail of a failed run

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    def summary(self) -> dict[str, object]:
        d = asdict(self)
        ok = bool(self.seconds) and not self.error
        d.update(
            median_seconds=round(self.median_s, 4) if ok else None,
            min_seconds=round(min(self.seconds), 4) if ok else None,
            packets_per_s=round(self.packets / self.median_s) if ok else None,
            mb_per_s=round(self.file_bytes / 1e6 / self.median_s, 2) if ok else None,
            max_peak_rss_mib=round(max(self.peak_rss_mib), 1) if ok else None,
        )
        return d


def count_packets(path: Path) -> int:
    """Count records by walking the pcap (or pcapng) headers; no packet is decoded."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(24)
        magic = head[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
            rec = struct.Struct(endian + "8xI4x")
            n, pos = 0, 24
            while pos + 16 <= size:
                f.seek(pos)
                hdr = f.read(16)
                if len(hdr) < 16:
                    break
                pos += 16 + rec.unpack(hdr)[0]
                n += 1
            return n
        if magic == b"\x0a\x0d\x0d\x0a":
            endian = "<" if head[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
            n, pos = 0, 0
            while pos + 12 <= size:
                f.seek(pos)
                btype, blen = struct.unpack(endian + "II", f.read(8))
                if btype in (2, 3, 6):  # obsolete packet, simple packet, enhanced packet
                    n += 1
                if blen < 12:
                    break
                pos += blen
            return n
    if shutil.which("capinfos"):
        out = subprocess.run(["capinfos", "-M", "-c", str(path)], capture_output=True, text=True).stdout
        m = re.search(r"Number of packets:\s*(\d+)", out)
        if m:
            return int(m.group(1))
    raise SystemExit(f"{path}: not a pcap/pcapng file")


def warm_cache(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 22):
            pass


# Tools run as installed: Python bytecode cached (pip compiles .pyc at install; with
# PYTHONDONTWRITEBYTECODE set, as in some sandboxes, every run would recompile every source file).
RUN_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(argv: list[str], stdout: Path, cwd: Path) -> tuple[float, float, int, str]:
    """Run argv; returns (wall seconds, peak RSS MiB, exit code, stderr tail).

    The RSS is ru_maxrss from wait4() on the child: on Linux the largest resident set of the child or
    of any descendant it waited for (a maximum over the process tree, not a sum).
    """
    err_path = stdout.with_suffix(".stderr")
    with open(stdout, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd, env=RUN_ENV)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    tail = err_path.read_text(errors="replace").strip().splitlines()[-3:]
    return wall, ru.ru_maxrss / 1024, p.returncode, " | ".join(tail)


BACKPORTS = Path("/etc/apt/sources.list.d/tls-analyzer-bench-backports.sources")


def _backports_suite() -> str | None:
    """Debian 12 has Suricata only in bookworm-backports: add that suite (once) and name it."""
    try:
        release = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    except OSError:
        return None
    codename = release.get("VERSION_CODENAME", "").strip('"')
    if release.get("ID", "").strip('"') != "debian" or not codename:
        return None
    suite = f"{codename}-backports"
    if not BACKPORTS.exists():
        BACKPORTS.write_text(
            f"Types: deb\nURIs: http://deb.debian.org/debian\nSuites: {suite}\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        )
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
    return suite


def apt_install(tool: str) -> str:
    """apt-get install the Debian package of `tool` (Suricata from Debian backports); '' on success,
    else the reason."""
    if os.geteuid() != 0:
        return "not installed (apt-get needs root)"
    cmd = ["apt-get", "install", "-y", "-qq", PEER_PACKAGES[tool]]
    if tool == "suricata":
        suite = _backports_suite()
        if suite is not None:
            cmd[2:2] = ["-t", suite]
    r = subprocess.run(
        cmd,
        env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
        capture_output=True,
        text=True,
    )
    if shutil.which(tool):
        return ""
    msg = (r.stderr.strip().splitlines() or ["failed"])[-1]
    return f"not installed: apt-get install {PEER_PACKAGES[tool]}: {msg}"


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def analyzer_command(template: str, capture: Path, output: Path) -> list[str] | str:
    exe = Path(sys.executable).parent / "tls-analyzer"
    if "{exe}" in template:
        found = str(exe) if exe.exists() else shutil.which("tls-analyzer")
        if found is None:
            return "tls-analyzer not installed (pip install -e . in the venv)"
        template = template.replace("{exe}", found)
    return [a.format(capture=capture, output=output) for a in shlex.split(template)]


def bench_tools(plans: list[tuple[Result, list[str]]], runs: int, work: Path) -> None:
    """Every tool ``runs`` times, in rounds (each tool once per round): a slow spell of a shared
    machine then costs every tool alike instead of skewing the ratios against one of them."""
    for res, argv in plans:
        res.command = argv
        print(f"[run] {res.tool}: {shlex.join(argv)}", file=sys.stderr, flush=True)
    for i in range(runs):
        for res, argv in plans:
            if res.error:
                continue
            wall, rss, rc, tail = timed(argv, work / f"{res.tool}.{i}.out", work)
            res.seconds.append(round(wall, 4))
            res.peak_rss_mib.append(round(rss, 1))
            res.returncodes.append(rc)
            print(
                f"[run]   {res.tool} run {i + 1}/{runs}: {wall:.2f} s, {rss:.0f} MiB, rc={rc}",
                file=sys.stderr,
                flush=True,
            )
            if rc != 0:
                res.error = f"exit {rc}: {tail}"


def row_count(kind: str, path: Path) -> int | None:
    if not path.exists():
        return None
    if kind == "csv rows":
        return max(0, count_lines(path) - 1)
    if kind == "ClientHello lines":
        return count_lines(path)
    if kind == "eve tls events":
        with open(path, "rb") as f:
            return sum(1 for ln in f if b'"event_type":"tls"' in ln)
    if kind == "flows":
        m = re.search(r"Unique flows:\s*(\d+)", path.read_text(errors="replace"))
        return int(m.group(1)) if m else None
    return None


# issue 6's bar: tls-analyzer's packets/s at least this many times the peer's, on the same file
TARGETS = {"suricata": 2.0, "ndpiReader": 1.5}


def ratios(results: list[Result]) -> dict[str, float]:
    """tls-analyzer's packets/s divided by each peer's (same file, same run)."""
    ok = {r.tool: r.packets / r.median_s for r in results if r.seconds and not r.error and not r.skipped}
    mine = ok.get("tls-analyzer")
    if not mine:
        return {}
    return {tool: round(mine / pps, 3) for tool, pps in ok.items() if tool != "tls-analyzer" and pps}


def fmt_table(results: list[Result]) -> str:
    head = ["tool", "packets", "seconds", "packets/s", "MB/s", "peak RSS MiB", "analyzer / tool", "output"]
    rows: list[list[str]] = []
    rel = ratios(results)
    for r in results:
        if r.skipped or r.error or not r.seconds:
            rows.append([r.tool, f"{r.packets:,}", "-", "-", "-", "-", "-", r.skipped or r.error[:80]])
            continue
        s = r.summary()
        what = f"{r.rows:,} {r.rows_what}" if r.rows is not None else ""
        target = f" (target {TARGETS[r.tool]}x)" if r.tool in TARGETS else ""
        rows.append(
            [
                r.tool,
                f"{r.packets:,}",
                f"{s['median_seconds']:.2f}",
                f"{s['packets_per_s']:,}",
                f"{s['mb_per_s']:.1f}",
                f"{s['max_peak_rss_mib']:.0f}",
                f"{rel[r.tool]:.2f}x{target}" if r.tool in rel else "",
                what,
            ]
        )
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
    right = {1, 2, 3, 4, 5}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(head).rstrip(), sep, *(line(r).rstrip() for r in rows)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("capture", type=Path)
    ap.add_argument("--runs", type=int, default=1, help="runs per tool; the median wall time is reported")
    ap.add_argument("--tshark", action="store_true", help="also time tshark reading TLS handshake fields")
    ap.add_argument("--no-suricata", action="store_true", help="skip Suricata even when installed")
    ap.add_argument("--no-ndpi", action="store_true", help="skip ndpiReader even when installed")
    ap.add_argument("--no-analyzer", action="store_true", help="time the peers only")
    ap.add_argument("--install", action="store_true", help="apt-get install missing peers first")
    ap.add_argument(
        "--analyzer-cmd",
        default=DEFAULT_ANALYZER,
        help="command template for tls-analyzer; {exe}, {capture} and {output} are filled in "
        f"(default: {DEFAULT_ANALYZER!r})",
    )
    ap.add_argument("--output", type=Path, default=Path("/tmp/x.csv"), help="CSV the analyzer writes")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    a = ap.parse_args(argv)

    cap: Path = a.capture.resolve()
    if not cap.is_file():
        raise SystemExit(f"{cap}: no such file")
    size = cap.stat().st_size
    warm_cache(cap)  # every tool reads from the page cache, none pays for the disk
    packets = count_packets(cap)
    results: list[Result] = []
    plans: list[tuple[Result, list[str]]] = []
    counted: list[tuple[Result, Path]] = []  # whose output to count once every run is done
    work = Path(tempfile.mkdtemp(prefix="tls-bench-run-"))
    try:
        if not a.no_analyzer:
            res = Result("tls-analyzer", packets=packets, file_bytes=size, rows_what="csv rows")
            cmd = analyzer_command(a.analyzer_cmd, cap, a.output)
            if isinstance(cmd, str):
                res.skipped = cmd
            else:
                a.output.unlink(missing_ok=True)
                plans.append((res, cmd))
                counted.append((res, a.output))
            results.append(res)
        peers: list[tuple[str, bool]] = [
            ("tshark", a.tshark),
            ("suricata", not a.no_suricata),
            ("ndpiReader", not a.no_ndpi),
        ]
        for tool, wanted in peers:
            if not wanted:
                continue
            res = Result(tool, packets=packets, file_bytes=size)
            results.append(res)
            if shutil.which(tool) is None:
                res.skipped = apt_install(tool) if a.install else f"not installed ({PEER_PACKAGES[tool]})"
                if res.skipped:
                    print(f"[run] skipping {tool}: {res.skipped}", file=sys.stderr)
                    continue
            exe = shutil.which(tool) or tool
            if tool == "tshark":
                res.rows_what = "ClientHello lines"
                plans.append((res, [exe, "-r", str(cap), *TSHARK_ARGS]))
                counted.append((res, work / "tshark.0.out"))
            elif tool == "suricata":
                logdir = work / "suricata"
                logdir.mkdir()
                conf = work / "suricata.yaml"
                conf.write_text(SURICATA_YAML.format(logdir=logdir))
                res.rows_what = "eve tls events"
                argv_s = [exe, "-r", str(cap), "-c", str(conf), "-l", str(logdir), "-S", "/dev/null", "-k", "none"]
                plans.append((res, argv_s))
                counted.append((res, logdir / "eve.json"))
            else:
                res.rows_what = "flows"
                plans.append((res, [exe, "-i", str(cap)]))
                counted.append((res, work / "ndpiReader.0.out"))
        bench_tools(plans, a.runs, work)
        for res, path in counted:
            res.rows = row_count(res.rows_what, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if a.json:
        doc = {
            "capture": str(cap),
            "bytes": size,
            "packets": packets,
            "runs": a.runs,
            "host_cpus": os.cpu_count(),
            "results": [r.summary() for r in results],
            "analyzer_packets_per_s_ratio": ratios(results),
            "targets": TARGETS,
        }
        print(json.dumps(doc, indent=1))
    else:
        print(f"capture {cap}: {size / 1e6:.1f} MB, {packets:,} packets; median of {a.runs} run(s), warm cache")
        print(fmt_table(results))
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
