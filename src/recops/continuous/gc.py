"""Bounded cost: prune what every cycle adds (snapshots, bentos and their models, MLflow model
versions with their runs' artifacts), keeping the newest ``keep`` of each and, always, whatever
the champion and the previous champion need.

Protected, whatever ``keep`` says: the champion and its previous champion (their model
versions, their bentos and models, the snapshots their data fingerprints name), the bento the
deployment record names, and the snapshot the incoming manifest starts from. Run under the
cycle lock (`recops gc` takes it; a cycle calls :func:`collect` while it holds it).

Crash safety: each deletion is of one whole item (a version, a bento, a snapshot file or S3
object), protected items are decided before anything is deleted, and a crash midway leaves
fewer items of the same kind, never a half-deleted one that something still points at.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from recops.config import Config
from recops.continuous.manifest import prune_snapshots
from recops.serving.deployment import read_deployment
from recops.store import open_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Collected:
    versions: list[int] = field(default_factory=list)
    bentos: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)

    def summary(self) -> str:
        versions = f"{len(self.versions)} model version(s)" + (f" {self.versions}" if self.versions else "")
        return (
            f"deleted {versions}, {len(self.bentos)} bento(s), {len(self.models)} BentoML model(s), "
            f"{len(self.snapshots)} snapshot(s)"
        )


def _protected_versions() -> tuple[list, set[int]]:
    from recops import registry

    versions = registry.list_versions()
    champion = next((v for v in versions if v.is_champion), None)
    protected: set[int] = set()
    if champion is not None:
        protected.add(champion.version)
        previous = registry.rollback_target()  # what `registry rollback` would restore
        if previous is not None:
            protected.add(previous)
    protected |= {v.version for v in versions if registry.CHALLENGER in v.aliases}
    return versions, protected


def collect(keep: int, config: Config | None = None) -> Collected:
    """Delete all but the newest ``keep`` model versions, bentos, models and snapshots (those of
    the store of ``config``, :func:`recops.store.open_store`), never a protected one (see the
    module docstring)."""
    if keep < 1:
        raise ValueError("keep at least one of each")
    from recops import registry
    from recops.serving.model_store import load_bentoml

    versions, protected = _protected_versions()
    newest = {v.version for v in sorted(versions, key=lambda v: v.version)[-keep:]}
    keep_versions = protected | newest
    fingerprints = {v.tags.get("data_fingerprint", "") for v in versions if v.version in keep_versions}
    deleted_versions = []
    with registry.mlflow_client() as client:
        for v in versions:
            if v.version not in keep_versions:
                client.delete_model_version(registry.MODEL_NAME, str(v.version))
                client.delete_run(v.run_id)  # its artifacts go with the next `mlflow gc`
                deleted_versions.append(v.version)

    bentoml = load_bentoml()
    deployed = (read_deployment() or {}).get("bento_tag")
    bentos = sorted(_listed(bentoml.bentos), key=lambda b: b.info.creation_time)
    keep_bentos = {str(b.tag) for b in bentos[-keep:]}
    keep_bentos |= {
        str(b.tag) for b in bentos if b.info.labels.get("model_version") in {str(v) for v in protected}
    }
    if deployed:
        keep_bentos.add(deployed)
    deleted_bentos, kept_models = [], set()
    for bento in bentos:
        if str(bento.tag) in keep_bentos:
            kept_models |= {str(m.tag) for m in bento.info.models}
        else:
            bentoml.bentos.delete(str(bento.tag))
            deleted_bentos.append(str(bento.tag))
    models = sorted(_listed(bentoml.models), key=lambda m: m.info.creation_time)
    keep_models = kept_models | {str(m.tag) for m in models[-keep:]}
    deleted_models = []
    for model in models:
        if str(model.tag) not in keep_models:
            bentoml.models.delete(str(model.tag))
            deleted_models.append(str(model.tag))

    snapshots = prune_snapshots({f for f in fingerprints if f}, store=open_store(config))
    result = Collected(deleted_versions, deleted_bentos, deleted_models, snapshots)
    log.info("gc: %s", result.summary())
    return result


def _listed(store) -> list:
    from recops.serving.model_store import BENTO_MODEL_NAME, load_bentoml

    try:
        return list(store.list(BENTO_MODEL_NAME))
    except load_bentoml().exceptions.NotFound:
        return []
