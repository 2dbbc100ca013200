"""The model registry: MLflow tracking and Model Registry. The only module that imports mlflow.

Where: ``$MLFLOW_TRACKING_URI`` when set (e.g. an ``mlflow server`` on PostgreSQL), else the
embedded default, a SQLite file with artifacts beside it under ``$RECOPS_HOME/mlflow``.
The registry URI is always the tracking URI.

What one registration holds (:func:`log_and_register`): an MLflow run in experiment ``recops``
with params, per-epoch and test metrics, the checkpoint as a pyfunc model whose ``predict`` is
:class:`recops.serving.recommender.Recommender`, and ``eval/`` artifacts (per-sequence test ranks and their
sequence ids, and the test histories with their targets) so that :func:`gate` can compare two
models on the same sequences, and ``data_profile.json`` (:class:`recops.continuous.drift.DataProfile` of
the training events) for drift checks. The run's model becomes a version of
``session-recommender`` with lineage tags and alias ``challenger``.

Champion history lives in version tags: whenever ``champion`` moves to a version, that version
gets ``champion_since`` (UTC time) and ``previous_champion`` (the version that held the alias
before, absent when none did). :func:`rollback` follows ``previous_champion`` from the current
champion, so rollbacks walk back through the promotions one at a time.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recops import __version__
from recops.config import GateConfig
from recops.continuous.drift import DataProfile
from recops.data.split import EvalSet
from recops.paths import recops_home
from recops.registry.gate_rules import GateDecision, behavioural_checks, decide
from recops.serving.recommender import Recommender
from recops.training.checkpoint import Checkpoint
from recops.training.evaluate import EvalResult

with warnings.catch_warnings():
    # mlflow 3.17 warns, while importing mlflow.pyfunc, about Any-typed fields of its own
    # request schemas (mlflow.types.responses); nothing of ours, and shown to every CLI user.
    warnings.filterwarnings("ignore", message=r".*Any type hint is inferred as AnyType", category=UserWarning)
    import mlflow
    import mlflow.pyfunc
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Schema

MODEL_NAME = "session-recommender"
CHAMPION = "champion"
CHALLENGER = "challenger"
EXPERIMENT_NAME = "recops"
MODEL_ARTIFACT = "model"  # the pyfunc model's name within its run
CHECKPOINT_KEY = "checkpoint"  # the checkpoint's key in the pyfunc model's artifacts
CHECKPOINT_FILE = "checkpoint.pt"
EVAL_DIR = "eval"
RANKS_FILE = "test_ranks.npy"
SEQUENCE_IDS_FILE = "sequence_ids.json"
SESSIONS_FILE = "test_sessions.json"  # written by earlier versions; test_set.json holds them now
TEST_SET_FILE = "test_set.json"  # histories (external ids) and targets: re-ranking on other models
DATA_PROFILE_FILE = "data_profile.json"
HISTORY_TAIL = 200  # most recent items kept of each test history (the longest model window)
MAX_SAVED_SESSIONS = 1000  # test histories kept for the gate's behavioural checks
SESSION_TAIL = 50  # most recent items kept of each saved history
METRIC_BATCH = 1000  # MLflow's limit of metrics per log_batch call


class RegistryError(RuntimeError):
    """A registry operation could not be done; the message says why and what to do instead."""


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered model version, in plain Python types."""

    name: str
    version: int
    run_id: str
    aliases: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    source: str = ""

    @property
    def is_champion(self) -> bool:
        return CHAMPION in self.aliases


# -- where the store is ---------------------------------------------------------------------------


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


def _experiment_id(client: MlflowClient) -> str:
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


# -- the pyfunc model ---------------------------------------------------------------------------------


class RecommenderModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc flavour of a checkpoint: the very :class:`Recommender` evaluation uses.

    Input: a DataFrame with a ``session`` column (list of item ids, oldest first) and an
    optional ``k`` column (default 10, capped at the catalogue size). Output: one row per
    input row with ``items`` (recommended item ids, best first) and ``scores``.
    """

    def load_context(self, context: Any) -> None:
        self.recommender = Recommender(Checkpoint.load(context.artifacts[CHECKPOINT_KEY]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None):
        default_k = min(10, self.recommender.n_items)
        if "k" in model_input.columns:
            ks = [default_k if pd.isna(k) else int(k) for k in model_input["k"]]
        else:
            ks = [default_k] * len(model_input)
        sessions = [list(s) for s in model_input["session"]]
        rows: list[Any] = [None] * len(sessions)
        for k in sorted(set(ks)):  # one batch per distinct k
            positions = [i for i, row_k in enumerate(ks) if row_k == k]
            batch = self.recommender.recommend_batch([sessions[i] for i in positions], k)
            for i, result in zip(positions, batch, strict=True):
                rows[i] = ([item for item, _ in result.items], [score for _, score in result.items])
        return pd.DataFrame(rows, columns=["items", "scores"])


def _item_type(items: Sequence[Any]) -> DataType:
    if all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        return DataType.long
    if all(isinstance(i, str) for i in items):
        return DataType.string
    if all(isinstance(i, int | float) for i in items):
        return DataType.double
    raise RegistryError("item ids must all be integers or all strings to describe the model's input")


def model_signature(checkpoint: Checkpoint) -> ModelSignature:
    item = _item_type(checkpoint.vocab.items)
    return ModelSignature(
        inputs=Schema([ColSpec(Array(item), "session"), ColSpec(DataType.long, "k", required=False)]),
        outputs=Schema([ColSpec(Array(item), "items"), ColSpec(Array(DataType.double), "scores")]),
    )


def _pip_requirements() -> list[str]:
    import torch

    return [
        f"mlflow=={mlflow.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
        f"recops=={__version__}",
    ]


# -- registering ----------------------------------------------------------------------------------


def log_and_register(
    checkpoint: Checkpoint,
    history: Sequence[Any],
    test_ranks: EvalResult,
    lineage: Mapping[str, str],
    *,
    test_set: EvalSet | None = None,
    data_profile: DataProfile | None = None,
) -> ModelVersionInfo:
    """Log one run and register its model as a new version of ``session-recommender``.

    ``history``: the training epochs (``EpochStats`` or their ``asdict``), ``test_ranks``: the
    test evaluation with its sequence ids, ``lineage``: tags such as ``metaflow_pathspec``,
    ``git_commit`` (``data_fingerprint``, ``dataset`` and ``model`` come from the checkpoint).
    ``test_set``, when given, saves the test histories for the gate's behavioural checks and
    for ranking the champion on this version's test split when the data changed;
    ``data_profile`` describes the training events for drift checks (:func:`load_data_profile`).

    The new version gets alias ``challenger``. All or nothing: on any failure the run is marked
    FAILED, a version already created is deleted, no alias moves, and RegistryError is raised.
    """
    tags = _version_tags(checkpoint, test_ranks, lineage)
    sequence_ids = _json_ids(test_ranks.sequence_ids)
    if len(test_ranks.ranks) == 0 or len(sequence_ids) != len(test_ranks.ranks):
        raise RegistryError(
            f"test ranks need one sequence id each (got {len(test_ranks.ranks)} ranks, "
            f"{len(sequence_ids)} ids): the gate pairs models by sequence"
        )
    if test_set is not None and _json_ids(test_set.sequence_ids) != sequence_ids:
        raise RegistryError("test_set and test_ranks are not over the same sequences")
    run_name = f"{checkpoint.model_name}-{checkpoint.dataset or 'data'}"
    with mlflow_client() as client, tempfile.TemporaryDirectory(prefix="recops-register-") as tmp:
        experiment_id = _experiment_id(client)
        _ensure_registered_model(client)
        run_id, version = "", None
        try:
            with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
                run_id = run.info.run_id
                _log_params_and_metrics(client, run_id, checkpoint, history, test_ranks)
                eval_dir = _write_eval(Path(tmp) / EVAL_DIR, test_ranks, sequence_ids, checkpoint, test_set)
                client.log_artifacts(run_id, str(eval_dir), EVAL_DIR)
                if data_profile is not None:
                    profile = Path(tmp) / DATA_PROFILE_FILE
                    profile.write_text(data_profile.to_json())
                    client.log_artifact(run_id, str(profile))
                model_info = _log_model(checkpoint, Path(tmp))
                version = client.create_model_version(
                    MODEL_NAME,
                    source=model_info.model_uri,
                    run_id=run_id,
                    tags=tags,
                    description=_description(checkpoint),
                    model_id=model_info.model_id,
                )
                client.set_registered_model_alias(MODEL_NAME, CHALLENGER, version.version)
        except BaseException as exc:
            _undo_registration(client, run_id, version)
            if not isinstance(exc, Exception):
                raise
            what = f"run {run_id} marked FAILED" if run_id else "no run was started"
            raise RegistryError(
                f"registering {checkpoint.model_name} failed, nothing was registered ({what}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return _info(client, client.get_model_version(MODEL_NAME, version.version))


def _version_tags(checkpoint: Checkpoint, test: EvalResult, lineage: Mapping[str, str]) -> dict[str, str]:
    tags = {str(k): str(v) for k, v in lineage.items() if v is not None and str(v) != ""}
    own = {
        "data_fingerprint": checkpoint.data_fingerprint,
        "dataset": checkpoint.dataset,
        "model": checkpoint.model_name,
    }
    for key, value in own.items():
        if key in tags and value and tags[key] != value:
            raise RegistryError(
                f"lineage {key}={tags[key]!r} contradicts the checkpoint's {key}={value!r}; "
                "the checkpoint records what the model was trained on"
            )
        if value:
            tags[key] = value
    tags["n_test_sequences"] = str(len(test.ranks))
    if "ndcg@10" in test.metrics:
        tags["test_ndcg_10"] = f"{test.metrics['ndcg@10']:.6f}"
    tags["recops_version"] = checkpoint.recops_version or __version__
    return tags


def _description(checkpoint: Checkpoint) -> str:
    ndcg = checkpoint.metrics.get("test", {}).get("ndcg@10")
    figure = f": test NDCG@10 {ndcg:.4f}" if ndcg is not None else ""
    return f"{checkpoint.model_name} trained on {checkpoint.dataset or 'unnamed data'}{figure}"


def _ensure_registered_model(client: MlflowClient) -> None:
    try:
        client.get_registered_model(MODEL_NAME)
    except MlflowException:
        try:
            client.create_registered_model(
                MODEL_NAME,
                description="Session-based next-item recommender (recops). Aliases: champion = served, "
                "challenger = newest registered, waiting for the gate.",
            )
        except MlflowException:  # created concurrently
            client.get_registered_model(MODEL_NAME)


def _flatten(prefix: str, tree: Mapping[str, Any]) -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(f"{prefix}{key}.", value))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def _metric_name(name: str) -> str:
    return name.replace("@", "_")  # MLflow metric names: no '@'


def _log_params_and_metrics(
    client: MlflowClient, run_id: str, checkpoint: Checkpoint, history: Sequence[Any], test: EvalResult
) -> None:
    params = {
        "model_name": checkpoint.model_name,
        "dataset": checkpoint.dataset,
        "n_items": str(len(checkpoint.vocab)),
        **_flatten("model.", checkpoint.model_config),
        **_flatten("train.", checkpoint.train_config),
    }
    now = int(time.time() * 1000)
    eval_k = checkpoint.train_config.get("eval_k", 10)
    metrics = [Metric(f"test_{_metric_name(k)}", float(v), now, 0) for k, v in test.metrics.items()]
    for epoch in history:
        stats = asdict(epoch) if is_dataclass(epoch) else dict(epoch)
        step = int(stats["epoch"])
        metrics.append(Metric("train_loss", float(stats["loss"]), now, step))
        metrics.append(Metric(f"valid_ndcg_{eval_k}", float(stats["valid_ndcg"]), now, step))
    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
    for start in range(0, len(metrics), METRIC_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + METRIC_BATCH])


def _json_ids(ids: Sequence[Any]) -> list[Any]:
    """Sequence ids as JSON values (numpy scalars -> Python), so two runs' ids compare exactly."""
    return json.loads(json.dumps([i.item() if isinstance(i, np.generic) else i for i in ids]))


