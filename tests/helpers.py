"""Test data and switches shared by test modules (test modules never import each other).

``require_tool``: a test that needs a tool this machine may lack (terraform, PostgreSQL) skips
with the reason, except when ``RECOPS_REQUIRE_TOOLS=1`` (set by ``.ci/run``): then a missing
tool fails the test, so CI cannot pass by skipping what it was meant to check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from recops.config import GateConfig

if TYPE_CHECKING:
    from recops import registry
    from recops.training.experiment import PreparedData, TrainingReport

REQUIRE_TOOLS_ENV = "RECOPS_REQUIRE_TOOLS"

# Small models that still learn the synthetic patterns: config overrides for load_config.
TINY = {
    "sasrec.max_len": 10,
    "sasrec.hidden": 32,
    "sasrec.dropout": 0.1,
    "gru4rec.max_len": 10,
    "gru4rec.embedding": 32,
    "gru4rec.hidden": 32,
    "gru4rec.dropout": 0.1,
    "train.batch_size": 32,
    "sasrec.lr": 0.005,
    "gru4rec.lr": 0.005,
    "train.patience": 100,
}

# The same idea as a TOML file, for the flows and the retrain cycle (--config).
TINY_CONFIG = """
[data.synthetic]
n_sessions = 300
n_items = 60
[train]
epochs = 2
[sasrec]
max_len = 20
hidden = 32
[gate]
latency_budget_ms = 5000.0  # latency is the benchmark's business; CI shares two cores
# two epochs of SASRec lose to the simple baselines on this data; these tests are about the
# pipeline, and the baseline gate has its own (tests/integration/test_gate_baseline.py)
require_beat_baseline = false
"""


def cycle_events(n_sessions: int = 300, n_items: int = 12, length: int = 8, seed: int = 0) -> pd.DataFrame:
    """Sessions that walk a fixed cycle of items (i -> i+1): the successor is always predictable."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        start = rng.integers(0, n_items)
        for t in range(length):
            rows.append((s, 100 + (start + t) % n_items, 1_000.0 * s + t))
    return pd.DataFrame(rows, columns=["session_id", "item_id", "timestamp"])


def require_tool(available: bool, reason: str) -> None:
    """Skip (or, under RECOPS_REQUIRE_TOOLS=1, fail) when a tool the test needs is missing."""
    if available:
        return
    if os.environ.get(REQUIRE_TOOLS_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_TOOLS_ENV}=1: a missing tool fails instead of skipping)")
    pytest.skip(reason)


# --- a registry with trained models (tests/integration) ---

# Latency is not what these tests measure (the benchmark shares the 2 cores): a roomy budget.
GATE = GateConfig(latency_budget_ms=2000.0, sessions=30)
LINEAGE = {
    "git_commit": "0123abc",
    "metaflow_pathspec": "TrainRecommenderFlow/7",
    "source_notebook_hash": "nb1",
}


def prepared(seed: int = 0) -> PreparedData:
    from recops.data import build_interactions, leave_one_out_split, validate_events
    from recops.training.experiment import PreparedData

    inter = build_interactions(validate_events(cycle_events(seed=seed)))
    return PreparedData(f"cycle-{seed}", inter, leave_one_out_split(inter))


def untrained_report(data: PreparedData) -> TrainingReport:
    """An untrained SASRec checkpoint and its test evaluation: a challenger the gate rejects."""
    import torch

    from recops.config import load_config
    from recops.models import build_model
    from recops.training.checkpoint import Checkpoint
    from recops.training.evaluate import evaluate_model
    from recops.training.experiment import TrainingReport
    from recops.training.train import TrainResult

    cfg = load_config(overrides=TINY)
    torch.manual_seed(0)
    model = build_model("sasrec", cfg.sasrec, data.interactions.n_items)
    test = evaluate_model(model, data.split.test)
    checkpoint = Checkpoint.from_model(
        model,
        "sasrec",
        data.interactions.vocab,
        data_fingerprint=data.interactions.fingerprint,
        dataset=data.dataset,
        metrics={"test": test.metrics},
    )
    return TrainingReport(checkpoint, TrainResult(model), test)


def register(
    report: TrainingReport, data: PreparedData, with_sessions: bool = True, **lineage: str
) -> registry.ModelVersionInfo:
    """Register with the test histories saved (the gate's checks run on them), or without
    (the checks run on sessions sampled from the vocabulary)."""
    from recops import registry

    test_set = data.split.test if with_sessions else None
    lineage = {**LINEAGE, **lineage}
    return registry.log_and_register(
        report.checkpoint, report.train.history, report.test, lineage, test_set=test_set
    )


@contextmanager
def module_registry_home(home: Path) -> Iterator[Path]:
    """One embedded store for a whole test module (MLflow's schema migrations take seconds),
    torch on one thread (two busy cores: more threads only oversubscribe them)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECOPS_HOME", str(home))
        patch.setenv("USERNAME", "pytest")
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield home
    torch.set_num_threads(threads)


def delete_registered_model() -> None:
    """Empty the registry of the current store, so each test starts from no versions."""
    from recops import registry
    from recops.registry import MODEL_NAME

    with registry.mlflow_client() as client:
        if client.search_registered_models(f"name = '{MODEL_NAME}'"):
            client.delete_registered_model(MODEL_NAME)


def isolated_flow_env(workdir: Path) -> dict[str, str]:
    """This environment with Metaflow's datastore and metadata, MLflow and BentoML state all
    inside workdir (a flow run a test starts)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METAFLOW_", "MLFLOW_", "BENTOML_"))}
    return {
        **env,
        "USERNAME": "pytest",
        "RECOPS_HOME": str(workdir / "home"),
        "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(workdir),
    }


def metaflow_client(workdir: Path, code: str, env: dict[str, str]) -> Any:
    """Run Metaflow Client code in a fresh process in workdir (``json``, ``Flow``, ``Run``
    imported, every namespace visible); the code prints JSON as its last line."""
    prelude = "import json\nfrom metaflow import Flow, Run, namespace\nnamespace(None)\n"
    command = [sys.executable, "-c", prelude + code]
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"client failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def copy_of_the_specs(into: Path, *parts: str) -> Path:
    """A tree holding copies of the checkout's deploy specs (``parts``: paths relative to the
    repository, files or folders), with ``src`` linked in so their entrypoints load; for tests
    that edit a spec and watch a check (recops.cicd) fail."""
    import shutil

    repo = Path(__file__).resolve().parents[1]
    for part in parts:
        source, target = repo / part, into / part
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy(source, target)
    (into / "src").symlink_to(repo / "src")
    return into
