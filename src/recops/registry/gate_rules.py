"""Champion/challenger gate: does a newly trained model deserve to replace the served one?

Pure functions, no MLflow: :mod:`recops.registry` fetches both models' saved test ranks and
calls :func:`decide`. The comparison is paired, on the same test sequences in the same order:
the per-sequence NDCG@K difference is bootstrapped (resampling sequences), which is far
tighter than comparing two means whose sequences happen to be easy or hard for both models.

A challenger is promoted when there is no champion yet, or when its mean difference is not
negative and the lower bound of the confidence interval lies above ``-margin``; in both cases
every behavioural check (well-formed top-K, finite scores, latency) must pass too. Before
either, when a baseline is required and was recorded, the challenger must beat the best simple
baseline trained on its split: the same paired bootstrap, with a lower bound above 0 (no
margin: a model that a count table matches is not worth serving, champion or not). A challenger
the gate refuses to compare at all (:func:`refused`; :mod:`recops.registry.gate_checks`) is
rejected with the reason, without figures of a comparison that would mean nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from recops.registry.gate_checks import CheckResult
from recops.training.metrics import ndcg

BOOTSTRAP_CHUNK = 100  # resamples drawn at once: bounds memory at CHUNK x n_sequences indices


@dataclass(frozen=True)
class BootstrapResult:
    mean_diff: float  # mean of challenger - champion over the sequences
    low: float  # confidence interval of the mean difference
    high: float
    resamples: int


@dataclass(frozen=True)
class BaselineRanks:
    """The best simple baseline's 1-based test ranks, over the challenger's test sequences."""

    name: str  # e.g. "markov"
    ranks: np.ndarray


class GateAction(StrEnum):
    """What the gate did with a challenger; the value is what version tags and artifacts hold."""

    PROMOTED = "promoted"
    REJECTED = "rejected"
    SHADOW = "shadow"  # passed offline; waits in shadow for the online check (gate.require_shadow)


@dataclass(frozen=True)
class GateDecision:
    action: GateAction
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def promote(self) -> bool:
        return self.action is GateAction.PROMOTED

    def to_dict(self) -> dict[str, Any]:
        """Plain types, for a Metaflow artifact or JSON."""
        return {"action": self.action.value, "reason": self.reason, "figures": dict(self.figures)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> GateDecision:
        return cls(GateAction(raw["action"]), str(raw["reason"]), dict(raw.get("figures") or {}))


def paired_bootstrap(
    challenger_ndcg: np.ndarray,
    champion_ndcg: np.ndarray,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> BootstrapResult:
    """Percentile bootstrap of the mean per-sequence difference (challenger - champion).

    Both arrays hold one value per test sequence, for the same sequences in the same order.
    """
    challenger = np.asarray(challenger_ndcg, dtype=np.float64)
    champion = np.asarray(champion_ndcg, dtype=np.float64)
    if challenger.shape != champion.shape or challenger.ndim != 1:
        raise ValueError(
            f"paired bootstrap needs two 1-d arrays over the same sequences, "
            f"got shapes {challenger.shape} and {champion.shape}"
        )
    if len(challenger) == 0:
        raise ValueError("paired bootstrap needs at least one sequence")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    diffs = challenger - champion
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, BOOTSTRAP_CHUNK):
        stop = min(start + BOOTSTRAP_CHUNK, resamples)
        idx = rng.integers(0, len(diffs), size=(stop - start, len(diffs)))  # (chunk, n)
        means[start:stop] = diffs[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return BootstrapResult(float(diffs.mean()), float(low), float(high), resamples)


def decide(
    challenger_ranks: np.ndarray,
    champion_ranks: np.ndarray | None,
    checks: Sequence[CheckResult],
    margin: float = 0.0,
    *,
    k: int = 10,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    baseline: BaselineRanks | None = None,
    require_beat_baseline: bool = True,
) -> GateDecision:
    """Promote or reject the challenger, with a sentence that gives the figures behind it.

    Ranks are 1-based ranks of each held-out test item (same sequences, same order);
    ``champion_ranks`` is None when there is no champion yet, ``baseline`` None when none was
    recorded (the challenger is then judged as before baselines were, and a figure says so).
    """
    challenger_ndcg = ndcg(challenger_ranks, k)
    metric = f"NDCG@{k}"
    failed = [c for c in checks if not c.passed]
    figures: dict[str, Any] = {
        "k": k,
        "n_sequences": len(challenger_ndcg),
        "challenger_ndcg": float(challenger_ndcg.mean()) if len(challenger_ndcg) else 0.0,
        "checks_failed": ",".join(c.name for c in failed),
    }
    versus_baseline, fails_baseline = "", ""
    if not require_beat_baseline:
        figures["baseline"] = "not required (gate.require_beat_baseline = false)"
    elif baseline is None:
        figures["baseline"] = "none recorded at registration"
    else:
        versus_baseline, fails_baseline = _versus_baseline(
            challenger_ndcg, baseline, figures, k=k, resamples=resamples, seed=seed, confidence=confidence
        )
    if champion_ranks is None:
        summary = (
            f"no champion yet: challenger {metric} {figures['challenger_ndcg']:.4f} "
            f"on {figures['n_sequences']} test sequences"
        )
        fails_metric = ""
    else:
        champion_ndcg = ndcg(champion_ranks, k)
        boot = paired_bootstrap(challenger_ndcg, champion_ndcg, resamples, seed, confidence)
        figures.update(
            champion_ndcg=float(champion_ndcg.mean()),
            mean_diff=boot.mean_diff,
            ci_low=boot.low,
            ci_high=boot.high,
            confidence=confidence,
            resamples=boot.resamples,
            margin=margin,
        )
        summary = (
            f"challenger {metric} {figures['challenger_ndcg']:.4f} vs champion "
            f"{figures['champion_ndcg']:.4f}: mean difference {boot.mean_diff:+.4f}, "
            f"{confidence:.0%} CI [{boot.low:+.4f}, {boot.high:+.4f}]"
        )
        if boot.mean_diff < 0:
            fails_metric = "the mean difference is negative"
        elif boot.low <= -margin:
            fails_metric = f"the CI's lower bound {boot.low:+.4f} is not above -{margin:.4f} (the margin)"
        else:
            fails_metric = ""
    summary += versus_baseline
    problems = [p for p in (fails_baseline, fails_metric) if p]
    if failed:
        problems.append("behavioural check(s) failed: " + "; ".join(f"{c.name} ({c.detail})" for c in failed))
    if problems:
        return GateDecision(GateAction.REJECTED, f"{summary}; rejected: {'; and '.join(problems)}", figures)
    return GateDecision(GateAction.PROMOTED, f"{summary}; all behavioural checks passed; promoted", figures)


def refused(refusals: Sequence[str], figures: dict[str, Any]) -> GateDecision:
    """Rejected without a comparison: each refusal says why the figures would mean nothing."""
    return GateDecision(GateAction.REJECTED, f"not compared: {'; and '.join(refusals)}; rejected", figures)


def _versus_baseline(
    challenger_ndcg: np.ndarray,
    baseline: BaselineRanks,
    figures: dict[str, Any],
    *,
    k: int,
    resamples: int,
    seed: int,
    confidence: float,
) -> tuple[str, str]:
    """Bootstrap challenger - baseline; adds the figures, returns (summary text when it beats
    the baseline, the problem when it does not)."""
    baseline_ndcg = ndcg(baseline.ranks, k)
    boot = paired_bootstrap(challenger_ndcg, baseline_ndcg, resamples, seed, confidence)
    figures.update(
        baseline_model=baseline.name,
        baseline_ndcg=float(baseline_ndcg.mean()),
        baseline_mean_diff=boot.mean_diff,
        baseline_ci_low=boot.low,
        baseline_ci_high=boot.high,
    )
    mine, theirs = figures["challenger_ndcg"], figures["baseline_ndcg"]
    interval = f"{confidence:.0%} CI of the difference [{boot.low:+.4f}, {boot.high:+.4f}]"
    if boot.low > 0:
        beats = f"; beats the best simple baseline {baseline.name}"
        return f"{beats} (NDCG@{k} {mine:.4f} vs {theirs:.4f}, {interval})", ""
    if boot.mean_diff < 0:
        return "", f"{baseline.name} beats it: NDCG@{k} {theirs:.4f} vs {mine:.4f}, {interval}"
    return "", (
        f"it does not clearly beat {baseline.name}, the best simple baseline: NDCG@{k} {mine:.4f} vs "
        f"{theirs:.4f}, {interval}, whose lower bound is not above 0"
    )