def _write_eval(
    folder: Path, test: EvalResult, ids: list[Any], checkpoint: Checkpoint, test_set: EvalSet | None
) -> Path:
    folder.mkdir(parents=True)
    np.save(folder / RANKS_FILE, np.asarray(test.ranks, dtype=np.int64))
    (folder / SEQUENCE_IDS_FILE).write_text(json.dumps(ids))
    if test_set is not None:  # vocab items are plain Python, so JSON keeps their types
        full = {
            "histories": [checkpoint.vocab.decode(h[-HISTORY_TAIL:]) for h in test_set.inputs],
            "targets": checkpoint.vocab.decode(test_set.targets),
        }
        (folder / TEST_SET_FILE).write_text(json.dumps(full))
    return folder


def _log_model(checkpoint: Checkpoint, tmp: Path) -> Any:
    path = checkpoint.save(tmp / CHECKPOINT_FILE)
    example = pd.DataFrame(
        {"session": [list(checkpoint.vocab.items[:3])], "k": [min(5, len(checkpoint.vocab))]}
    )
    return mlflow.pyfunc.log_model(
        name=MODEL_ARTIFACT,
        python_model=RecommenderModel(),
        artifacts={CHECKPOINT_KEY: str(path)},
        signature=model_signature(checkpoint),
        input_example=example,
        pip_requirements=_pip_requirements(),
    )


