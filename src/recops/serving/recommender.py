"""Recommendations for one session, with exactly the scoring code that evaluation uses.

``Recommender`` wraps a checkpoint: external item ids in, external item ids out. Unknown items
are reported and ignored; a session with no known item gets the most popular training items,
flagged as ``fallback="popular"``. Sessions longer than the model's window use their most
recent events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from recops.models import SequenceModel
from recops.models.base import pad_left
from recops.serving import item_index
from recops.training.checkpoint import Checkpoint
from recops.training.evaluate import eval_batch_size, score_histories, target_ranks, top_k


@dataclass(frozen=True)
class Recommendation:
    items: list[tuple[Any, float]]  # (external item id, score), best first
    unknown_items: list[Any] = field(default_factory=list)
    fallback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": [{"item_id": item, "score": score} for item, score in self.items],
            "unknown_items": self.unknown_items,
            "fallback": self.fallback,
        }


class Recommender:
    """``quantized``: find each session's top k through an int8 copy of the item table
    (recops.serving.item_index: exact, a quarter of the memory traffic); ``None`` builds it for
    catalogues of ``item_index.MIN_ITEMS`` or more, scored by dot products on the CPU."""

    def __init__(
        self, checkpoint: Checkpoint, device: str | torch.device = "cpu", quantized: bool | None = None
    ) -> None:
        self.checkpoint = checkpoint
        self.vocab = checkpoint.vocab
        self.model: SequenceModel = checkpoint.build_model(device)
        device = torch.device(device)
        if quantized is None:
            quantized = item_index.wanted(len(self.vocab), device, self.model)
        self.index = item_index.QuantizedItemIndex(self.model.output_embeddings()) if quantized else None
        counts = np.asarray(checkpoint.item_counts or [0] * len(self.vocab), dtype=np.float64)
        self._popular_order = np.argsort(-counts, kind="stable") + 1  # item indices, most popular first
        self._popular_scores = np.log1p(counts)

    @classmethod
    def from_path(cls, path: str, device: str | torch.device = "cpu") -> Recommender:
        return cls(Checkpoint.load(path), device)

    @property
    def n_items(self) -> int:
        return len(self.vocab)

    def recommend(self, session: Sequence[Any], k: int = 10, exclude_seen: bool = True) -> Recommendation:
        return self.recommend_batch([session], k, exclude_seen)[0]

    def recommend_batch(
        self, sessions: Sequence[Sequence[Any]], k: int = 10, exclude_seen: bool = True
    ) -> list[Recommendation]:
        if not 1 <= k <= self.n_items:
            raise ValueError(f"k must be between 1 and {self.n_items} (the catalogue size), got {k}")
        encoded = [self.vocab.encode(list(session)) for session in sessions]
        known = [i for i, (indices, _) in enumerate(encoded) if len(indices)]
        results: list[Recommendation | None] = [None] * len(sessions)
        if known and self.index is not None:
            histories = [encoded[i][0] for i in known]
            for row, i in enumerate(known):
                results[i] = self._recommend_indexed(histories[row], encoded[i][1], k, exclude_seen)
            known = [i for i in known if results[i] is None]  # the index could not prune: score all
        if known:
            histories = [encoded[i][0] for i in known]
            scores = score_histories(self.model, histories).clone()
            if exclude_seen:  # every (row, item) of the histories at once
                rows = np.repeat(np.arange(len(histories)), [len(history) for history in histories])
                items = np.concatenate(histories).astype(np.int64)
                where = (torch.from_numpy(rows).to(scores.device), torch.from_numpy(items).to(scores.device))
                scores[where] = float("-inf")
            values, indices = top_k(scores, k)
            for row, i in enumerate(known):
                pairs = [
                    (self.vocab.items[int(idx) - 1], float(val))
                    for val, idx in zip(values[row].tolist(), indices[row].tolist(), strict=True)
                    if val != float("-inf")
                ]
                results[i] = Recommendation(pairs, encoded[i][1])
        for i, (_, unknown) in enumerate(encoded):
            if results[i] is None:
                top = self._popular_order[:k]
                pairs = [(self.vocab.items[idx - 1], float(self._popular_scores[idx - 1])) for idx in top]
                results[i] = Recommendation(pairs, unknown, fallback="popular")
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def _recommend_indexed(
        self, history: np.ndarray, unknown: list[Any], k: int, exclude_seen: bool
    ) -> Recommendation | None:
        """``recommend`` for one known history through the quantized index: the same items and
        scores as scoring the whole catalogue (``predict``), from the candidates it certifies."""
        model = self.model
        batch = torch.as_tensor(pad_left([history], model.max_len))
        hidden = model.encode(batch)[0, -1, :].float()
        window = np.unique(batch[0][batch[0] != 0].numpy())  # what predict adds the history bias to
        # excluded items are out; otherwise the window's items are scored exactly, bias and all
        excluded = np.unique(history) if exclude_seen else window
        candidates = self.index.candidates(hidden.numpy(), k, excluded)  # type: ignore[union-attr]
        if candidates is None:
            return None
        if not exclude_seen:
            candidates = np.union1d(candidates, window)
        index = torch.from_numpy(candidates.astype(np.int64))
        scores = (model.output_embeddings()[index] @ hidden).float()
        if not exclude_seen and model.history_bias is not None:
            scores[torch.from_numpy(np.isin(candidates, window))] += model.history_bias.float()
        order = torch.sort(scores, descending=True, stable=True).indices[:k]  # ties: lower index
        items = [self.vocab.items[i - 1] for i in index[order].tolist()]
        return Recommendation(list(zip(items, scores[order].tolist(), strict=True)), unknown)

    def rank_targets(self, sessions: Sequence[Sequence[Any]], targets: Sequence[Any]) -> np.ndarray:
        """1-based rank of each target among the catalogue after its session, by the scores
        ``recommend`` answers with (the model's, or popularity for a session with no known item),
        unmasked as in evaluation, ties by item index. A target this model does not know ranks
        last (``n_items + 1``): it can never be recommended. This is how a model is scored on
        another model's test split (the gate, after the data changed)."""
        if len(sessions) != len(targets):
            raise ValueError(f"{len(sessions)} sessions but {len(targets)} targets")
        ranks = np.full(len(targets), self.n_items + 1, dtype=np.int64)
        popular = torch.as_tensor(np.concatenate([[-np.inf], self._popular_scores]), dtype=torch.float32)
        rows = [i for i, t in enumerate(targets) if self.vocab.index_of(t) != 0]
        size = eval_batch_size(self.n_items + 1)
        for start in range(0, len(rows), size):
            batch = rows[start : start + size]
            encoded = [self.vocab.encode(list(sessions[i]))[0] for i in batch]
            known = [j for j, history in enumerate(encoded) if len(history)]
            scores = popular.expand(len(batch), -1).clone()
            if known:
                scores[known] = score_histories(self.model, [encoded[j] for j in known]).to(scores.device)
            wanted = torch.as_tensor([self.vocab.index_of(targets[i]) for i in batch])
            ranks[batch] = target_ranks(scores, wanted).numpy()
        return ranks


def example_recommendations(checkpoint: Checkpoint, eval_set: Any, k: int = 5, n: int = 3) -> dict[str, Any]:
    """Top-k for the first test histories (last five events shown): a quick look for cards and reports."""
    recommender = Recommender(checkpoint)
    examples = []
    for history in eval_set.inputs[:n]:
        session = checkpoint.vocab.decode(history[-5:])
        examples.append({"session": session, **recommender.recommend(session, k).to_dict()})
    return {**examples[0], "all": examples} if examples else {"session": [], "items": [], "all": []}
