"""analyzer.distributed on a dask LocalCluster: the Parquet dataset holds exactly the rows of local runs."""

from __future__ import annotations

import pathlib
import shutil

import pandas as pd
import pytest

import analyzer

distributed = pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

from analyzer.distributed import analyze_to_parquet  # noqa: E402

SAMPLES = pathlib.Path(__file__).resolve().parent.parent / "samples"
NAMES = ("cert-expired.pcap", "cert-wronghost.pcap", "protocol-version.pcap", "go-ok.pcap")


def test_local_cluster_writes_a_partitioned_dataset_equal_to_local_runs(tmp_path: pathlib.Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for n in NAMES:
        shutil.copy(SAMPLES / n, src / n)
    out = tmp_path / "ds"
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl,
        distributed.Client(cl) as client,
    ):
        totals = analyze_to_parquet([str(src)], str(out), client=client)
    assert totals["files"] == 4 and totals["tasks"] == 4
    got = pd.read_parquet(out / "handshakes")
    want = pd.concat([analyzer.analyze(src / n).handshakes for n in NAMES], ignore_index=True)
    assert totals["handshakes"] == len(want) == len(got) > 20
    key = ["conn_id", "outcome", "failure_cause", "sni", "server_port"]
    g = got[key].astype(str).sort_values("conn_id").reset_index(drop=True)
    w = want[key].astype(str).sort_values("conn_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(g, w)
    # Hive partitions: one directory per day, one per server under it
    days = sorted(p.name for p in (out / "handshakes").iterdir())
    assert days and all(d.startswith("day=20") for d in days)
    assert any(p.name.startswith("server=") for p in (out / "handshakes" / days[0]).iterdir())
    alerts = pd.read_parquet(out / "alerts")
    assert set(alerts["conn_id"]) <= set(got["conn_id"]) and len(alerts) > 0
