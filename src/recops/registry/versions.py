"""Reading the registry: versions, their aliases and tags, and what each version's run saved
(the checkpoint, the evaluation with the best simple baseline's ranks, the data profile).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

from recops.data.profile import DataProfile
from recops.paths import file_sha256
from recops.redact import redact
from recops.registry.store import (
    CHAMPION,
    CHECKPOINT_FILE,
    CHECKSUM_TAG,
    DATA_PROFILE_FILE,
    EVAL_DIR,
    MAX_SAVED_SESSIONS,
    MODEL_NAME,
    RANKS_FILE,
    SEQUENCE_IDS_FILE,
    SESSION_TAIL,
    TEST_SET_FILE,
    RegistryError,
    mlflow_client,
    tracking_uri,
)
from recops.training.checkpoint import Checkpoint

# Beside RANKS_FILE in eval/: the best simple baseline's test ranks (same sequences, same
# order) and what it was. Versions registered before baselines were saved have neither.
BASELINE_RANKS_FILE = "baseline_ranks.npy"
BASELINE_FILE = "baseline.json"  # {"name", "test_metrics", "valid_metrics", "valid_ndcg", "seconds"}


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


def _does_not_exist(exc: MlflowException) -> bool:
    """The store answered "no such thing" (not: the store could not be reached)."""
    return exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)


def alias_map(client: MlflowClient) -> dict[str, int]:
    """alias -> version for the registered model ({} when it does not exist yet). A store that
    cannot be read raises: an unreachable registry is not an empty one."""
    try:
        model = client.get_registered_model(MODEL_NAME)
    except MlflowException as exc:
        if not _does_not_exist(exc):
            raise
        return {}
    return {alias: int(version) for alias, version in model.aliases.items()}


def version_from_mlflow(
    client: MlflowClient, mv: Any, aliases: Mapping[str, int] | None = None
) -> ModelVersionInfo:
    aliases = alias_map(client) if aliases is None else aliases
    version = int(mv.version)
    return ModelVersionInfo(
        name=mv.name,
        version=version,
        run_id=mv.run_id or "",
        aliases=tuple(sorted(a for a, v in aliases.items() if v == version)),
        tags=dict(mv.tags or {}),
        source=mv.source or "",
    )


def alias_version(client: MlflowClient, alias: str) -> int | None:
    return alias_map(client).get(alias)


def version_info(client: MlflowClient, alias_or_version: str | int) -> ModelVersionInfo:
    ref = str(alias_or_version)
    if ref.isdigit():
        try:
            mv = client.get_model_version(MODEL_NAME, ref)
        except MlflowException as exc:
            raise RegistryError(f"{MODEL_NAME} has no version {ref}") from exc
    else:
        version = alias_version(client, ref)
        if version is None:
            raise RegistryError(f"{MODEL_NAME} has no version with alias {ref!r}")
        mv = client.get_model_version(MODEL_NAME, str(version))
    return version_from_mlflow(client, mv)


def get_version(alias_or_version: str | int) -> ModelVersionInfo:
    """A version by number (``3``, ``"3"``) or alias (``"champion"``)."""
    with mlflow_client() as client:
        return version_info(client, alias_or_version)


def list_versions() -> list[ModelVersionInfo]:
    """Every version of ``session-recommender``, oldest first ([] before the first registration)."""
    with mlflow_client() as client:
        aliases = alias_map(client)
        if not aliases and not _registered_model_exists(client):
            return []
        found = client.search_model_versions(f"name = '{MODEL_NAME}'")
        return sorted((version_from_mlflow(client, mv, aliases) for mv in found), key=lambda v: v.version)


def _registered_model_exists(client: MlflowClient) -> bool:
    try:
        client.get_registered_model(MODEL_NAME)
    except MlflowException as exc:
        if not _does_not_exist(exc):
            raise
        return False
    return True


def download_checkpoint(client: MlflowClient, version: ModelVersionInfo, dst: Path) -> Checkpoint:
    model_dir = client.get_model_version_download_uri(MODEL_NAME, str(version.version))
    path = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{model_dir.rstrip('/')}/artifacts/{CHECKPOINT_FILE}",
        dst_path=str(dst),
        tracking_uri=tracking_uri(),
    )
    verify_checksum(version, path)
    return Checkpoint.load(path)


class CorruptCheckpointError(RegistryError):
    """A version's stored checkpoint does not match the sha256 recorded when it was registered."""


