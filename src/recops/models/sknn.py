"""V-SKNN, vector session-KNN (Ludewig & Jannach, "Evaluation of session-based recommendation
algorithms", 2018): recommend what the most similar training sessions contained.

The current session is a vector over items, each item weighted by its recency (``div``: the
item at position t of L weighs t/L; ``linear``: 1 - 0.1 (L - t), at least 0; ``same``: 1) and,
with ``idf``, by how rare it is. Its similarity to a training session is the sum of the weights
of the items they share; the ``k`` most similar sessions vote for each of their items with
their similarity. ``smoothing`` adds a small popularity prior, so items no neighbour holds are
still ranked by popularity rather than tied.

Training sessions are kept twice as sparse index lists (CSR buffers): the items of each session,
and the sessions holding each item, so one batch is scored by gathering and summing, with no
Python loop over sessions. Ties among neighbours go to the earlier training session.
"""

from __future__ import annotations

import numpy as np
import torch

from recops.config import VSKNNConfig
from recops.models.base import CountedModel, csr_from_pairs, csr_row_entries, item_popularity


class VSKNN(CountedModel):
    def __init__(self, config: VSKNNConfig, n_items: int) -> None:
        super().__init__(n_items, config.max_len)
        self.config = config
        self.register_buffer("popularity", torch.zeros(n_items + 1))
        self.register_buffer("idf", torch.ones(n_items + 1))
        self.register_buffer("crow", torch.zeros(1, dtype=torch.long))  # session -> its items
        self.register_buffer("col", torch.zeros(0, dtype=torch.long))
        self.register_buffer("item_crow", torch.zeros(n_items + 2, dtype=torch.long))  # item -> sessions
        self.register_buffer("item_col", torch.zeros(0, dtype=torch.long))

    def fit(self, sequences: tuple[np.ndarray, ...]) -> None:
        items = [np.unique(seq) for seq in sequences]
        rows = np.repeat(np.arange(len(items)), [len(i) for i in items])
        cols = np.concatenate(items) if items else np.zeros(0, dtype=np.int64)
        cols = cols.astype(np.int64)
        crow, col, _ = csr_from_pairs(rows, cols, np.ones(len(cols)), len(items))
        item_crow, item_col, _ = csr_from_pairs(cols, rows, np.ones(len(cols)), self.n_items + 1)
        holding = np.bincount(cols, minlength=self.n_items + 1).astype(np.float64)
        idf = np.where(holding > 0, np.log(max(len(items), 1) / np.maximum(holding, 1)) + 1.0, 0.0)
        device = self.popularity.device
        self.popularity = item_popularity(sequences, self.n_items).to(device)
        self.idf = torch.as_tensor(idf, dtype=torch.float32, device=device)
        self.crow, self.col = crow.to(device), col.to(device)
        self.item_crow, self.item_col = item_crow.to(device), item_col.to(device)

    def session_vectors(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, n_items + 1) weight of each item in each session (its latest position counts)."""
        B, T = input_ids.shape
        length = (input_ids != 0).sum(dim=1, keepdim=True).clamp(min=1)  # (B, 1)
        position = torch.arange(1, T + 1, device=input_ids.device) - (T - length)  # 1..L on real items
        if self.config.recency == "div":
            weight = position / length
        elif self.config.recency == "linear":
            weight = (1.0 - 0.1 * (length - position)).clamp(min=0.0)
        else:
            weight = torch.ones_like(position, dtype=torch.float32)
        weight = torch.where(input_ids != 0, weight.float(), 0.0)
        vectors = torch.zeros(B, self.n_items + 1, device=input_ids.device)
        vectors.scatter_reduce_(1, input_ids, weight, reduce="amax")
        vectors[:, 0] = 0.0
        return vectors * self.idf if self.config.idf else vectors

    @torch.inference_mode()
    def predict(self, input_ids: torch.Tensor) -> torch.Tensor:
        B = input_ids.shape[0]
        scores = (self.config.smoothing * self.popularity).expand(B, -1).clone()
        n_sessions = len(self.crow) - 1
        if n_sessions:
            vectors = self.session_vectors(input_ids)
            query, item = vectors.nonzero(as_tuple=True)  # the items of each session in the batch
            which, index = csr_row_entries(self.item_crow, item)  # ... and the sessions holding them
            similarity = torch.zeros(B, n_sessions, device=input_ids.device)
            similarity.index_put_(
                (query[which], self.item_col[index]), vectors[query, item][which], accumulate=True
            )
            order = torch.sort(similarity, dim=1, descending=True, stable=True)
            k = min(self.config.k, n_sessions)
            top, neighbours = order.values[:, :k], order.indices[:, :k]  # (B, k)
            which, index = csr_row_entries(self.crow, neighbours.flatten())
            scores.index_put_((which // k, self.col[index]), top.flatten()[which], accumulate=True)
        scores[:, 0] = float("-inf")
        return scores
