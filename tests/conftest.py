"""Shared fixtures: every test gets its own RECOPS_HOME; tiny data sets built in memory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


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


def cycle_events(n_sessions: int = 300, n_items: int = 12, length: int = 8, seed: int = 0) -> pd.DataFrame:
    """Sessions that walk a fixed cycle of items (i -> i+1): the successor is always predictable."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        start = rng.integers(0, n_items)
        for t in range(length):
            rows.append((s, 100 + (start + t) % n_items, 1_000.0 * s + t))
    return pd.DataFrame(rows, columns=["session_id", "item_id", "timestamp"])


@pytest.fixture
def cycle_frame() -> pd.DataFrame:
    return cycle_events()
