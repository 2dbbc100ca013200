"""The MLflow pyfunc flavour of a checkpoint: ``predict`` is the very Recommender evaluation uses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, DataType, Schema

from recops import __version__
from recops.registry.store import CHECKPOINT_KEY, RegistryError
from recops.serving.recommender import Recommender
from recops.training.checkpoint import Checkpoint

# What log_model is given: the file that builds RecommenderModel (MLflow's models from code)
MODEL_CODE = Path(__file__).with_name("pyfunc_code.py")


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


def pip_requirements() -> list[str]:
    import torch

    return [
        f"mlflow=={mlflow.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
        f"recops=={__version__}",
    ]
