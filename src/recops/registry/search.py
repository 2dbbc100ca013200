"""A registered version's hyperparameter search, as lineage (TuneRecommenderFlow).

Recorded right after :func:`recops.registry.log_and_register`, on the version and its run:
version tags (``search_*``: trials, sampler, the best trial, its parameters and validation
NDCG), run params (``search.*``) and the whole search (:func:`recops.training.tune.search_lineage`:
the space, every trial's parameters and validation NDCG, the best) as the run artifact
``search.json``. A version without them was not the product of a search.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from mlflow.entities import Param
from mlflow.exceptions import MlflowException

from recops.registry.store import MODEL_NAME, RegistryError, mlflow_client
from recops.registry.versions import version_info

SEARCH_FILE = "search.json"


def search_tags(lineage: dict[str, Any]) -> dict[str, str]:
    """The version tags summarising a search (its best trial and how it was sampled)."""
    best = lineage["best"]
    return {
        "search_trials": str(len(lineage["trials"])),
        "search_sampler": str(lineage["sampler"]),
        "search_best_trial": str(best["number"]),
        "search_best_params": json.dumps(best["params"], sort_keys=True),
        "search_best_valid_ndcg": f"{best['valid_ndcg']:.6f}",
    }


def record_search(version: int, lineage: dict[str, Any]) -> None:
    """Attach a search's lineage to registered ``version`` (tags, run params, ``search.json``)."""
    with mlflow_client() as client, tempfile.TemporaryDirectory(prefix="recops-search-") as tmp:
        info = version_info(client, version)
        path = Path(tmp) / SEARCH_FILE
        path.write_text(json.dumps(lineage, indent=2, sort_keys=True) + "\n")
        client.log_artifact(info.run_id, str(path))
        params = {
            "search.sampler": lineage["sampler"],
            "search.seed": lineage["seed"],
            "search.trials": len(lineage["trials"]),
            "search.best_trial": lineage["best"]["number"],
        }
        client.log_batch(info.run_id, params=[Param(key, str(value)) for key, value in params.items()])
        for key, value in search_tags(lineage).items():
            client.set_model_version_tag(MODEL_NAME, str(version), key, value)


def load_search(alias_or_version: str | int) -> dict[str, Any] | None:
    """The search a version came from (``search.json``), or None for a version trained without one."""
    with mlflow_client() as client, tempfile.TemporaryDirectory(prefix="recops-search-") as tmp:
        info = version_info(client, alias_or_version)
        if "search_trials" not in info.tags:
            return None
        try:
            path = client.download_artifacts(info.run_id, SEARCH_FILE, tmp)
            return json.loads(Path(path).read_text())
        except (MlflowException, OSError, ValueError) as exc:
            raise RegistryError(f"version {info.version}: its {SEARCH_FILE} cannot be read: {exc}") from exc
