"""Test data and switches shared by test modules (test modules never import each other).

``require_tool``: a test that needs a tool this machine may lack (terraform, PostgreSQL) skips
with the reason, except when ``RECOPS_REQUIRE_TOOLS=1`` (set by ``.ci/run``): then a missing
tool fails the test, so CI cannot pass by skipping what it was meant to check.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

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
