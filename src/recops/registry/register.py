"""Registering a trained model: one MLflow run, one version of ``session-recommender``.

What one registration holds (:func:`log_and_register`): an MLflow run in experiment ``recops``
with params, per-epoch and test metrics, the checkpoint as a pyfunc model, and ``eval/``
artifacts (per-sequence test ranks and their sequence ids, the test histories with their
targets, and the best simple baseline's ranks on the same sequences) so that the gate can
compare two models on the same sequences, and ``data_profile.json`` (the training events'
:class:`DataProfile`) for drift checks. The run's model becomes a version with lineage tags,
the baseline's figures (``baseline_*``) and alias ``challenger``. A failure leaves nothing
registered.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException

from recops import __version__
from recops.data.profile import DataProfile
from recops.data.split import EvalSet
from recops.paths import file_sha256
from recops.redact import redact
from recops.registry.pyfunc import MODEL_CODE, model_signature, pip_requirements
from recops.registry.store import (
    CHALLENGER,
    CHECKPOINT_FILE,
    CHECKPOINT_KEY,
    CHECKSUM_TAG,
    DATA_PROFILE_FILE,
    EVAL_DIR,
    HISTORY_TAIL,
    MODEL_ARTIFACT,
    MODEL_NAME,
    RANKS_FILE,
    REPORT_ARTIFACT,
    SEQUENCE_IDS_FILE,
    TEST_SET_FILE,
    RegistryError,
    credentials_refused,
    mlflow_client,
    recops_experiment_id,
    refused_status,
    tracking_uri,
)
from recops.registry.versions import (
    BASELINE_FILE,
    BASELINE_RANKS_FILE,
    ModelVersionInfo,
    version_from_mlflow,
)
from recops.training.checkpoint import Checkpoint
from recops.training.evaluate import EvalResult

if TYPE_CHECKING:  # its module imports the training loop; the registry only reads the result
    from recops.training.baselines import BaselineResult

METRIC_BATCH = 1000  # MLflow's limit of metrics per log_batch call


def log_and_register(
    checkpoint: Checkpoint,
    history: Sequence[Any],
    test_ranks: EvalResult,
    lineage: Mapping[str, str],
    *,
    test_set: EvalSet | None = None,
    data_profile: DataProfile | None = None,
    baseline: BaselineResult | None = None,
    report: Mapping[str, Any] | None = None,
) -> ModelVersionInfo:
    """Log one run and register its model as a new version of ``session-recommender``.

    ``history``: the training epochs (``EpochStats`` or their ``asdict``), ``test_ranks``: the
    test evaluation with its sequence ids, ``lineage``: tags such as ``metaflow_pathspec``,
    ``git_commit`` (``data_fingerprint``, ``dataset`` and ``model`` come from the checkpoint).
    ``test_set``, when given, saves the test histories for the gate's behavioural checks and
    for ranking the champion on this version's test split when the data changed;
    ``data_profile`` describes the training events for drift checks (:func:`load_data_profile`).
    ``baseline``, when given (:func:`recops.training.baselines.baseline_to_beat`, trained on the
    same split before this call), saves its test ranks for the gate and its figures as tags.
    ``report``, the executed evaluation-report notebook, goes with the version as
    :data:`REPORT_ARTIFACT` (:func:`log_report` replaces it when the report is re-rendered).

    The new version gets alias ``challenger``. All or nothing: on any failure the run is marked
    FAILED, a version already created is deleted, no alias moves, and RegistryError is raised.
    """
    tags = _version_tags(checkpoint, test_ranks, lineage, baseline)
    sequence_ids = _json_ids(test_ranks.sequence_ids)
    if len(test_ranks.ranks) == 0 or len(sequence_ids) != len(test_ranks.ranks):
        raise RegistryError(
            f"test ranks need one sequence id each (got {len(test_ranks.ranks)} ranks, "
            f"{len(sequence_ids)} ids): the gate pairs models by sequence"
        )
    if test_set is not None and _json_ids(test_set.sequence_ids) != sequence_ids:
        raise RegistryError("test_set and test_ranks are not over the same sequences")
    if baseline is not None and (
        _json_ids(baseline.test.sequence_ids) != sequence_ids or len(baseline.test.ranks) != len(sequence_ids)
    ):
        raise RegistryError(
            f"the {baseline.name} baseline was not evaluated on the same test sequences as the model; "
            "train it on the same split"
        )
    run_name = f"{checkpoint.model_name}-{checkpoint.dataset or 'data'}"
    with mlflow_client() as client, tempfile.TemporaryDirectory(prefix="recops-register-") as tmp:
        experiment_id = recops_experiment_id(client)
        _ensure_registered_model(client)
        run_id, version = "", None
        try:
            with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
                run_id = run.info.run_id
                _log_params_and_metrics(client, run_id, checkpoint, history, test_ranks, baseline)
                eval_dir = _write_eval(
                    Path(tmp) / EVAL_DIR, test_ranks, sequence_ids, checkpoint, test_set, baseline
                )
                client.log_artifacts(run_id, str(eval_dir), EVAL_DIR)
                if data_profile is not None:
                    profile = Path(tmp) / DATA_PROFILE_FILE
                    profile.write_text(data_profile.to_json())
                    client.log_artifact(run_id, str(profile))
                if report is not None:
                    log_report(client, run_id, report, Path(tmp))
                model_info, digest = _log_model(checkpoint, Path(tmp))
                version = client.create_model_version(
                    MODEL_NAME,
                    source=model_info.model_uri,
                    run_id=run_id,
                    tags={**tags, CHECKSUM_TAG: digest},
                    description=_description(checkpoint),
                    model_id=model_info.model_id,
                )
                client.set_registered_model_alias(MODEL_NAME, CHALLENGER, version.version)
        except BaseException as exc:
            _undo_registration(client, run_id, version)
            if not isinstance(exc, Exception):
                raise
            what = f"run {run_id} marked FAILED" if run_id else "no run was started"
            if (status := refused_status(exc)) is not None:
                raise credentials_refused(tracking_uri(), status, f"nothing was registered ({what})") from exc
            raise RegistryError(
                f"registering {checkpoint.model_name} failed, nothing was registered ({what}): "
                f"{type(exc).__name__}: {redact(str(exc))}"
            ) from exc
        return version_from_mlflow(client, client.get_model_version(MODEL_NAME, version.version))


def log_report(client: Any, run_id: str, report: Mapping[str, Any], tmp: Path) -> None:
    """Log the executed report notebook to the version's MLflow run (replacing an earlier one)."""
    folder, _, name = REPORT_ARTIFACT.rpartition("/")
    path = tmp / name
    path.write_text(json.dumps(report))
    client.log_artifact(run_id, str(path), folder)


