"""What the gate checks besides the NDCG comparison (pure functions, no MLflow):

- behavioural checks on real sessions: a well-formed top-k, finite scores, and latency measured
  **side by side** with the champion (:func:`side_by_side_latency`): the same sessions, calls
  interleaved in one process, so a busy neighbour slows both alike and the challenger is judged
  relative to the champion (``gate.latency_ratio``) under an absolute ceiling
  (``gate.latency_budget_ms``);
- refusals, which stop the comparison before it starts because its figures would mean nothing:
  a challenger whose held-out test events are also in what it trained on
  (:func:`leaked_test_sequences`), and a champion and challenger over different item
  catalogues (:func:`catalogue_mismatch`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from recops.serving.recommender import Recommender

# Refuse when more than this share of the test sequences leaked: a session that repeats itself
# ([a, b, c, a, b, c]) or a double click per event happens in real data, now and then.
MAX_LEAKED_SHARE = 0.05
LEAK_WINDOW = 3  # the held-out item and the two before it: a run this long in training is no chance
# Different catalogues: the champion knows fewer than this share of the challenger's items.
MIN_SHARED_ITEMS = 0.5
BUILT_IN_SOURCES = ("synthetic", "ml-100k")  # dataset kinds that name one catalogue each


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Latency:
    """p95 of single ``recommend`` calls, challenger and champion measured side by side."""

    challenger_p95_ms: float
    champion_p95_ms: float | None  # None: no champion to measure
    calls: int


def side_by_side_latency(
    challenger: Recommender, champion: Recommender | None, sessions: Sequence[Sequence[Any]], k: int
) -> Latency:
    """Time one ``recommend`` per session for each model, interleaved (which goes first
    alternates), after one warm-up call each, so that load on the machine falls on both alike."""
    models = [challenger] if champion is None else [challenger, champion]
    for model in models:
        model.recommend(sessions[0], min(k, model.n_items))  # first-call allocations are not latency
    seconds: list[list[float]] = [[] for _ in models]
    for i, session in enumerate(sessions):
        order = range(len(models)) if i % 2 == 0 else reversed(range(len(models)))
        for m in order:
            start = time.perf_counter()
            models[m].recommend(session, min(k, models[m].n_items))
            seconds[m].append(time.perf_counter() - start)
    p95 = [float(np.percentile(s, 95) * 1000.0) for s in seconds]
    return Latency(p95[0], p95[1] if champion is not None else None, len(sessions))


def latency_check(latency: Latency, ceiling_ms: float, ratio: float, floor_ms: float) -> CheckResult:
    """Within the ceiling, and, with a champion, within ``ratio`` x its p95 (a champion faster
    than ``floor_ms`` counts as ``floor_ms``: below it, latency is not worth a rejection)."""
    mine, theirs = latency.challenger_p95_ms, latency.champion_p95_ms
    detail = f"p95 {mine:.2f} ms over {latency.calls} calls, ceiling {ceiling_ms:.1f} ms"
    passed = mine <= ceiling_ms
    if theirs is not None:
        allowed = ratio * max(theirs, floor_ms)
        detail += f"; champion p95 {theirs:.2f} ms side by side, allowed {allowed:.2f} ms ({ratio:g}x)"
        passed = passed and mine <= allowed
    return CheckResult("latency_p95", passed, detail)


def behavioural_checks(
    recommender: Recommender,
    sessions: Sequence[Sequence[Any]],
    k: int,
    latency_budget_ms: float,
    *,
    champion: Recommender | None = None,
    latency_ratio: float = 2.0,
    latency_floor_ms: float = 5.0,
) -> list[CheckResult]:
    """Minimum functionality on real sessions: a well-formed top-k, finite scores, fast enough
    (:func:`latency_check`, the champion timed beside it when given)."""
    if not sessions:
        raise ValueError("behavioural checks need at least one session")
    latency = side_by_side_latency(recommender, champion, sessions, k)
    k = min(k, recommender.n_items)
    malformed, non_finite, empty = [], [], 0
    for i, session in enumerate(sessions):
        result = recommender.recommend(session, k)
        items = [item for item, _ in result.items]
        scores = np.asarray([score for _, score in result.items], dtype=np.float64)
        unknown = [item for item in items if recommender.vocab.index_of(item) == 0]
        if unknown or len(set(items)) != len(items) or len(items) > k:
            malformed.append(i)
        if not np.isfinite(scores).all():
            non_finite.append(i)
        empty += not items
    return [
        CheckResult(
            "top_k_well_formed",
            not malformed and empty < len(sessions),
            f"{len(malformed)} of {len(sessions)} sessions had padding, unknown or duplicate items "
            f"or more than {k}; {empty} got no recommendation",
        ),
        CheckResult(
            "finite_scores",
            not non_finite,
            f"{len(non_finite)} of {len(sessions)} sessions had a NaN or infinite score",
        ),
        latency_check(latency, latency_budget_ms, latency_ratio, latency_floor_ms),
    ]


def _contains(run: Sequence[Any], sequence: Sequence[Any]) -> bool:
    width = len(run)
    return any(list(sequence[i : i + width]) == list(run) for i in range(len(sequence) - width + 1))


def _doubled(sequence: Sequence[Any]) -> bool:
    """Every event twice in a row ([a, a, b, b, c, c]): one session's events merged twice."""
    tail = sequence[len(sequence) % 2 :]  # a saved history may start mid-pair
    return len(tail) >= 4 and all(tail[i] == tail[i + 1] for i in range(0, len(tail), 2))


