"""A plain notebook promoted with `recops promote`, run as a Metaflow flow, gives the notebook's answer."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
FIXTURE = Path("tests/fixtures/notebooks/plain_pipeline.ipynb")  # relative: the flow header records it
FLOW_NAME = "PlainPipelineFlow"


def recops(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "recops.cli.main", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"recops {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture
def metaflow_env(tmp_path, monkeypatch):
    """A local datastore and metadata under tmp_path, for the flow's process and for this one."""
    root = tmp_path / "metaflow"
    env = {
        "USERNAME": "pytest",
        "METAFLOW_HOME": str(tmp_path / "metaflow-config"),
        "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(root),
        "METAFLOW_DEFAULT_DATASTORE": "local",
        "METAFLOW_DEFAULT_METADATA": "local",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return root


def notebook_result(notebook_path: Path, **overrides) -> object:
    """Run the notebook's code cells in order in one namespace, parameters overridden as papermill does."""
    notebook = nbformat.read(notebook_path, as_version=4)
    namespace: dict = {}
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if cell.cell_type != "code" or "skip" in tags:
            continue
        exec(compile(cell.source, f"<cell {cell.id}>", "exec"), namespace)
        if "parameters" in tags:
            namespace.update(overrides)
    return namespace["result"]


def latest_result(datastore_root: Path, monkeypatch) -> dict:
    import metaflow
    import metaflow.client.core as client
    from metaflow.plugins.datastores.local_storage import LocalStorage

    # The client keeps its provider and datastore root in globals; restore them after the test.
    monkeypatch.setattr(client, "current_metadata", False)
    monkeypatch.setattr(client, "current_namespace", False)
    monkeypatch.setattr(LocalStorage, "datastore_root", None)
    metaflow.metadata(f"local@{datastore_root}")
    metaflow.namespace(None)
    run = metaflow.Flow(FLOW_NAME).latest_run
    assert run.successful, f"run {run.id} did not finish"
    return run.data.result


# metaflow's vendored yaml imports PyYAML's `_yaml` shim, which warns on import.
def test_promoted_notebook_runs_as_a_flow_and_gives_the_notebook_result(tmp_path, metaflow_env, monkeypatch):
    flow = tmp_path / "flow.py"
    recops("promote", str(FIXTURE), "-o", str(flow))
    printed = recops("promote", str(FIXTURE)).stdout
    assert printed == flow.read_text()

    run = subprocess.run(
        [sys.executable, str(flow), "--no-pylint", "run", "--n_rows", "50"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    result = latest_result(metaflow_env, monkeypatch)

    assert result == notebook_result(REPO / FIXTURE, n_rows=50)

    # The same numbers straight from the notebook's formulas, with its defaults and n_rows=50.
    rng = np.random.default_rng(3)
    x = rng.normal(size=50)
    x = x - x.mean()
    y = 3.0 * x + 1.0 + rng.normal(scale=0.25, size=50)
    slope, intercept = np.polyfit(x, y, deg=1)
    residuals = y - (slope * x + intercept)
    assert result["label"] == "demo"
    assert result["slope"] == pytest.approx(slope) and result["intercept"] == pytest.approx(intercept)
    assert result["residuals"]["n"] == 50
    assert result["residuals"]["std"] == pytest.approx(np.std(residuals))
    json.dumps(result)  # plain Python numbers, not numpy scalars


def test_check_passes_after_promotion_and_fails_once_the_notebook_changes(tmp_path):
    notebook = tmp_path / "02_plain_pipeline.ipynb"
    shutil.copy(REPO / FIXTURE, notebook)
    flow = tmp_path / "flow.py"

    missing = recops("promote", str(notebook), "-o", str(flow), "--check", check=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr

    recops("promote", str(notebook), "-o", str(flow))
    assert "class PlainPipelineFlow(FlowSpec):" in flow.read_text()
    fresh = recops("promote", str(notebook), "-o", str(flow), "--check", check=False)
    assert fresh.returncode == 0 and "up to date" in fresh.stdout

    executed = nbformat.read(notebook, as_version=4)
    executed.cells[5].execution_count = 1
    executed.cells[5].outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran\n")]
    nbformat.write(executed, notebook)
    assert recops("promote", str(notebook), "-o", str(flow), "--check", check=False).returncode == 0

    executed.cells[5].source = executed.cells[5].source.replace("normal", "uniform")
    nbformat.write(executed, notebook)
    stale = recops("promote", str(notebook), "-o", str(flow), "--check", check=False)
    assert stale.returncode == 1
    assert "stale" in stale.stderr and "the notebook changed" in stale.stderr


def test_promotion_errors_exit_2_with_the_cell_named(tmp_path):
    install = nbformat.v4.new_code_cell("!pip install lightgbm", id="one", metadata={"tags": ["step:setup"]})
    path = tmp_path / "broken.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[install]), path)
    done = recops("promote", str(path), check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("error: cell 1 (step:setup): line 1 `!pip install lightgbm` is a shell")

    no_output = recops("promote", str(FIXTURE), "--check", check=False)
    assert no_output.returncode == 2 and "--output" in no_output.stderr
