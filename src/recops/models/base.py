"""What every recommender shares: left-padded item-index input, full-catalogue scores.

Input is a ``(B, T)`` LongTensor of item indices, left-padded with 0, most recent item last.
``training_loss`` is softmax cross-entropy over all items at every non-padding position
("SASRec + CE"; ``[train] loss`` may compute it in chunks or sampled: recops.models.losses);
``predict`` scores every item after the last position. Index 0 (padding) always scores
``-inf``, so it is never ranked or recommended.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recops.models.losses import Objective, sequence_loss

HISTORY_BIAS_SCALE = 10.0


class SequenceModel(nn.Module):
    trainable = True
    # state-dict entries with one row per item index (padding first): the weights a new
    # catalogue changes (recops.training.warm_start maps them by item id)
    item_tables: tuple[str, ...] = ()

    def __init__(self, n_items: int, max_len: int, history_bias: bool = False) -> None:
        super().__init__()
        self.n_items = n_items
        self.max_len = max_len
        # Repeat-aware scoring: one learned offset added to the score of every item already in
        # the input. Nothing is masked: training data decides whether repeats are likely
        # (e-commerce re-views: positive) or not (ratings, never repeated: negative).
        self.history_logit = nn.Parameter(torch.zeros(())) if history_bias else None

    @property
    def history_bias(self) -> torch.Tensor | None:
        # scaled so Adam moves it ~HISTORY_BIAS_SCALE x lr per step, like a whole embedding would
        return None if self.history_logit is None else HISTORY_BIAS_SCALE * self.history_logit

    def encode(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Hidden state at every position: (B, T) -> (B, T, D)."""
        raise NotImplementedError

    def output_embeddings(self) -> torch.Tensor:
        """(n_items + 1, D) item vectors; scores are dot products with them."""
        raise NotImplementedError

    def training_loss(
        self, input_ids: torch.Tensor, targets: torch.Tensor, objective: Objective | None = None
    ) -> torch.Tensor:
        """Mean next-item loss at every non-padding target: full cross-entropy unless
        ``objective`` (``[train] loss``, recops.models.losses) says otherwise."""
        hidden = self.encode(input_ids)  # (B, T, D)
        mask = targets != 0
        history = None
        if self.history_logit is not None:
            rows, items = history_pairs(input_ids, mask, self.n_items)
            history = (rows, items - 1)
        return sequence_loss(
            hidden[mask],
            self.output_embeddings()[1:],  # padding left out: 0-based items
            targets[mask] - 1,
            objective or Objective("ce"),
            history=history,
            bias=self.history_bias,
        )

    @torch.inference_mode()
    def predict(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Scores of every index after the last position: (B, T) -> (B, n_items + 1)."""
        hidden = self.encode(input_ids)[:, -1, :]  # (B, D)
        scores = (hidden @ self.output_embeddings().T).float()
        if self.history_logit is not None:  # every item in the input is history at the last position
            # a repeated item writes the same value twice; no (B x catalogue) mask is built
            scores.scatter_(1, input_ids, scores.gather(1, input_ids) + self.history_bias.float())
        scores[:, 0] = float("-inf")
        return scores


def history_pairs(
    input_ids: torch.Tensor, positions: torch.Tensor, n_items: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, item) pairs: for the N positions selected by ``positions`` (B, T bool, row-major),
    each distinct item in the input up to and including that position. Sparse, so training
    adds the history bias to T^2/2 entries per sequence instead of T x n_items, and finds first
    occurrences by comparing positions (B x T x T), never holding a (B x n_items) table."""
    B, T = input_ids.shape
    earlier = torch.ones(T, T, dtype=torch.bool, device=input_ids.device).tril(-1)  # key < query
    repeated = ((input_ids[:, :, None] == input_ids[:, None, :]) & earlier).any(dim=2)
    is_first = ~repeated & (input_ids != 0)  # (B, T) first occurrences
    row_of = positions.flatten().cumsum(0).view(B, T) - 1  # row in the (N, ...) logits
    query, key = torch.tril_indices(T, T, device=input_ids.device)  # key <= query
    b, pair = (positions[:, query] & is_first[:, key]).nonzero(as_tuple=True)
    return row_of[b, query[pair]], input_ids[b, key[pair]]


def pad_left(sequences: list[np.ndarray] | tuple[np.ndarray, ...], max_len: int) -> np.ndarray:
    """The last ``max_len`` items of each sequence, left-padded with 0, trimmed to the longest."""
    width = max(1, min(max_len, max((len(s) for s in sequences), default=1)))
    out = np.zeros((len(sequences), width), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = seq[-width:]
        if len(tail):
            out[row, width - len(tail) :] = tail
    return out


def trim_padding(*batches: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Drop leading columns that are padding in every row of the first tensor."""
    nonzero = (batches[0] != 0).any(dim=0)
    first = int(torch.argmax(nonzero.int())) if bool(nonzero.any()) else batches[0].shape[1] - 1
    return tuple(b[:, first:] for b in batches)


class CountedModel(SequenceModel):
    """A model fitted by counting, not by gradient steps: ``fit(train sequences)`` fills its
    buffers. Their sizes depend on the data (a sparse table of rules, the training sessions), so
    loading a checkpoint resizes each buffer to the saved one before copying it."""

    trainable = False

    def fit(self, sequences: tuple[np.ndarray, ...]) -> None:
        raise NotImplementedError

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        for name in self._buffers:
            if (key := prefix + name) in state_dict:
                self._buffers[name] = torch.empty_like(state_dict[key], device=self._buffers[name].device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def item_popularity(sequences: tuple[np.ndarray, ...], n_items: int) -> torch.Tensor:
    """(n_items + 1,) share of training events per item index (padding 0)."""
    counts = (
        np.bincount(np.concatenate(sequences), minlength=n_items + 1) if sequences else np.zeros(n_items + 1)
    )
    counts = counts.astype(np.float64)
    counts[0] = 0.0
    total = counts.sum()
    return torch.as_tensor(counts / total if total else counts, dtype=torch.float32)


def csr_row_entries(crow: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The entries of ``rows`` of a CSR matrix with row pointers ``crow``, as (position in ``rows``,
    index into the matrix's column and value arrays) pairs, without a Python loop."""
    starts = crow[rows]
    counts = crow[rows + 1] - starts
    which = torch.repeat_interleave(torch.arange(len(rows), device=rows.device), counts)
    first = torch.cumsum(counts, 0) - counts  # where each row's entries begin in the output
    index = torch.repeat_interleave(starts - first, counts) + torch.arange(len(which), device=rows.device)
    return which, index


def csr_from_pairs(
    rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, n_rows: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(crow, col, val) of the sparse ``n_rows``-row matrix summing ``weights`` per (row, col)."""
    if len(rows) == 0:
        return torch.zeros(n_rows + 1, dtype=torch.long), torch.zeros(0, dtype=torch.long), torch.zeros(0)
    width = int(cols.max()) + 1
    keys, inverse = np.unique(rows.astype(np.int64) * width + cols, return_inverse=True)
    sums = np.bincount(inverse, weights=weights)
    key_rows = keys // width
    crow = np.concatenate([[0], np.cumsum(np.bincount(key_rows, minlength=n_rows))])
    return (
        torch.as_tensor(crow, dtype=torch.long),
        torch.as_tensor(keys % width, dtype=torch.long),
        torch.as_tensor(sums, dtype=torch.float32),
    )