def _undo_registration(client: MlflowClient, run_id: str, version: Any) -> None:
    """Best effort: delete the half-made version, mark the run FAILED. Never masks the cause."""
    if version is not None:
        with suppress(Exception):  # the original error is the one to report
            client.delete_model_version(MODEL_NAME, version.version)
    if run_id:
        with suppress(Exception):
            client.set_terminated(run_id, "FAILED")


# -- reading --------------------------------------------------------------------------------------


def _aliases(client: MlflowClient) -> dict[str, int]:
    """alias -> version for the registered model ({} when it does not exist yet)."""
    try:
        model = client.get_registered_model(MODEL_NAME)
    except MlflowException:
        return {}
    return {alias: int(version) for alias, version in model.aliases.items()}


def _info(client: MlflowClient, mv: Any, aliases: Mapping[str, int] | None = None) -> ModelVersionInfo:
    aliases = _aliases(client) if aliases is None else aliases
    version = int(mv.version)
    return ModelVersionInfo(
        name=mv.name,
        version=version,
        run_id=mv.run_id or "",
        aliases=tuple(sorted(a for a, v in aliases.items() if v == version)),
        tags=dict(mv.tags or {}),
        source=mv.source or "",
    )


def _alias_version(client: MlflowClient, alias: str) -> int | None:
    return _aliases(client).get(alias)


def _get_version(client: MlflowClient, alias_or_version: str | int) -> ModelVersionInfo:
    ref = str(alias_or_version)
    if ref.isdigit():
        try:
            mv = client.get_model_version(MODEL_NAME, ref)
        except MlflowException as exc:
            raise RegistryError(f"{MODEL_NAME} has no version {ref}") from exc
    else:
        version = _alias_version(client, ref)
        if version is None:
            raise RegistryError(f"{MODEL_NAME} has no version with alias {ref!r}")
        mv = client.get_model_version(MODEL_NAME, str(version))
    return _info(client, mv)


def get_version(alias_or_version: str | int) -> ModelVersionInfo:
    """A version by number (``3``, ``"3"``) or alias (``"champion"``)."""
    with mlflow_client() as client:
        return _get_version(client, alias_or_version)


def list_versions() -> list[ModelVersionInfo]:
    """Every version of ``session-recommender``, oldest first ([] before the first registration)."""
    with mlflow_client() as client:
        aliases = _aliases(client)
        if not aliases and not _registered_model_exists(client):
            return []
        found = client.search_model_versions(f"name = '{MODEL_NAME}'")
        return sorted((_info(client, mv, aliases) for mv in found), key=lambda v: v.version)


