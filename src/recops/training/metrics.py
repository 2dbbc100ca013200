"""Top-K metrics from the 1-based rank of the held-out item among all items.

Per-sequence values are kept (the registry gate bootstraps over them); the reported figure
is their mean. With one relevant item, NDCG@K = 1/log2(rank + 1) and MRR@K = 1/rank when
rank <= K, else 0; HR@K is 1 when rank <= K.
"""

from __future__ import annotations

import numpy as np

METRICS = ("hr", "ndcg", "mrr")


def hit_rate(ranks: np.ndarray, k: int) -> np.ndarray:
    return (np.asarray(ranks) <= k).astype(np.float64)


def ndcg(ranks: np.ndarray, k: int) -> np.ndarray:
    ranks = np.asarray(ranks, dtype=np.float64)
    return np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)


def mrr(ranks: np.ndarray, k: int) -> np.ndarray:
    ranks = np.asarray(ranks, dtype=np.float64)
    return np.where(ranks <= k, 1.0 / ranks, 0.0)


PER_SEQUENCE = {"hr": hit_rate, "ndcg": ndcg, "mrr": mrr}


def per_sequence(metric: str, ranks: np.ndarray, k: int) -> np.ndarray:
    return PER_SEQUENCE[metric](ranks, k)


def summarize(ranks: np.ndarray, ks: tuple[int, ...] = (5, 10, 20)) -> dict[str, float]:
    """``{"hr@10": ..., "ndcg@10": ..., "mrr@10": ...}`` for every K (empty ranks give 0)."""
    if len(ranks) == 0:
        return {f"{m}@{k}": 0.0 for k in ks for m in METRICS}
    return {f"{m}@{k}": float(PER_SEQUENCE[m](ranks, k).mean()) for k in ks for m in METRICS}
