"""Most-popular baseline: every session gets the items most frequent in training."""

from __future__ import annotations

import numpy as np
import torch

from recops.config import PopularConfig
from recops.models.base import SequenceModel


class Popular(SequenceModel):
    trainable = False

    def __init__(self, config: PopularConfig, n_items: int) -> None:
        super().__init__(n_items, config.max_len)
        self.config = config
        self.register_buffer("counts", torch.zeros(n_items + 1))

    def fit(self, sequences: tuple[np.ndarray, ...]) -> None:
        counts = np.bincount(np.concatenate(sequences), minlength=self.n_items + 1) if sequences else 0
        self.counts.copy_(torch.as_tensor(counts, dtype=torch.float32))

    @torch.inference_mode()
    def predict(self, input_ids: torch.Tensor) -> torch.Tensor:
        scores = torch.log1p(self.counts).expand(input_ids.shape[0], -1).clone()
        scores[:, 0] = float("-inf")
        return scores
