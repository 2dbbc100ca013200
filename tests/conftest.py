"""Shared fixtures: every test gets its own RECOPS_HOME; tiny data sets built in memory."""

from __future__ import annotations

import pandas as pd
import pytest

# torch first: metaflow's vendored typing_extensions patches `typing`, and a torch imported after
# it fails ("Type parameter ... without a default follows type parameter with a default"), so a
# worker's outcome would depend on which module it happened to import first.
import torch
import torch._dynamo  # noqa: F401  (torch imports it lazily, at the first optimizer: too late)

from tests.helpers import cycle_events

# Modules that run for minutes (longest first; measured with `make test --junitxml` on 2 cores).
# `make test` hands whole modules to workers in collection order (--dist loadfile
# --no-loadscope-reorder), so these start first: a long module picked last would run alone on
# one worker while the others sit idle (test_aws_cycle.py, one test, used to be picked last).
LONG_MODULES = (
    "tests/faults/test_cycle_kills.py",
    "tests/integration/test_continuous_training.py",
    "tests/faults/test_registry_races.py",
    "tests/integration/test_reconcile.py",
    "tests/faults/test_full_disk.py",
    "tests/e2e/test_notebooks.py",
    "tests/faults/test_mlflow_down.py",
    "tests/faults/test_prefect_down.py",
    "tests/integration/test_aws_cycle.py",
    "tests/integration/test_terraform_emulator.py",
    "tests/integration/test_train_flow.py",
    "tests/integration/test_tune_flow.py",
    "tests/e2e/test_cli.py",
)


def pytest_collection_modifyitems(config, items):
    first = {module: rank for rank, module in enumerate(LONG_MODULES)}
    items.sort(key=lambda item: first.get(item.nodeid.partition("::")[0], len(first)))  # stable


@pytest.fixture(autouse=True, scope="session")
def no_outside_state():
    """Tests never read or write the developer's stores (`make` exports Metaflow's root)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("METAFLOW_DATASTORE_SYSROOT_LOCAL", "MLFLOW_TRACKING_URI", "BENTOML_HOME"):
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(autouse=True)
def recops_home(tmp_path, monkeypatch):
    home = tmp_path / "recops-home"
    monkeypatch.setenv("RECOPS_HOME", str(home))
    monkeypatch.setenv("USERNAME", "pytest")
    return home


@pytest.fixture
def cycle_frame() -> pd.DataFrame:
    return cycle_events()
