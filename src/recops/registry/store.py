"""Where the registry is, and the names everything in it goes by.

Where: ``$MLFLOW_TRACKING_URI`` when set (e.g. an ``mlflow server`` on PostgreSQL), else the
embedded default, a SQLite file with artifacts beside it under ``$RECOPS_HOME/mlflow``.
The registry URI is always the tracking URI.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import mlflow.pyfunc
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from recops.errors import RecopsError
from recops.paths import recops_home

MODEL_NAME = "session-recommender"


CHAMPION = "champion"


CHALLENGER = "challenger"


EXPERIMENT_NAME = "recops"


MODEL_ARTIFACT = "model"  # the pyfunc model's name within its run


CHECKPOINT_KEY = "checkpoint"  # the checkpoint's key in the pyfunc model's artifacts


CHECKPOINT_FILE = "checkpoint.pt"
CHECKSUM_TAG = "checkpoint_sha256"  # verified whenever a checkpoint is downloaded (build, serve, gate)


EVAL_DIR = "eval"


RANKS_FILE = "test_ranks.npy"


SEQUENCE_IDS_FILE = "sequence_ids.json"


TEST_SET_FILE = "test_set.json"  # histories (external ids) and targets: re-ranking on other models


DATA_PROFILE_FILE = "data_profile.json"


HISTORY_TAIL = 200  # most recent items kept of each test history (the longest model window)


MAX_SAVED_SESSIONS = 1000  # test histories kept for the gate's behavioural checks


SESSION_TAIL = 50  # most recent items kept of each saved history


class RegistryError(RecopsError):
    """A registry operation could not be done; the message says why and what to do instead."""


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else the embedded SQLite store under ``$RECOPS_HOME/mlflow``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{recops_home() / 'mlflow' / 'mlflow.db'}"


def artifact_root() -> Path:
    """Where a SQLite-backed store keeps artifacts (a server decides its own)."""
    return recops_home() / "mlflow" / "artifacts"


def _sqlite_path(uri: str) -> Path | None:
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri == prefix + ":memory:":
        return None
    return Path(uri[len(prefix) :])


@contextmanager
def mlflow_client() -> Iterator[MlflowClient]:
    """A client for :func:`tracking_uri` (registry URI = tracking URI).

    MLflow's fluent API (``log_model``, ``models:/`` downloads) reads process-wide URIs, so they
    are pointed at the same store for the duration and restored afterwards. MLflow errors
    become :class:`RegistryError` naming the store.
    """
    uri = tracking_uri()
    db = _sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    saved = {
        name: os.environ.get(name)
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    }
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in CLI output
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield MlflowClient(tracking_uri=uri, registry_uri=uri)
    except MlflowException as exc:
        raise RegistryError(f"MLflow store {_display_uri(uri)}: {exc.message}") from exc
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None = back to the environment
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _display_uri(uri: str) -> str:
    """The URI without a password, for messages."""
    scheme, sep, rest = uri.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        credentials, _, host = rest.partition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in credentials else uri
    return uri


def recops_experiment_id(client: MlflowClient) -> str:
    """Experiment ``recops``, created on first use; on SQLite its artifacts go under RECOPS_HOME."""
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        location = None
        if _sqlite_path(tracking_uri()) is not None:
            artifact_root().mkdir(parents=True, exist_ok=True)
            location = artifact_root().as_uri()
        try:
            return client.create_experiment(EXPERIMENT_NAME, artifact_location=location)
        except MlflowException:  # created concurrently by another process
            experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()
