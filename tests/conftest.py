"""Shared fixtures: every test gets its own RECOPS_HOME; tiny data sets built in memory."""

from __future__ import annotations

import os

# One torch (OpenMP) thread per process, set before torch is imported and inherited by every flow,
# cycle and server a test starts: three workers share two cores, and torch's default of a thread
# per core makes their threads spin against each other (three concurrent 3-epoch SASRec trainings
# took 82 s with the default and 26 s with one thread each, the same figures either way).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd
import pytest

# torch first: metaflow's vendored typing_extensions patches `typing`, and a torch imported after
# it fails ("Type parameter ... without a default follows type parameter with a default"), so a
# worker's outcome would depend on which module it happened to import first.
import torch
import torch._dynamo  # noqa: F401  (torch imports it lazily, at the first optimizer: too late)

from tests.helpers import cycle_events


@pytest.fixture(autouse=True, scope="session")
def no_outside_state(tmp_path_factory):
    """Tests never read or write the developer's stores (`make` exports Metaflow's root and
    RECOPS_HOME). Module-scoped fixtures start before a test's own RECOPS_HOME is set, so until
    then the session's is: a server a module starts writes its served-list log there, not into
    the developer's `.recops/served`."""
    with pytest.MonkeyPatch.context() as patch:
        for name in (
            "METAFLOW_DATASTORE_SYSROOT_LOCAL",
            "MLFLOW_TRACKING_URI",
            "BENTOML_HOME",
            "RECOPS_STORE",
        ):
            patch.delenv(name, raising=False)
        patch.setenv("RECOPS_HOME", str(tmp_path_factory.mktemp("session-recops-home")))
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


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory) -> pd.DataFrame:
    """MovieLens-100k's validated events (RecBole's wheel copy); skips when PyPI is out of reach."""
    from recops.config import load_config
    from recops.data import load_events
    from recops.data.movielens import RECBOLE_MEMBER

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECOPS_HOME", str(tmp_path_factory.mktemp("ml100k-home")))
        try:
            return load_events("ml-100k:recbole", load_config().data)
        except Exception as exc:
            pytest.skip(f"cannot fetch {RECBOLE_MEMBER} from PyPI: {exc}")
