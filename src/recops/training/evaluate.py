"""Full-ranking evaluation: the held-out item's rank among every item, no sampled negatives.

History items are not masked (RecBole's protocol for sequential models); padding is never
ranked. Ties are broken by item index, exactly as :func:`top_k` orders recommendations, so
the rank here is the position the item would have in a served list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from recops.data.split import EvalSet
from recops.localproc import cap_torch_threads
from recops.models.base import SequenceModel, pad_left
from recops.training.metrics import per_sequence, summarize

EVAL_BATCH = 256  # histories scored at once, at most
# what one batch's (histories x catalogue) scores may take, temporaries included: 256 histories
# of a 60,000-item catalogue; a million-item catalogue is scored 16 histories at a time
EVAL_MEMORY_BYTES = 256 * 2**20
BYTES_PER_SCORE = 16  # the float score, its masked copy, and the comparison masks of target_ranks
DEFAULT_KS = (5, 10, 20)


def eval_batch_size(n_indices: int, memory_bytes: int = EVAL_MEMORY_BYTES) -> int:
    """Histories per batch so that their scores over ``n_indices`` items fit in ``memory_bytes``."""
    return max(1, min(EVAL_BATCH, memory_bytes // (BYTES_PER_SCORE * max(n_indices, 1))))


@dataclass(frozen=True)
class EvalResult:
    metrics: dict[str, float]
    ranks: np.ndarray  # (n_sequences,) 1-based rank of each held-out item
    sequence_ids: tuple[Any, ...] = field(default=())
    # per slice of the sequences (recops.training.slices): {"short_sessions": {"n", "hr@10", "ndcg@10"}}
    slices: dict[str, dict[str, float]] = field(default_factory=dict)

    def per_sequence(self, metric: str = "ndcg", k: int = 10) -> np.ndarray:
        return per_sequence(metric, self.ranks, k)


def model_device(model: SequenceModel) -> torch.device:
    tensor = next(iter(model.parameters()), None)
    if tensor is None:
        tensor = next(iter(model.buffers()))
    return tensor.device


def score_histories(
    model: SequenceModel, histories: list[np.ndarray] | tuple[np.ndarray, ...]
) -> torch.Tensor:
    """Scores of every item index after each history: (n, n_items + 1), padding at -inf."""
    device = model_device(model)
    batch = torch.as_tensor(pad_left(histories, model.max_len), device=device)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        return model.predict(batch).float()


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1-based rank of each target when items are sorted by score, ties by lower index first."""
    target_scores = scores.gather(1, targets.unsqueeze(1))  # (B, 1)
    index = torch.arange(scores.shape[1], device=scores.device).unsqueeze(0)
    ahead = (scores > target_scores) | ((scores == target_scores) & (index < targets.unsqueeze(1)))
    return ahead.sum(dim=1) + 1


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` (scores, indices) per row, ties by lower index; padding (-inf) never included
    unless ``k`` exceeds the catalogue, which callers prevent.

    ``torch.topk`` finds the k-th best score; only the items at or above it are sorted (stable,
    so equal scores keep index order), instead of the whole catalogue.
    """
    kth = torch.topk(scores, k, dim=1).values[:, -1:]  # (B, 1)
    candidates = scores >= kth
    if bool((candidates.sum(dim=1) == k).all()):  # no row has ties at its k-th score: one sort
        index = candidates.nonzero()[:, 1].view(-1, k)  # ascending index order per row
        order = torch.sort(scores.gather(1, index), dim=1, descending=True, stable=True).indices
        index = index.gather(1, order)
        return scores.gather(1, index), index
    values, indices = [], []
    for row, threshold in zip(scores, kth, strict=True):
        candidates = torch.nonzero(row >= threshold).squeeze(1)  # ascending index order
        order = torch.sort(row[candidates], descending=True, stable=True).indices[:k]
        values.append(row[candidates[order]])
        indices.append(candidates[order])
    return torch.stack(values), torch.stack(indices)


def rank_eval_set(
    model: SequenceModel, eval_set: EvalSet, memory_bytes: int = EVAL_MEMORY_BYTES
) -> np.ndarray:
    """Rank of every held-out item; histories are batched by length so little padding is scored,
    as many at once as fit in ``memory_bytes`` (so a million-item catalogue evaluates in bounded
    memory)."""
    cap_torch_threads()
    model.eval()
    batch_size = eval_batch_size(model.n_items + 1, memory_bytes)
    ranks = np.zeros(len(eval_set), dtype=np.int64)
    by_length = np.argsort([len(h) for h in eval_set.inputs], kind="stable")
    for start in range(0, len(eval_set), batch_size):
        idx = by_length[start : start + batch_size]
        scores = score_histories(model, [eval_set.inputs[i] for i in idx])
        targets = torch.as_tensor(eval_set.targets[idx], device=scores.device)
        ranks[idx] = target_ranks(scores, targets).cpu().numpy()
    return ranks


def evaluate_model(model: SequenceModel, eval_set: EvalSet, ks: tuple[int, ...] = DEFAULT_KS) -> EvalResult:
    from recops.training.slices import short_sessions, slice_figures

    ranks = rank_eval_set(model, eval_set)
    per_slice = slice_figures(ranks, {"short_sessions": short_sessions(eval_set.inputs)})
    return EvalResult(summarize(ranks, ks), ranks, eval_set.sequence_ids, per_slice)
