"""Where the registry is, and the names everything in it goes by.

Where: ``$MLFLOW_TRACKING_URI`` when set (e.g. an ``mlflow server`` on PostgreSQL), else the
embedded default, a SQLite file with artifacts beside it under ``$RECOPS_HOME/mlflow``.
The registry URI is always the tracking URI.

Credentials: a server with MLflow's basic-auth app (infra/docker/mlflow/serve.py) takes
``$MLFLOW_TRACKING_USERNAME`` / ``$MLFLOW_TRACKING_PASSWORD`` (or ``$MLFLOW_TRACKING_TOKEN``),
which MLflow's client reads itself. A call the server refuses (401, 403) is a
:class:`CredentialsRefusedError` naming the server (password masked) and those variables.
"""

from __future__ import annotations

import logging
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
from recops.redact import install_log_redaction, redact

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
REPORT_ARTIFACT = "report/evaluation_report.ipynb"  # the executed report notebook of a version
REPORT_HASH_TAG = "report_hash"  # sha256 of the report notebook it was rendered from


HISTORY_TAIL = 200  # most recent items kept of each test history (the longest model window)


MAX_SAVED_SESSIONS = 1000  # test histories kept for the gate's behavioural checks


SESSION_TAIL = 50  # most recent items kept of each saved history


class RegistryError(RecopsError):
    """A registry operation could not be done; the message says why and what to do instead."""


class CredentialsRefusedError(RegistryError):
    """The MLflow server refused this client's credentials (HTTP 401) or their permissions (403)."""


REFUSED_STATUSES = (401, 403)


def refused_status(exc: BaseException) -> int | None:
    """401 or 403 when ``exc``, or an exception it was raised from or while handling, is the
    MLflow server refusing the call: an ``MlflowException`` from the REST API, or an HTTP error
    of the artifact proxy (``requests.HTTPError``). None otherwise."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MlflowException):
            status = current.get_http_status_code()
        else:
            status = getattr(getattr(current, "response", None), "status_code", None)
        if status in REFUSED_STATUSES:
            return status
        current = current.__cause__ or current.__context__
    return None


def credentials_refused(uri: str, status: int, what: str = "") -> CredentialsRefusedError:
    """The error for a refused call to the server at ``uri``; ``what`` adds what was (not) done."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    who = f"user {user!r}" if user else "no user: MLFLOW_TRACKING_USERNAME is not set"
    remedy = "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
    if status == 403:
        remedy += (
            f" to a user with EDIT permission on {MODEL_NAME!r} and experiment {EXPERIMENT_NAME!r}, "
            "or have an MLflow admin grant it"
        )
    reason = "permission denied" if status == 403 else "not authenticated"
    detail = f"; {what}" if what else ""
    return CredentialsRefusedError(
        f"the MLflow server at {redact(uri)} refused the credentials ({who}; HTTP {status}, {reason}): "
        f"{remedy}{detail}"
    )


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
    become :class:`RegistryError` naming the store; any error that a refusal of the server
    caused (a RegistryError raised on one included) becomes :class:`CredentialsRefusedError`.
    """
    install_log_redaction(logging.getLogger("mlflow"))  # MLflow logs through its own handler
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
    except CredentialsRefusedError:
        raise
    except Exception as exc:
        if (status := refused_status(exc)) is not None:
            raise credentials_refused(uri, status) from exc
        if isinstance(exc, MlflowException):
            raise RegistryError(f"MLflow store {redact(uri)}: {redact(exc.message)}") from exc
        raise
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None = back to the environment
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
