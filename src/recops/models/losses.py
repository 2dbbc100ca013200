"""The training objectives ``[train] loss`` chooses among, all over the whole catalogue.

- ``ce``: softmax cross-entropy over every item at every position ("SASRec + CE"), from the
  full (positions x items) logit matrix.
- ``ce_chunked``: the same loss, exactly (recops.models.chunked_ce), never holding that matrix:
  memory grows with a chunk of ``logits_mb``, not with the catalogue.
- ``sampled``: softmax over a candidate set, the batch's own targets plus ``negatives`` items
  drawn uniformly, each logit corrected by the log of the item's expected count among the draws
  (logQ: ``negatives / V`` + positions x its share of the training targets), so popular items,
  which the batch's targets over-sample, are not over-penalised (Yi et al., RecSys 2019;
  Transformers4Rec's sampled softmax). Cost grows with positions x (positions + negatives),
  whatever the catalogue.
- ``auto``: ``ce`` while a batch's logits fit in ``logits_mb``, ``ce_chunked`` above; on
  today's catalogues (thousands of items) that is ``ce``, exactly what it always was.

The history bias (recops.models.base) works with each one as sparse (row, item) pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from recops.config import TrainConfig
from recops.models.chunked_ce import chunked_cross_entropy

FLOAT_BYTES = 4


@dataclass(frozen=True)
class Objective:
    """A resolved ``[train] loss``: what :meth:`SequenceModel.training_loss` computes."""

    kind: str = "ce"  # auto | ce | ce_chunked | sampled
    logits_bytes: int = 1024 * 2**20
    negatives: int = 1024
    target_share: torch.Tensor | None = None  # (n_items,) share of training targets, "sampled" only

    def chunk_items(self, positions: int) -> int:
        """Items per chunk so that a chunk's logits fit in the budget."""
        return max(1, self.logits_bytes // (FLOAT_BYTES * max(positions, 1)))

    def kind_for(self, positions: int, n_items: int) -> str:
        """What a batch of ``positions`` over ``n_items`` items computes."""
        if self.kind != "auto":
            return self.kind
        return "ce" if positions * n_items * FLOAT_BYTES <= self.logits_bytes else "ce_chunked"


def objective_for(config: TrainConfig, sequences: tuple[np.ndarray, ...], n_items: int) -> Objective:
    """The objective ``config`` asks for; ``sampled`` learns the targets' shares from ``sequences``
    (every item but a sequence's first is some position's target)."""
    share = None
    if config.loss == "sampled":
        targets = np.concatenate([seq[1:] for seq in sequences]) if sequences else np.zeros(0, np.int64)
        counts = np.bincount(targets, minlength=n_items + 1)[1:].astype(np.float64)
        share = torch.as_tensor(counts / max(counts.sum(), 1.0), dtype=torch.float32)
    return Objective(config.loss, config.logits_mb * 2**20, config.negatives, share)


def sequence_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    objective: Objective,
    *,
    history: tuple[torch.Tensor, torch.Tensor] | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean loss of ``hidden`` (N, D) scored against ``weight`` (V, D) for 0-based ``targets``;
    ``bias`` is added at the ``history`` (row, 0-based item) pairs."""
    n, v = hidden.shape[0], weight.shape[0]
    kind = objective.kind_for(n, v)
    if kind == "ce_chunked":
        return chunked_cross_entropy(
            hidden, weight, targets, history=history, bias=bias, chunk_items=objective.chunk_items(n)
        )
    if kind == "sampled":
        return sampled_softmax(hidden, weight, targets, objective, history=history, bias=bias)
    logits = hidden @ weight.T
    if history is not None and bias is not None:
        rows, items = history
        logits = logits.index_put((rows, items), bias.to(logits.dtype).expand(len(rows)), accumulate=True)
    return F.cross_entropy(logits.float(), targets)


def sampled_softmax(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    objective: Objective,
    *,
    history: tuple[torch.Tensor, torch.Tensor] | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy over the candidates (the batch's targets and uniform negatives, each once),
    logits minus log(expected count of the item among the draws)."""
    n, v = hidden.shape[0], weight.shape[0]
    if objective.target_share is None or len(objective.target_share) != v:
        raise ValueError(f"the sampled loss needs the targets' share of each of the {v} items")
    uniform = torch.randint(v, (objective.negatives,), device=hidden.device)
    candidates = torch.unique(torch.cat([targets, uniform]))  # sorted, each item once
    share = objective.target_share.to(hidden.device)[candidates]
    log_q = torch.log(objective.negatives / v + n * share)
    logits = (hidden @ weight[candidates].T).float() - log_q
    if history is not None and bias is not None:
        rows, items = history
        column = torch.searchsorted(candidates, items).clamp_(max=len(candidates) - 1)
        hit = candidates[column] == items  # history items that are candidates
        logits = logits.index_put(
            (rows[hit], column[hit]), bias.float().expand(int(hit.sum())), accumulate=True
        )
    return F.cross_entropy(logits, torch.searchsorted(candidates, targets))
