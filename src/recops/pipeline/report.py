"""Results of one TrainRecommenderFlow run, read with the Metaflow client (for the report notebook)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class RunResults:
    pathspec: str
    model: str
    dataset: str
    data_fingerprint: str
    metrics: dict[str, float]
    history: list[dict[str, float]]
    ranks: np.ndarray
    n_items: int
    examples: dict[str, Any]

    def metrics_table(self) -> pd.DataFrame:
        rows = {}
        for key, value in self.metrics.items():
            name, k = key.split("@")
            rows.setdefault(int(k), {})[name.upper()] = value
        return pd.DataFrame.from_dict(rows, orient="index").sort_index().rename_axis("K")


def load_run_results(run_pathspec: str) -> RunResults:
    """Artifacts of a run's ``train`` and ``evaluate`` steps (the run may still be going on)."""
    from metaflow import Run, namespace

    if not run_pathspec:
        raise ValueError("run_pathspec is empty: pass a run like TrainRecommenderFlow/3")
    namespace(None)
    run = Run(run_pathspec)
    train = run["train"].task.data
    evaluate = run["evaluate"].task.data
    return RunResults(
        pathspec=run_pathspec,
        model=train.checkpoint.model_name,
        dataset=train.checkpoint.dataset,
        data_fingerprint=train.checkpoint.data_fingerprint,
        metrics=evaluate.metrics,
        history=train.history,
        ranks=np.asarray(evaluate.ranks),
        n_items=len(train.checkpoint.vocab),
        examples=evaluate.examples,
    )
