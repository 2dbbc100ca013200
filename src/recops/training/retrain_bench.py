"""``recops bench retrain``: warm start against training from scratch, when new data arrives.

Two ways new data arrives (``arrival``):

- ``sessions``: the data set as it is trains the champion; then 10% more sessions arrive
  (resampled from the old ones, :func:`recops.data.synthetic.new_events_like`), in which 5% of
  the catalogue has been replaced by new items (new ids that behave as the items they replace:
  new products taking an old one's place, which a model can only learn from the new sessions).
- ``time``: the first 90% of the events by time train the champion; all of them are the new
  snapshot (ml-100k: later ratings of known users, and users and films not seen before).

Per seed: the champion is trained from scratch on the old events, then the challenger twice on
the new snapshot (its own leave-one-out split): from scratch, and from the champion's weights
(``fit(..., warm_from=...)``, at most ``train.warm_epochs`` epochs). Both are scored on the
same test set; the figures are the warm run's NDCG@10 and training time as ratios of the
scratch run's (means over seeds).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from recops.config import Config, TrainConfig
from recops.data import load_events, validate_events
from recops.data.synthetic import new_events_like
from recops.training.experiment import prepare_events, train_and_evaluate
from recops.training.train import EpochStats

ARRIVALS = ("sessions", "time")
NEW_SESSIONS = 0.10  # arrival "sessions": this share of the old sessions arrives
NEW_ITEMS = 0.05  # ... with this share of the catalogue replaced by new items
OLD_SHARE = 0.90  # arrival "time": the first 90% of the events train the champion


def snapshots(events: pd.DataFrame, arrival: str, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(old events, new snapshot), both validated, for ``arrival`` (module docstring)."""
    if arrival == "time":
        order = events.sort_values("timestamp", kind="stable")
        old = order.iloc[: int(len(order) * OLD_SHARE)]
        return _revalidated(old), _revalidated(events)
    if arrival != "sessions":
        raise ValueError(f"arrival must be {' or '.join(ARRIVALS)}, got {arrival!r}")
    n_new = max(1, int(events["sequence_id"].nunique() * NEW_SESSIONS))
    new = new_events_like(events, n_new, seed=seed)
    rng = np.random.default_rng(seed)
    catalogue = events["item_id"].unique()
    replaced = rng.choice(catalogue, size=max(1, int(len(catalogue) * NEW_ITEMS)), replace=False)
    fresh = {item: f"new-{item}" for item in replaced}
    if pd.api.types.is_integer_dtype(events["item_id"]):  # keep integer ids integers
        top = int(events["item_id"].max())
        fresh = {item: top + 1 + i for i, item in enumerate(replaced)}
    new["item_id"] = new["item_id"].map(lambda item: fresh.get(item, item))
    full = pd.concat([_raw(events), new], ignore_index=True)
    return _revalidated(events), validate_events(full, source="old events + new sessions")


def _raw(events: pd.DataFrame) -> pd.DataFrame:
    return events[["sequence_id", "item_id", "timestamp"]].rename(columns={"sequence_id": "session_id"})


def _revalidated(events: pd.DataFrame) -> pd.DataFrame:
    return validate_events(_raw(events), source="benchmark snapshot")


def bench_retrain(
    dataset: str,
    model: str,
    config: Config,
    seeds: list[int],
    arrival: str = "sessions",
    on_epoch: Callable[[str, int, EpochStats], Any] | None = None,
) -> dict[str, Any]:
    """One JSON-ready object: per seed and as means, the champion, the scratch and the warm
    runs' test NDCG@10, epochs and training seconds, and the warm/scratch ratios."""
    events = load_events(dataset, config.data)
    runs = []
    for seed in seeds:
        old_events, new_events = snapshots(events, arrival, seed)
        old = prepare_events(f"{dataset} (old)", old_events, config)
        new = prepare_events(f"{dataset} (new)", new_events, config)
        train = TrainConfig(**{**config.train.model_dump(), "seed": seed})
        cfg = config.model_copy(update={"train": train})

        def progress(stage: str, sd: int = seed) -> Callable[[EpochStats], Any] | None:
            return (lambda s: on_epoch(stage, sd, s)) if on_epoch else None

        champion = train_and_evaluate(old, model, cfg, on_epoch=progress("champion"))
        scratch = train_and_evaluate(new, model, cfg, on_epoch=progress("scratch"))
        warm = train_and_evaluate(
            new, model, cfg, on_epoch=progress("warm"), warm_from=(champion.checkpoint, "champion")
        )
        run: dict[str, Any] = {"seed": seed, "warm_start": warm.checkpoint.warm_start}
        for name, report in (("champion", champion), ("scratch", scratch), ("warm", warm)):
            run[name] = {
                "ndcg@10": report.test.metrics["ndcg@10"],
                "epochs": report.train.epochs_run,
                "train_seconds": round(report.train.train_seconds, 3),
            }
        run["ndcg_ratio"] = run["warm"]["ndcg@10"] / run["scratch"]["ndcg@10"]
        run["time_ratio"] = run["warm"]["train_seconds"] / run["scratch"]["train_seconds"]
        runs.append(run)
    means = {
        name: {
            key: round(statistics.fmean(r[name][key] for r in runs), 6)
            for key in ("ndcg@10", "epochs", "train_seconds")
        }
        for name in ("champion", "scratch", "warm")
    }
    return {
        "dataset": dataset,
        "model": model,
        "arrival": arrival,
        "seeds": seeds,
        "old_events": len(old_events),  # of the last seed's snapshots
        "new_events": len(new_events),
        "max_warm_epochs": min(config.train.warm_epochs, config.train.epochs),
        **means,
        "ndcg_ratio": round(statistics.fmean(r["ndcg_ratio"] for r in runs), 4),
        "time_ratio": round(statistics.fmean(r["time_ratio"] for r in runs), 4),
        "runs": runs,
    }