def leaked_test_sequences(
    histories: Sequence[Sequence[Any]],
    targets: Sequence[Any],
    sequence_ids: Sequence[Any],
    earlier_training: dict[Any, Sequence[Any]] | None = None,
) -> list[int]:
    """Indices of the test sequences whose held-out item the model already saw in training.

    By the leave-one-out split a sequence's training part is its test history without the last
    item (the validation target). Leaked: the held-out item with the ``LEAK_WINDOW - 1`` items
    before it occurs in that training part, or in ``earlier_training`` (sequence id -> the
    training part of the model this one was warm-started from, whose weights it inherits); or
    the sequence holds every event twice, so the held-out item is a copy of the validation
    target that ends its own input (the same events merged twice under the same session ids).
    """
    earlier = earlier_training or {}
    leaked = []
    for i, (history, target) in enumerate(zip(histories, targets, strict=True)):
        full = [*history, target]
        run = full[-LEAK_WINDOW:]
        trained_on = [history[:-1], earlier.get(sequence_ids[i], [])]
        if _doubled(full) or (len(run) == LEAK_WINDOW and any(_contains(run, t) for t in trained_on)):
            leaked.append(i)
    return leaked


def leak_refusal(leaked: int, total: int, warm_from: str = "") -> str:
    """The refusal for ``leaked`` of ``total`` test sequences, or "" when within MAX_LEAKED_SHARE."""
    if total == 0 or leaked / total <= MAX_LEAKED_SHARE:
        return ""
    also = f" or in the training data of {warm_from}, which it was warm-started from" if warm_from else ""
    return (
        f"{leaked} of {total} test sequences ({leaked / total:.0%}, more than {MAX_LEAKED_SHARE:.0%}) "
        f"appear in its own training data{also}: their held-out item is in what it trained on "
        "(e.g. the same events loaded twice), so its test figures are inflated; retrain on data "
        "without the repeated events"
    )


def source_kind(dataset: str) -> str:
    """``synthetic`` / ``ml-100k`` for the built-in sources (one catalogue each), else ""
    (a file may hold any catalogue)."""
    kind = dataset.partition(":")[0]
    return kind if kind in BUILT_IN_SOURCES else ""


def catalogue_mismatch(
    challenger_dataset: str,
    challenger_items: Sequence[Any],
    champion_dataset: str,
    known_to_champion: Any,
) -> str:
    """Why champion and challenger rank different catalogues ("" when they do not): built-in
    sources of different names, or a champion that knows fewer than MIN_SHARED_ITEMS of the
    challenger's items (``known_to_champion(item) -> bool``). Item ids alone cannot tell:
    synthetic ids 1..800 are MovieLens ids too, for other things."""
    mine, theirs = source_kind(challenger_dataset), source_kind(champion_dataset)
    if mine and theirs and mine != theirs:
        return f"the challenger was trained on {challenger_dataset}, the champion on {champion_dataset}"
    shared = sum(1 for item in challenger_items if known_to_champion(item))
    total = len(challenger_items)
    if total and shared / total < MIN_SHARED_ITEMS:
        return (
            f"the champion knows only {shared} of the challenger's {total} items "
            f"({shared / total:.0%}, less than {MIN_SHARED_ITEMS:.0%})"
        )
    return ""
