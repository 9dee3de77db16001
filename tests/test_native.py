"""The mypyc-compiled modules and their Python source give identical results (both paths are supported)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, SAMPLES, ZEEK_TRACES

from analyzer import analyze, native

ROOT_PEM = SAMPLES / "gen" / "pki" / "root.pem"

# every sample, with its client key log where one was recorded (decryption runs in the compiled
# observer too), plus the Zeek traces that are present (a different mix of stacks and oddities)
CASES = [(str(p), str(SAMPLES / "keylogs" / (p.name.split(".")[0] + ".keys"))) for p in sorted(SAMPLES.glob("*.pcap*"))]
CASES = [(p, k if os.path.exists(k) else None) for p, k in CASES]
CASES += [(str(p), None) for p in sorted(ZEEK_TRACES.glob("tls/*.pcap"))]

DUMP = """
import json, sys
from analyzer import analyze, native
out = {}
for path, keys in json.loads(sys.argv[1]):
    r = analyze(path, ca_bundle=[sys.argv[2]], keylog=keys)
    out[path] = {"tables": r.columns, "warnings": r.warnings}
print(json.dumps({"compiled": native.compiled(), "reason": native.PURE_REASON, "out": out}, default=str))
"""


def _tables(path: str, keys: str | None) -> dict[str, object]:
    r = analyze(path, ca_bundle=[str(ROOT_PEM)], keylog=keys)
    # through JSON like the other side, so both compare as the same plain values
    return json.loads(json.dumps({"tables": r.columns, "warnings": r.warnings}, default=str))  # type: ignore[no-any-return]


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler here")
def test_the_install_compiled_the_fast_path() -> None:
    """`pip install` builds the mypyc modules; a build that silently fell back to Python must not pass CI."""
    assert native.PURE_REASON is None or "TLS_ANALYZER_PURE" in native.PURE_REASON, native.PURE_REASON
    if native.PURE_REASON is None:
        assert native.compiled(), "analyzer.tls.observer is not compiled: see setup.py's output at install"


def test_python_source_gives_the_same_tables_as_the_compiled_modules() -> None:
    env = {**os.environ, "TLS_ANALYZER_PURE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", DUMP, json.dumps(CASES), str(ROOT_PEM)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
        check=True,
    )
    pure = json.loads(proc.stdout)
    assert pure["compiled"] is False and pure["reason"] == "TLS_ANALYZER_PURE is set"
    rows = 0
    for path, keys in CASES:
        here = _tables(path, keys)
        assert here == pure["out"][path], f"{os.path.basename(path)}: compiled and pure results differ"
        rows += len(here["tables"]["handshakes"]["conn_id"])  # type: ignore[index]
    assert rows > 400  # the comparison really covered the samples' connections
