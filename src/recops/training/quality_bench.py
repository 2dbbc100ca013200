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
    losses: list[str] | None = None,
) -> dict[str, Any]:
    """One JSON-ready object: per model, test metrics and training time (means over seeds, and
    the spread of NDCG@10 across them); with simple baselines among ``models``, the best of them
    by NDCG@10 and every other model's ratio to it (``vs_best_baseline``).

    With ``losses`` (``[train] loss`` values) each trained network runs once per loss, as
    ``sasrec/sampled`` and so on, each with its NDCG@10 ratio to the first loss's
    (``vs_<first loss>``): the objectives side by side on the same data and seeds."""
    data = prepare_data(dataset, config)
    out: dict[str, Any] = {
        "dataset": dataset,
        "data_fingerprint": data.interactions.fingerprint,
        "n_test_sequences": len(data.split.test),
        "seeds": seeds,
        "models": {},
    }
    runs_of = [
        (model, loss)
        for model in models
        for loss in (losses if losses and model not in BASELINES else [None])
    ]
    for model, loss in runs_of:
        name = model if loss is None else f"{model}/{loss}"
        runs = []
        for seed in seeds:
            settings = {**config.train.model_dump(), "seed": seed, **({"loss": loss} if loss else {})}
            train = TrainConfig(**settings)  # validated, unlike model_copy
            cfg = config.model_copy(update={"train": train})
            callback = (lambda s, m=name, sd=seed: on_epoch(m, sd, s)) if on_epoch else None
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
        out["models"][name] = summary
        first = f"{model}/{losses[0]}" if loss is not None and losses else None
        if first and first != name and out["models"][first]["ndcg@10"] > 0:
            ratio = summary["ndcg@10"] / out["models"][first]["ndcg@10"]
            summary[f"vs_{losses[0]}"] = round(ratio, 4)
    baselines = [m for m in models if m in BASELINES]
    if baselines:
        best = max(baselines, key=lambda m: out["models"][m]["ndcg@10"])
        out["best_baseline"] = best
        for name, summary in out["models"].items():
            if name.split("/")[0] not in BASELINES and out["models"][best]["ndcg@10"] > 0:
                summary["vs_best_baseline"] = round(summary["ndcg@10"] / out["models"][best]["ndcg@10"], 4)
    return out