def _version_tags(
    checkpoint: Checkpoint, test: EvalResult, lineage: Mapping[str, str], baseline: BaselineResult | None
) -> dict[str, str]:
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
    if baseline is not None:
        tags.update(_baseline_tags(test, baseline))
    if source := checkpoint.warm_start.get("from"):
        tags["warm_started_from"] = str(source)
    return tags


def _baseline_tags(test: EvalResult, baseline: BaselineResult) -> dict[str, str]:
    """How far above the best simple baseline the model stands, readable without the artifacts
    (``recops registry list``); the gate decides on the saved ranks, not on these."""
    tags = {
        "baseline_model": baseline.name,
        "baseline_candidates": ",".join(f"{name}={ndcg:.4f}" for name, ndcg in baseline.valid_ndcg.items()),
    }
    for metric in ("ndcg@10", "hr@10"):
        if metric in baseline.test.metrics:
            tags[f"baseline_{_metric_name(metric)}"] = f"{baseline.test.metrics[metric]:.6f}"
    if "ndcg@10" in test.metrics and "ndcg@10" in baseline.test.metrics:
        lift = test.metrics["ndcg@10"] - baseline.test.metrics["ndcg@10"]  # NDCG points, not a ratio
        tags["baseline_lift_ndcg_10"] = f"{lift:+.6f}"
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
    client: MlflowClient,
    run_id: str,
    checkpoint: Checkpoint,
    history: Sequence[Any],
    test: EvalResult,
    baseline: BaselineResult | None,
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
    for name, figures in getattr(test, "slices", {}).items():  # recops.training.slices
        metrics += [
            Metric(f"test_slice_{name}_{_metric_name(k)}", float(v), now, 0) for k, v in figures.items()
        ]
    if baseline is not None:
        params["baseline.model"] = baseline.name
        metrics += [
            Metric(f"baseline_test_{_metric_name(k)}", float(v), now, 0)
            for k, v in baseline.test.metrics.items()
        ]
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
    folder: Path,
    test: EvalResult,
    ids: list[Any],
    checkpoint: Checkpoint,
    test_set: EvalSet | None,
    baseline: BaselineResult | None,
) -> Path:
    folder.mkdir(parents=True)
    np.save(folder / RANKS_FILE, np.asarray(test.ranks, dtype=np.int64))
    (folder / SEQUENCE_IDS_FILE).write_text(json.dumps(ids))
    if baseline is not None:  # same sequences, same order as RANKS_FILE (checked by the caller)
        np.save(folder / BASELINE_RANKS_FILE, np.asarray(baseline.test.ranks, dtype=np.int64))
        about = {
            "name": baseline.name,
            "test_metrics": baseline.test.metrics,
            "valid_metrics": baseline.valid_metrics,
            "valid_ndcg": baseline.valid_ndcg,
            "seconds": round(baseline.seconds, 3),
        }
        (folder / BASELINE_FILE).write_text(json.dumps(about))
    if test_set is not None:  # vocab items are plain Python, so JSON keeps their types
        full = {
            "histories": [checkpoint.vocab.decode(h[-HISTORY_TAIL:]) for h in test_set.inputs],
            "targets": checkpoint.vocab.decode(test_set.targets),
        }
        (folder / TEST_SET_FILE).write_text(json.dumps(full))
    return folder


