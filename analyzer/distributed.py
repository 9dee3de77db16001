"""Scale-out beyond one machine: capture files mapped over a dask.distributed cluster into a Parquet dataset.

Optional (``pip install 'tls-analyzer[distributed]'``). Each task analyses one group of files (a
rotated series, grouped as ``analyzer.scan.plan_groups`` does: same directory, same name but for
the rotation number or timestamp) with the ordinary ``analyze`` and writes its own Parquet files,
so nothing but row counts travels back to the client. The dataset is Hive-partitioned and read
directly by DuckDB (``read_parquet('out/handshakes/**/*.parquet', hive_partitioning=1)``), Spark
(``spark.read.parquet('out/handshakes')``) or pandas (``pd.read_parquet('out/handshakes')``)::

    out/handshakes/day=2026-11-27/server=192.0.2.10/part-<group>-0.parquet
    out/alerts/day=2026-11-27/part-<group>-0.parquet     (also events, chains)
    out/certificates/part-<group>-0.parquet              (one row per certificate per task: dedupe on
                                                          cert_sha256 when reading)

Workers must see the capture paths (a shared filesystem or the same layout on every machine) and
write to ``out``. A connection that crosses two files of different groups is not stitched (the
single-machine ``--jobs`` checks shared 4-tuples and regroups; across machines that would mean
shipping every connection's state), so keep a rotated series under one name pattern.

On a real cluster::

    python -m analyzer.distributed --scheduler tcp://scheduler:8786 --output /data/tls-ds /data/pcaps/
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import pandas as pd

from analyzer.api import analyze
from analyzer.scan import expand_captures, plan_groups

# table -> partition columns (day of the connection's first packet, UTC; server address)
PARTITIONS: dict[str, list[str]] = {
    "handshakes": ["day", "server"],
    "alerts": ["day"],
    "events": ["day"],
    "chains": ["day"],
    "certificates": [],
}


def _day(ts: pd.Series) -> pd.Series:
    day: pd.Series = ts.dt.strftime("%Y-%m-%d").astype("string").fillna("unknown")
    return day


def _write(frame: pd.DataFrame, out: str, table: str, tag: str) -> int:
    if frame.empty:
        return 0
    import pyarrow as pa
    import pyarrow.dataset as ds

    parts = PARTITIONS[table]
    path = os.path.join(out, table)
    ds.write_dataset(
        pa.Table.from_pandas(frame, preserve_index=False),
        path,
        format="parquet",
        partitioning=parts or None,
        partitioning_flavor="hive" if parts else None,
        basename_template=f"part-{tag}-{{i}}.parquet",
        existing_data_behavior="overwrite_or_ignore",
    )
    return len(frame)


def analyze_group(files: Sequence[str], out: str, tag: str, options: dict[str, Any]) -> dict[str, int]:
    """One task: analyse ``files`` as one capture and write its rows under ``out``; row counts back."""
    result = analyze(list(files), **options)
    hs = result.handshakes.copy()
    hs["day"] = _day(hs["ts"])
    hs["server"] = hs["server_ip"].fillna("unknown")
    day_of = dict(zip(hs["conn_id"], hs["day"], strict=True))
    counts = {"handshakes": _write(hs, out, "handshakes", tag)}
    for table in ("alerts", "events", "chains"):
        frame = getattr(result, table).copy()
        frame["day"] = frame["conn_id"].map(day_of).astype("string").fillna("unknown")
        counts[table] = _write(frame, out, table, tag)
    counts["certificates"] = _write(result.certificates, out, "certificates", tag)
    counts["warnings"] = len(result.warnings)
    return counts


def analyze_to_parquet(
    captures: Sequence[str],
    out: str,
    client: Any = None,
    scheduler: str | None = None,
    **options: Any,
) -> dict[str, int]:
    """Map the capture files (files, directories, globs) over the cluster; totals of what was written.

    ``client``: a ``distributed.Client``; else one is made for ``scheduler`` (an address), else a
    ``LocalCluster`` on this machine. ``options`` are those of ``analyzer.analyze``.
    """
    from distributed import Client

    files, problem = expand_captures(captures)
    if problem:
        raise FileNotFoundError(problem)
    groups = plan_groups(files)
    own = client is None
    if client is None:
        client = Client(scheduler) if scheduler else Client(processes=True, threads_per_worker=1)  # type: ignore[no-untyped-call]
    try:
        futures = [
            client.submit(analyze_group, [files[i] for i in g], out, f"{g[0]:05d}", options, pure=False) for g in groups
        ]
        totals: dict[str, int] = {"files": len(files), "tasks": len(groups)}
        for counts in client.gather(futures):
            for k, v in counts.items():
                totals[k] = totals.get(k, 0) + v
        return totals
    finally:
        if own:
            client.close()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analyzer.distributed", description=__doc__.splitlines()[0])
    p.add_argument("captures", nargs="+", help="capture files, directories or globs (as the workers see them)")
    p.add_argument("--output", "-o", required=True, help="dataset directory (shared with the workers)")
    p.add_argument("--scheduler", help="dask scheduler address, e.g. tcp://host:8786 (default: a local cluster)")
    p.add_argument("--ca-bundle", action="append", default=[], help="extra trust anchors (PEM, repeatable)")
    p.add_argument("--keylog", action="append", default=[], help="NSS key log (repeatable)")
    a = p.parse_args(argv)
    try:
        totals = analyze_to_parquet(
            a.captures, a.output, scheduler=a.scheduler, ca_bundle=a.ca_bundle or None, keylog=a.keylog or None
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"tls-analyzer: {exc}", file=sys.stderr)
        return 2
    print(", ".join(f"{k}: {v}" for k, v in totals.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
