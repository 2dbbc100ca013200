"""``recops bench quality``: train each model on one data set and report quality and speed."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from recops.config import BASELINES, Config, TrainConfig
from recops.training.experiment import prepare_data, train_and_evaluate
from recops.training.train import EpochStats

QUALITY_KEYS = ("ndcg@10", "hr@10", "mrr@10")


def bench_quality(
    dataset: str,
    models: list[str],
    config: Config,
    seeds: list[int],
    on_epoch: Callable[[str, int, EpochStats], Any] | None = None,
) -> dict[str, Any]:
    """One JSON-ready object: per model, test metrics and training time (means over seeds, and
    the spread of NDCG@10 across them); with simple baselines among ``models``, the best of them
    by NDCG@10 and every other model's ratio to it (``vs_best_baseline``)."""
    data = prepare_data(dataset, config)
    out: dict[str, Any] = {
        "dataset": dataset,
        "data_fingerprint": data.interactions.fingerprint,
        "n_test_sequences": len(data.split.test),
        "seeds": seeds,
        "models": {},
    }
    for model in models:
        runs = []
        for seed in seeds:
            train = TrainConfig(**{**config.train.model_dump(), "seed": seed})  # validated, unlike model_copy
            cfg = config.model_copy(update={"train": train})
            callback = (lambda s, m=model, sd=seed: on_epoch(m, sd, s)) if on_epoch else None
            report = train_and_evaluate(data, model, cfg, on_epoch=callback)
            runs.append(
                {
                    "seed": seed,
                    **{k: report.test.metrics[k] for k in QUALITY_KEYS},
                    "epochs": report.train.epochs_run,
                    "best_epoch": report.train.best_epoch,
                    "train_seconds": report.train.train_seconds,
                    "seconds_per_epoch": report.train.seconds_per_epoch,
                }
            )
        summary = {
            key: round(statistics.fmean(r[key] for r in runs), 6)
            for key in (*QUALITY_KEYS, "epochs", "train_seconds", "seconds_per_epoch")
        }
        summary["ndcg@10_std"] = (
            round(statistics.stdev(r["ndcg@10"] for r in runs), 6) if len(runs) > 1 else 0.0
        )
        summary["runs"] = runs
        out["models"][model] = summary
    baselines = [m for m in models if m in BASELINES]
    if baselines:
        best = max(baselines, key=lambda m: out["models"][m]["ndcg@10"])
        out["best_baseline"] = best
        for model in models:
            if model not in BASELINES and out["models"][best]["ndcg@10"] > 0:
                ratio = out["models"][model]["ndcg@10"] / out["models"][best]["ndcg@10"]
                out["models"][model]["vs_best_baseline"] = round(ratio, 4)
    return out