def _log_model(checkpoint: Checkpoint, tmp: Path) -> tuple[Any, str]:
    """Log the pyfunc model; returns its info and the sha256 of the checkpoint file it holds."""
    path = checkpoint.save(tmp / CHECKPOINT_FILE)
    digest = file_sha256(path)
    example = pd.DataFrame(
        {"session": [list(checkpoint.vocab.items[:3])], "k": [min(5, len(checkpoint.vocab))]}
    )
    info = mlflow.pyfunc.log_model(
        name=MODEL_ARTIFACT,
        python_model=str(MODEL_CODE),  # models from code: nothing pickled
        artifacts={CHECKPOINT_KEY: str(path)},
        signature=model_signature(checkpoint),
        input_example=example,
        pip_requirements=pip_requirements(),
    )
    return info, digest


def _undo_registration(client: MlflowClient, run_id: str, version: Any) -> None:
    """Best effort: delete the half-made version and the run's logged model with its artifacts
    (an upload that failed, e.g. on a full disk, leaves a partial checkpoint.pt in the store),
    mark the run FAILED. Never masks the cause."""
    if version is not None:
        with suppress(Exception):  # the original error is the one to report
            client.delete_model_version(MODEL_NAME, version.version)
    if run_id:
        with suppress(Exception):
            _delete_logged_models(client, run_id)
        with suppress(Exception):
            client.set_terminated(run_id, "FAILED")


def _delete_logged_models(client: MlflowClient, run_id: str) -> None:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    for output in client.get_run(run_id).outputs.model_outputs or []:
        model = client.get_logged_model(output.model_id)
        get_artifact_repository(model.artifact_location).delete_artifacts()
        client.delete_logged_model(model.model_id)
