"""What every recommender shares: left-padded item-index input, full-catalogue scores.

Input is a ``(B, T)`` LongTensor of item indices, left-padded with 0, most recent item last.
``training_loss`` is full softmax cross-entropy over all items at every non-padding position
("SASRec + CE"); ``predict`` scores every item after the last position. Index 0 (padding)
always scores ``-inf``, so it is never ranked or recommended.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class SequenceModel(nn.Module):
    trainable = True

    def __init__(self, n_items: int, max_len: int) -> None:
        super().__init__()
        self.n_items = n_items
        self.max_len = max_len

    def encode(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Hidden state at every position: (B, T) -> (B, T, D)."""
        raise NotImplementedError

    def output_embeddings(self) -> torch.Tensor:
        """(n_items + 1, D) item vectors; scores are dot products with them."""
        raise NotImplementedError

    def training_loss(self, input_ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        hidden = self.encode(input_ids)  # (B, T, D)
        mask = targets != 0
        logits = hidden[mask] @ self.output_embeddings()[1:].T  # (N, n_items), padding left out
        return F.cross_entropy(logits.float(), targets[mask] - 1)

    @torch.inference_mode()
    def predict(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Scores of every index after the last position: (B, T) -> (B, n_items + 1)."""
        hidden = self.encode(input_ids)[:, -1, :]  # (B, D)
        scores = (hidden @ self.output_embeddings().T).float()
        scores[:, 0] = float("-inf")
        return scores


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
