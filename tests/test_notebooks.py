"""The notebooks in notebooks/ are stored without outputs and run top to bottom on this venv's Python."""

from __future__ import annotations

import json
import pathlib
import sys

import pytest
from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_two_notebooks_exist() -> None:
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "investigation.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs(path: pathlib.Path) -> None:
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, cell["source"]


@pytest.fixture()
def venv_kernel(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel spec that runs exactly this interpreter (never a 'python3' kernel of another Python found in the
    user's Jupyter paths), with matplotlib on Agg."""
    pytest.importorskip("ipykernel")
    spec = tmp_path / "kernels" / "tls-analyzer-test"
    spec.mkdir(parents=True)
    spec.joinpath("kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "tls-analyzer test",
                "language": "python",
                "env": {"MPLBACKEND": "Agg"},
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return "tls-analyzer-test"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: pathlib.Path, venv_kernel: str) -> None:
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name=venv_kernel,
        timeout=120,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError with the cell and traceback on any error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "Traceback" not in text
    if path.stem == "quickstart":
        html = [o for o in outputs if "text/html" in o.get("data", {})]
        assert any("TLS connection(s)" in o["data"]["text/html"] for o in html)  # the result's _repr_html_
    if path.stem == "investigation":
        assert "cert_expired" in text and "wrote " in text