def verify_checksum(version: ModelVersionInfo, path: str | Path) -> None:
    """Raise CorruptCheckpointError when ``path`` differs from the version's recorded sha256.
    Versions registered before checksums were recorded pass (nothing to compare with)."""
    expected = version.tags.get(CHECKSUM_TAG)
    if expected and (actual := file_sha256(path)) != expected:
        raise CorruptCheckpointError(
            f"the checkpoint of version {version.version} is corrupt: sha256 {actual[:19]}... differs "
            f"from {expected[:19]}... recorded at registration; roll back (`recops registry rollback`) "
            "or promote another version"
        )


def load_checkpoint(alias_or_version: str | int = CHAMPION) -> tuple[Checkpoint, ModelVersionInfo]:
    """Download a version's checkpoint and load it (what the Bento build and the gate use)."""
    with mlflow_client() as client, tempfile.TemporaryDirectory(prefix="recops-checkpoint-") as tmp:
        version = version_info(client, alias_or_version)
        return download_checkpoint(client, version, Path(tmp)), version


@dataclass(frozen=True)
class SavedBaseline:
    """The best simple baseline trained on a version's split at registration."""

    name: str
    ranks: np.ndarray  # per-sequence test ranks, over the version's test sequences in its order
    test_metrics: dict[str, float]
    valid_ndcg: dict[str, float]  # every baseline tried, by validation NDCG


@dataclass(frozen=True)
class SavedEvaluation:
    ranks: np.ndarray
    sequence_ids: list[Any]
    sessions: list[list[Any]] | None
    test_set: dict[str, list[Any]] | None  # {"histories", "targets"} in external item ids
    baseline: SavedBaseline | None = None  # None: none was trained when it was registered


def download_evaluation(client: MlflowClient, version: ModelVersionInfo, dst: Path) -> SavedEvaluation:
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
    return SavedEvaluation(ranks, ids, sessions, test_set, _saved_baseline(folder, version, len(ranks)))


def _saved_baseline(folder: Path, version: ModelVersionInfo, n_ranks: int) -> SavedBaseline | None:
    if not (folder / BASELINE_RANKS_FILE).is_file():
        return None
    about = json.loads((folder / BASELINE_FILE).read_text())
    ranks = np.load(folder / BASELINE_RANKS_FILE)
    if len(ranks) != n_ranks:  # registration checks this; a store edited since may not hold it
        raise RegistryError(
            f"version {version.version} saved {len(ranks)} baseline ranks for {n_ranks} test sequences; "
            "they cannot be paired"
        )
    return SavedBaseline(about["name"], ranks, dict(about["test_metrics"]), dict(about["valid_ndcg"]))


def load_data_profile(alias_or_version: str | int = CHAMPION) -> DataProfile | None:
    """The training-data profile saved with a version (None for versions registered without one).

    Only a profile that was never saved is None; a registry that cannot be read raises
    RegistryError, so drift detection fails loudly instead of being skipped."""
    with mlflow_client() as client, tempfile.TemporaryDirectory(prefix="recops-profile-") as tmp:
        version = version_info(client, alias_or_version)
        try:
            saved = {artifact.path for artifact in client.list_artifacts(version.run_id)}
            if DATA_PROFILE_FILE not in saved:
                return None
            path = client.download_artifacts(version.run_id, DATA_PROFILE_FILE, tmp)
        except (MlflowException, OSError) as exc:
            raise RegistryError(
                f"cannot read the data profile of version {version.version} (run {version.run_id}): "
                f"{redact(str(exc))}"
            ) from exc
        return DataProfile.from_json(Path(path).read_text())
