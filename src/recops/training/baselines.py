"""The simple baseline a challenger must beat: every model of ``BASELINES`` (Markov chain,
sequential rules, session-KNN, most popular) fitted on the challenger's own split, the best by
validation NDCG chosen, and its per-sequence test ranks kept for the gate's paired comparison.

They are counted, not learned, so the whole search takes seconds. On session data they often
match a neural model that is undertrained or mis-tuned; a gate that only compares a challenger
with the champion would never notice that both lose to a count table (issue 14).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from recops.config import BASELINES, Config
from recops.training.evaluate import EvalResult, evaluate_model
from recops.training.experiment import PreparedData, fit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaselineResult:
    """The best simple baseline on one split: what the registration saves for the gate."""

    name: str  # e.g. "markov"
    valid_metrics: dict[str, float]  # its validation figures (what chose it)
    test: EvalResult  # its test figures and per-sequence ranks, over the challenger's test sequences
    seconds: float  # fitting every baseline and evaluating the best on test
    valid_ndcg: dict[str, float]  # validation NDCG@eval_k of every baseline tried, in BASELINES order


def best_baseline(data: PreparedData, config: Config) -> BaselineResult:
    """Fit each of :data:`BASELINES` on ``data.split``, choose the best by validation
    NDCG@``train.eval_k`` (ties: the earlier in BASELINES, the simpler), rank the test split."""
    started = time.perf_counter()
    metric = f"ndcg@{config.train.eval_k}"
    fitted = {name: fit(data, name, config) for name in BASELINES}
    valid_ndcg = {name: f.train.valid_metrics[metric] for name, f in fitted.items()}
    name = max(valid_ndcg, key=valid_ndcg.__getitem__)  # max keeps the first of equals
    test = evaluate_model(fitted[name].train.model, data.split.test)
    seconds = time.perf_counter() - started
    log.info(
        "best baseline %s: valid %s %.4f, test %.4f (%s; %.1f s)",
        name,
        metric,
        valid_ndcg[name],
        test.metrics.get(metric, float("nan")),
        ", ".join(f"{n} {v:.4f}" for n, v in valid_ndcg.items()),
        seconds,
    )
    return BaselineResult(name, fitted[name].train.valid_metrics, test, seconds, valid_ndcg)


def baseline_to_beat(model_name: str, data: PreparedData, config: Config) -> BaselineResult | None:
    """The best baseline a ``model_name`` challenger must beat at the gate, or None when there is
    none to compute: the gate does not ask for it (``gate.require_beat_baseline`` false), or the
    challenger is a simple baseline itself (simple models are not held to each other)."""
    if not config.gate.require_beat_baseline or model_name in BASELINES:
        return None
    return best_baseline(data, config)
