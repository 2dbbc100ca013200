"""Typed interactions: item vocabulary, time-ordered sequences and a data fingerprint."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

PAD = 0


@dataclass(frozen=True)
class ItemVocab:
    """External item ids <-> model indices. Index 0 is padding; item ``items[i]`` is index ``i + 1``."""

    items: tuple[Any, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {item: i + 1 for i, item in enumerate(self.items)})

    def __len__(self) -> int:
        return len(self.items)

    @property
    def n_indices(self) -> int:
        """Size of the score vector: every item plus the padding index."""
        return len(self.items) + 1

    @classmethod
    def from_items(cls, items: Iterable[Any]) -> ItemVocab:
        unique = pd.unique(pd.Series(list(items)))
        return cls(tuple(_plain(v) for v in sorted(unique)))

    def index_of(self, item: Any) -> int:
        """Index of ``item``, or PAD (0) if it is unknown."""
        return self._index.get(_plain(item), PAD)  # type: ignore[attr-defined]

    def encode(self, items: Sequence[Any]) -> tuple[np.ndarray, list[Any]]:
        """Indices of the known items, in order, and the list of unknown items."""
        indices = [self.index_of(i) for i in items]
        unknown = [item for item, idx in zip(items, indices, strict=True) if idx == PAD]
        return np.asarray([i for i in indices if i != PAD], dtype=np.int64), unknown

    def decode(self, indices: Iterable[int]) -> list[Any]:
        return [self.items[int(i) - 1] for i in indices]

    def to_list(self) -> list[Any]:
        return list(self.items)


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so ids compare equal to JSON input and serialise."""
    return value.item() if isinstance(value, np.generic) else value


def fingerprint_events(events: pd.DataFrame) -> str:
    """Content hash of validated events (sequence, item, time, in row order): lineage for a model."""
    columns = ["sequence_id", "item_id", "timestamp"]
    hashed = pd.util.hash_pandas_object(events[columns], index=False).to_numpy()
    return "sha256:" + hashlib.sha256(hashed.tobytes()).hexdigest()


@dataclass(frozen=True)
class Interactions:
    """Sequences of item indices in time order (ties keep file order), one per session/user."""

    sequences: tuple[np.ndarray, ...]
    sequence_ids: tuple[Any, ...]
    vocab: ItemVocab
    fingerprint: str
    n_events: int
    unknown_events: int = 0  # events dropped because their item is not in a given vocabulary

    @property
    def n_items(self) -> int:
        return len(self.vocab)


def build_interactions(events: pd.DataFrame, vocab: ItemVocab | None = None) -> Interactions:
    """Group validated events into time-ordered sequences.

    With ``vocab`` (a trained model's), items outside it are dropped and counted in
    ``unknown_events``; otherwise the vocabulary is built from the events.
    """
    vocab = vocab or ItemVocab.from_items(events["item_id"])
    item_index = np.fromiter((vocab.index_of(i) for i in events["item_id"]), np.int64, len(events))
    codes, uniques = pd.factorize(events["sequence_id"], sort=False)
    # lexsort is stable: equal timestamps keep their file order, as RecBole does.
    order = np.lexsort((events["timestamp"].to_numpy(), codes))
    codes_sorted, items_sorted = codes[order], item_index[order]
    keep = items_sorted != 0
    codes_sorted, items_sorted = codes_sorted[keep], items_sorted[keep]
    bounds = np.flatnonzero(np.diff(codes_sorted)) + 1
    groups = np.split(items_sorted, bounds)
    ids = [_plain(uniques[c]) for c in codes_sorted[np.r_[0, bounds]]] if len(codes_sorted) else []
    return Interactions(
        sequences=tuple(groups) if len(items_sorted) else (),
        sequence_ids=tuple(ids),
        vocab=vocab,
        fingerprint=fingerprint_events(events),
        n_events=int(keep.sum()),
        unknown_events=int((~keep).sum()),
    )
