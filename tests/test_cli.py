"""The command line as a user runs it: formats, errors, exit codes, and the empty-result schema."""

from __future__ import annotations

import csv
import io
import json
import pathlib
import subprocess
import sys

import pandas as pd
from conftest import SAMPLES

import analyzer
from analyzer import schema

SAMPLE = SAMPLES / "no-shared-cipher.pcapng"
REQUIRED = [c.name for c in schema.HANDSHAKES[:19]]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analyzer.cli", *args], capture_output=True, text=True, timeout=120)


def test_csv_starts_with_the_interface_columns_and_neutralises_formulas(tmp_path: pathlib.Path) -> None:
    run = cli("analyze", str(SAMPLE), "--format", "csv")
    assert run.returncode == 0, run.stderr
    rows = list(csv.reader(io.StringIO(run.stdout)))
    assert rows[0][: len(REQUIRED)] == REQUIRED
    assert len(rows) - 1 == len(analyzer.analyze(SAMPLE).handshakes)
    from analyzer.cli import neutralise

    assert (
        neutralise("=HYPERLINK(1)") == "'=HYPERLINK(1)" and neutralise("-2+3") == "'-2+3" and neutralise("ok") == "ok"
    )


def test_json_and_parquet_round_trip(tmp_path: pathlib.Path) -> None:
    run = cli("analyze", str(SAMPLE), "--format", "json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data and set(REQUIRED) <= set(data[0]) and data[0]["failure_cause"] == "no_shared_cipher"
    out = tmp_path / "h.parquet"
    run = cli("analyze", str(SAMPLE), "--format", "parquet", "--output", str(out))
    assert run.returncode == 0, run.stderr
    back = pd.read_parquet(out)
    assert list(back.columns[: len(REQUIRED)]) == REQUIRED and len(back) == len(data)


def test_table_output_has_summary() -> None:
    run = cli("analyze", str(SAMPLE))
    assert run.returncode == 0 and "no_shared_cipher" in run.stdout and "failed" in run.stdout


def test_bad_usage_exits_2_in_one_line(tmp_path: pathlib.Path) -> None:
    for args in (["analyze", str(tmp_path / "missing.pcap")], ["analyze", str(SAMPLE), "--format", "parquet"]):
        run = cli(*args)
        assert run.returncode == 2 and "Traceback" not in run.stderr
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_empty_result_keeps_the_schema(tmp_path: pathlib.Path) -> None:
    from forge import pcap

    udp = (
        bytes(12) + b"\x08\x00" + bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]) + bytes(8)
    )
    p = tmp_path / "udp.pcap"
    p.write_bytes(pcap([(1_700_000_000_000_000_000, udp)]))
    r = analyzer.analyze(p)
    for name, columns in schema.TABLES.items():
        df = getattr(r, name)
        assert list(df.columns) == [c.name for c in columns] and len(df) == 0
        for c in columns:
            assert str(df[c.name].dtype) == c.dtype or (c.dtype == "string" and str(df[c.name].dtype) == "string")
    assert "no TLS connections" in cli("analyze", str(p)).stdout


def test_streamed_files_equal_the_api_exports_and_failures_leave_no_file(tmp_path: pathlib.Path) -> None:
    """csv/json/jsonl are written row by row as connections are diagnosed (memory does not hold the
    rows); the text must be exactly what the API's exporters write for the whole table."""
    from analyzer.report.export import write_csv, write_json, write_jsonl

    capture = SAMPLES / "incident-mixed.pcapng"
    root = SAMPLES / "gen" / "pki" / "root.pem"
    result = analyzer.analyze(capture, ca_bundle=[root])
    assert len(result.columns["handshakes"]["conn_id"]) > 50
    for fmt, writer in (("csv", write_csv), ("json", write_json), ("jsonl", write_jsonl)):
        expected = io.StringIO()
        writer(result, expected)
        out = tmp_path / f"rows.{fmt}"
        run = cli("analyze", str(capture), "--ca-bundle", str(root), "--format", fmt, "--output", str(out))
        assert run.returncode == 0, run.stderr
        assert out.read_text(encoding="utf-8") == expected.getvalue(), fmt
    not_a_capture = tmp_path / "notes.txt"
    not_a_capture.write_text("not a capture\n")
    out = tmp_path / "never.csv"
    run = cli("analyze", str(not_a_capture), "--format", "csv", "--output", str(out))
    assert run.returncode == 2 and "tls-analyzer:" in run.stderr
    assert not out.exists()
    run = cli("analyze", str(capture), "--format", "csv", "--output", str(tmp_path / "no" / "such" / "dir.csv"))
    assert run.returncode == 2 and "cannot write" in run.stderr
