"""Metrics per slice of the evaluated sessions, with the offline metric code.

The slices a cold-start policy is judged on: sessions of one or two events
(``short_sessions``), sessions holding an item the model does not know (``unknown_items``), and
sessions whose next item the model does not know (``new_items``: first seen after its data, in
the newest window). Each slice reports how many sessions it holds and HR/NDCG@k over them
(:func:`recops.training.metrics.summarize` on their ranks), or only ``n = 0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recops.training.metrics import summarize

SHORT_SESSION = 2  # events: a session this short is a near cold start


def short_sessions(histories: Sequence[Sequence[Any]]) -> np.ndarray:
    return np.array([len(history) <= SHORT_SESSION for history in histories], dtype=bool)


def with_unknown_items(histories: Sequence[Sequence[Any]], known: Any) -> np.ndarray:
    """Sessions holding an item ``known(item)`` says no."""
    return np.array([any(not known(item) for item in history) for history in histories], dtype=bool)


def unknown_targets(targets: Sequence[Any], known: Any) -> np.ndarray:
    return np.array([not known(target) for target in targets], dtype=bool)


def slice_figures(
    ranks: np.ndarray, masks: dict[str, np.ndarray], k: int = 10
) -> dict[str, dict[str, float]]:
    """``{slice: {"n", "hr@k", "ndcg@k"}}`` for each mask over ``ranks`` (one per session)."""
    ranks = np.asarray(ranks)
    figures = {}
    for name, mask in masks.items():
        n = int(mask.sum())
        row: dict[str, float] = {"n": float(n)}
        if n:
            summary = summarize(ranks[mask], ks=(k,))
            row.update({f"hr@{k}": summary[f"hr@{k}"], f"ndcg@{k}": summary[f"ndcg@{k}"]})
        figures[name] = row
    return figures