def _registered_model_exists(client: MlflowClient) -> bool:
    try:
        client.get_registered_model(MODEL_NAME)
    except MlflowException:
        return False
    return True


def _download_checkpoint(client: MlflowClient, version: ModelVersionInfo, dst: Path) -> Checkpoint:
    model_dir = client.get_model_version_download_uri(MODEL_NAME, str(version.version))
    path = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{model_dir.rstrip('/')}/artifacts/{CHECKPOINT_FILE}",
        dst_path=str(dst),
        tracking_uri=tracking_uri(),
    )
    return Checkpoint.load(path)


def load_checkpoint(alias_or_version: str | int = CHAMPION) -> tuple[Checkpoint, ModelVersionInfo]:
    """Download a version's checkpoint and load it (what the Bento build and the gate use)."""
    with mlflow_client() as client, tempfile.TemporaryDirectory(prefix="recops-checkpoint-") as tmp:
        version = _get_version(client, alias_or_version)
        return _download_checkpoint(client, version, Path(tmp)), version


@dataclass(frozen=True)
class _Evaluation:
    ranks: np.ndarray
    sequence_ids: list[Any]
    sessions: list[list[Any]] | None
    test_set: dict[str, list[Any]] | None  # {"histories", "targets"} in external item ids


def _download_evaluation(client: MlflowClient, version: ModelVersionInfo, dst: Path) -> _Evaluation:
    try:
        folder = Path(client.download_artifacts(version.run_id, EVAL_DIR, str(dst)))
        ranks = np.load(folder / RANKS_FILE)
        ids = json.loads((folder / SEQUENCE_IDS_FILE).read_text())
    except (MlflowException, OSError) as exc:
        raise RegistryError(
            f"version {version.version} has no saved test evaluation ({EVAL_DIR}/ in run {version.run_id}); "
            "it was not registered by recops.registry.log_and_register and cannot be gated"
        ) from exc
    test_set_file = folder / TEST_SET_FILE
    test_set = json.loads(test_set_file.read_text()) if test_set_file.is_file() else None
    sessions = None  # the behavioural checks' sessions: the test histories' most recent items
    if test_set is not None:
        sessions = [history[-SESSION_TAIL:] for history in test_set["histories"][:MAX_SAVED_SESSIONS]]
    elif (folder / SESSIONS_FILE).is_file():  # versions registered before test_set.json existed
        sessions = json.loads((folder / SESSIONS_FILE).read_text())
    return _Evaluation(ranks, ids, sessions, test_set)


def load_data_profile(alias_or_version: str | int = CHAMPION) -> DataProfile | None:
    """The training-data profile saved with a version (None for versions registered without one)."""
    with mlflow_client() as client, tempfile.TemporaryDirectory(prefix="recops-profile-") as tmp:
        version = _get_version(client, alias_or_version)
        try:
            path = client.download_artifacts(version.run_id, DATA_PROFILE_FILE, tmp)
        except (MlflowException, OSError):
            return None
        return DataProfile.from_json(Path(path).read_text())


# -- aliases: promote, roll back ------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _move_champion(client: MlflowClient, version: int, promoted_by: str) -> None:
    """Point ``champion`` at ``version``, recording who held it before (for rollback)."""
    aliases = _aliases(client)
    current = aliases.get(CHAMPION)
    if current == version:
        raise RegistryError(f"version {version} is already the champion")
    name, v = MODEL_NAME, str(version)
    if current is None:
        mv = client.get_model_version(name, v)
        if "previous_champion" in (mv.tags or {}):
            client.delete_model_version_tag(name, v, "previous_champion")
    else:
        client.set_model_version_tag(name, v, "previous_champion", str(current))
    client.set_model_version_tag(name, v, "champion_since", _now())
    client.set_model_version_tag(name, v, "promoted_by", promoted_by)
    client.set_registered_model_alias(name, CHAMPION, v)
    if aliases.get(CHALLENGER) == version:
        client.delete_registered_model_alias(name, CHALLENGER)


