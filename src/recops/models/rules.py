"""Transition baselines: the next item scored from the last one by counted rules.

Both keep a sparse table ``rules[i, j]`` (CSR buffers) and score every item ``j`` after a
session ending in ``i`` as ``rules[i, j] + smoothing * popularity[j]``: the rules rank what
followed ``i``, and popularity ranks the rest (and every item after an item never seen).

- :class:`Markov`: a first-order Markov chain, ``rules[i, j]`` = how often ``j`` came right
  after ``i`` in a training sequence.
- :class:`SequentialRules` (SR; Ludewig & Jannach, "Evaluation of session-based
  recommendation algorithms", 2018): ``j`` after ``i`` at any gap up to ``steps`` positions,
  each occurrence weighted ``1 / gap``.

On the session data sets of the session-rec studies these match or beat neural models, which
is why the gate compares every challenger with them.
"""

from __future__ import annotations

import numpy as np
import torch

from recops.config import MarkovConfig, SRConfig
from recops.models.base import CountedModel, csr_from_pairs, csr_row_entries, item_popularity


class TransitionRules(CountedModel):
    def __init__(self, config: MarkovConfig | SRConfig, n_items: int) -> None:
        super().__init__(n_items, config.max_len)
        self.config = config
        self.register_buffer("popularity", torch.zeros(n_items + 1))
        self.register_buffer("crow", torch.zeros(n_items + 2, dtype=torch.long))
        self.register_buffer("col", torch.zeros(0, dtype=torch.long))
        self.register_buffer("val", torch.zeros(0))

    def max_gap(self) -> int:
        raise NotImplementedError

    def fit(self, sequences: tuple[np.ndarray, ...]) -> None:
        sources, targets, weights = [], [], []
        for gap in range(1, self.max_gap() + 1):
            for seq in sequences:
                if len(seq) > gap:
                    sources.append(seq[:-gap])
                    targets.append(seq[gap:])
                    weights.append(np.full(len(seq) - gap, 1.0 / gap))
        pairs = [np.concatenate(p) if p else np.zeros(0) for p in (sources, targets, weights)]
        crow, col, val = csr_from_pairs(
            pairs[0].astype(np.int64), pairs[1].astype(np.int64), pairs[2], self.n_items + 1
        )
        self.popularity = item_popularity(sequences, self.n_items).to(self.popularity.device)
        self.crow, self.col, self.val = (t.to(self.crow.device) for t in (crow, col, val))

    @torch.inference_mode()
    def predict(self, input_ids: torch.Tensor) -> torch.Tensor:
        scores = (self.config.smoothing * self.popularity).expand(input_ids.shape[0], -1).clone()
        which, index = csr_row_entries(self.crow, input_ids[:, -1])
        scores.index_put_((which, self.col[index]), self.val[index], accumulate=True)
        scores[:, 0] = float("-inf")
        return scores


class Markov(TransitionRules):
    def max_gap(self) -> int:
        return 1


class SequentialRules(TransitionRules):
    def max_gap(self) -> int:
        return self.config.steps  # type: ignore[union-attr]