def set_alias(alias: str, version: int) -> ModelVersionInfo:
    """Point an alias other than ``champion`` at a version (champion moves only by promote/gate)."""
    if alias == CHAMPION:
        raise RegistryError(
            "champion moves only through the gate, promote(version, force=True) or rollback(), "
            "which record the previous champion"
        )
    with mlflow_client() as client:
        info = _get_version(client, version)
        client.set_registered_model_alias(MODEL_NAME, alias, str(info.version))
        return _get_version(client, info.version)


def promote(version: int, force: bool = False) -> ModelVersionInfo:
    """Make ``version`` the champion outside the gate's usual path.

    Without ``force`` only a version the gate approved may be promoted (e.g. to restore it
    after a rollback); ``force=True`` skips the gate and is recorded as ``promoted_by=force``.
    """
    with mlflow_client() as client:
        info = _get_version(client, version)
        decision = info.tags.get("gate_decision")
        if not force and decision != "promoted":
            verdict = f"the gate {decision} it" if decision else "it has not been through the gate"
            raise RegistryError(
                f"will not promote version {info.version}: {verdict}. Run `recops registry gate "
                f"--version {info.version}` to compare it with the champion, or pass --force to "
                "promote it without the comparison"
            )
        _move_champion(client, info.version, "force" if force else "promote")
        return _get_version(client, info.version)


def rollback() -> ModelVersionInfo:
    """Move ``champion`` back to the version that held it before the current one; returns it."""
    with mlflow_client() as client:
        current = _alias_version(client, CHAMPION)
        if current is None:
            raise RegistryError("there is no champion to roll back")
        info = _get_version(client, current)
        previous = info.tags.get("previous_champion")
        if not previous:
            raise RegistryError(
                f"version {current} became champion with no champion before it; nothing to roll back to"
            )
        try:
            client.get_model_version(MODEL_NAME, previous)
        except MlflowException as exc:
            raise RegistryError(
                f"the previous champion, version {previous}, no longer exists; "
                "promote a version explicitly with `recops registry promote VERSION --force`"
            ) from exc
        client.set_registered_model_alias(MODEL_NAME, CHAMPION, previous)
        client.set_model_version_tag(MODEL_NAME, str(current), "rolled_back_at", _now())
        client.set_model_version_tag(MODEL_NAME, str(current), "rolled_back_to", previous)
        return _get_version(client, previous)


# -- the gate -------------------------------------------------------------------------------------


def gate(version: int | None = None, config: GateConfig = GateConfig()) -> GateDecision:
    """Compare a challenger (``version``, else alias ``challenger``) with the champion.

    Both are compared on the challenger's held-out test split. When they were trained on the
    same data (same ``data_fingerprint``) that is the champion's own split too, and its saved
    ranks are used; when the data changed (continuous training on new events), the champion
    is ranked on the challenger's saved test histories and targets, as it would serve them
    (items it never saw rank last). The decision, its figures and reason are written to the
    challenger's tags (``gate_*``); on promotion ``champion`` moves to it and ``challenger``
    is removed from it.
    """
    with mlflow_client() as client, tempfile.TemporaryDirectory(prefix="recops-gate-") as tmp:
        if version is None and _alias_version(client, CHALLENGER) is None:
            raise RegistryError(
                "no challenger to gate: each registration gets alias challenger until it is gated "
                "into champion; register a model or name a version"
            )
        challenger = _get_version(client, CHALLENGER if version is None else version)
        champion_version = _alias_version(client, CHAMPION)
        if champion_version == challenger.version:
            raise RegistryError(f"version {challenger.version} is already the champion; nothing to gate")
        mine = _download_evaluation(client, challenger, Path(tmp) / "challenger")
        theirs = None
        if champion_version is not None:
            champion = _get_version(client, champion_version)
            theirs, evaluated_on = _champion_on_split(client, champion, challenger, mine, Path(tmp))
        checkpoint = _download_checkpoint(client, challenger, Path(tmp) / "model")
        recommender = Recommender(checkpoint)
        sessions = _check_sessions(checkpoint, mine.sessions, config)
        checks = behavioural_checks(recommender, sessions, config.k, config.latency_budget_ms)
        decision = decide(
            mine.ranks,
            None if theirs is None else theirs.ranks,
            checks,
            config.margin,
            k=config.k,
            resamples=config.resamples,
            seed=config.seed,
            confidence=config.confidence,
        )
        figures = {
            **decision.figures,
            "challenger_version": challenger.version,
            "champion_version": champion_version,
            "champion_evaluated_on": evaluated_on if theirs is not None else "",
            **{f"check_{c.name}": c.detail for c in checks},
        }
        decision = GateDecision(decision.promote, decision.reason, figures)
        _tag_decision(client, challenger.version, decision)
        if decision.promote:
            _move_champion(client, challenger.version, "gate")
        return decision


def _champion_on_split(
    client: MlflowClient,
    champion: ModelVersionInfo,
    challenger: ModelVersionInfo,
    mine: _Evaluation,
    tmp: Path,
) -> tuple[_Evaluation, str]:
    """The champion's per-sequence test ranks on the challenger's test split, and how they were got."""
    mine_fp, theirs_fp = challenger.tags.get("data_fingerprint"), champion.tags.get("data_fingerprint")
    if mine_fp and mine_fp == theirs_fp:
        theirs = _download_evaluation(client, champion, tmp / "champion")
        if theirs.sequence_ids != mine.sequence_ids or len(theirs.ranks) != len(mine.ranks):
            raise RegistryError(
                f"challenger version {challenger.version} and champion version {champion.version} "
                "have the same data fingerprint but different test sequences; they cannot be paired"
            )
        return theirs, "its own saved test ranks (same data)"
    if mine.test_set is None or len(mine.test_set["targets"]) != len(mine.ranks):
        raise RegistryError(
            f"challenger version {challenger.version} was trained on other data than champion version "
            f"{champion.version} (data_fingerprint {mine_fp or 'missing'} vs {theirs_fp or 'missing'}) "
            "and has no saved test set to rank the champion on; re-register it with its test set, "
            "or promote it with --force"
        )
    recommender = Recommender(_download_checkpoint(client, champion, tmp / "champion-model"))
    ranks = recommender.rank_targets(mine.test_set["histories"], mine.test_set["targets"])
    how = f"the challenger's test split (data changed: {theirs_fp or 'missing'} -> {mine_fp or 'missing'})"
    return _Evaluation(ranks, mine.sequence_ids, None, None), how


def _check_sessions(
    checkpoint: Checkpoint, saved: list[list[Any]] | None, config: GateConfig
) -> list[list[Any]]:
    """The saved test histories, else random sessions drawn from the vocabulary (seeded)."""
    if saved:
        return saved[: config.sessions]
    rng = np.random.default_rng(config.seed)
    items = checkpoint.vocab.items
    longest = max(1, min(SESSION_TAIL, len(items)))
    return [
        [items[i] for i in rng.integers(0, len(items), size=rng.integers(1, longest + 1))]
        for _ in range(config.sessions)
    ]


def _tag_decision(client: MlflowClient, version: int, decision: GateDecision) -> None:
    tags = {
        "gate_decision": "promoted" if decision.promote else "rejected",
        "gate_reason": decision.reason,
        "gate_at": _now(),
    }
    for key, value in decision.figures.items():
        if value is None or value == "":
            continue
        tags[f"gate_{key}"] = f"{value:.6f}" if isinstance(value, float) else str(value)
    stale = client.get_model_version(MODEL_NAME, str(version)).tags or {}
    for key in stale:
        if key.startswith("gate_") and key not in tags:  # figures of an earlier gating
            client.delete_model_version_tag(MODEL_NAME, str(version), key)
    for key, value in tags.items():
        client.set_model_version_tag(MODEL_NAME, str(version), key, value)
