"""Typed interactions: item vocabulary, time-ordered sequences and a data fingerprint."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd

PAD = 0

IdArray = pd.Series | pd.Index | np.ndarray


@dataclass(frozen=True)
class ItemVocab:
    """External item ids <-> model indices. Index 0 is padding; item ``items[i]`` is index ``i + 1``."""

    items: tuple[Any, ...]

    @cached_property
    def _index(self) -> dict[Any, int]:
        """Item -> index, for lookups one at a time; built on first use (indices_of needs none)."""
        return {item: i + 1 for i, item in enumerate(self.items)}

    @cached_property
    def _lookup(self) -> pd.Index:
        return pd.Index(list(self.items))

    def __len__(self) -> int:
        return len(self.items)

    @property
    def n_indices(self) -> int:
        """Size of the score vector: every item plus the padding index."""
        return len(self.items) + 1

    @classmethod
    def from_items(cls, items: Iterable[Any]) -> ItemVocab:
        """The distinct items in sorted order (Python's order: ints by value, text by code point)."""
        values = items if isinstance(items, IdArray) else pd.Series(list(items))
        unique = pd.unique(values)
        if isinstance(unique, np.ndarray) and unique.dtype.kind in "iu":
            return cls(tuple(np.sort(unique).tolist()))
        return cls(tuple(_plain(v) for v in sorted(unique)))

    def index_of(self, item: Any) -> int:
        """Index of ``item``, or PAD (0) if it is unknown."""
        return self._index.get(_plain(item), PAD)

    def indices_of(self, values: Iterable[Any]) -> np.ndarray:
        """Index of each value, PAD (0) where unknown: :meth:`index_of` for a whole column.

        Integer and text columns (what validated events hold) are looked up at once; anything
        else (mixed kinds, floats, booleans) goes value by value, with Python's equality.
        """
        if not isinstance(values, IdArray):
            values = list(values)
        target = values if isinstance(values, pd.Index) else pd.Index(values)
        lookup = self._lookup
        kinds = _id_kind(lookup), _id_kind(target)
        if None in kinds or not lookup.is_unique:
            return np.fromiter((self.index_of(v) for v in values), np.int64, len(target))
        if kinds[0] != kinds[1]:  # an integer never equals a text id
            return np.zeros(len(target), dtype=np.int64)
        return lookup.get_indexer(target).astype(np.int64) + 1  # not found: -1 + 1 = PAD

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


def _id_kind(index: pd.Index) -> Literal["int", "text"] | None:
    """``int`` for int64 ids, ``text`` for strings only; None for anything else."""
    if index.dtype == np.int64:
        return "int"
    return "text" if len(index) and index.inferred_type == "string" else None


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
    fingerprint = fingerprint_events(events)  # first, so its hashes are gone before the sort
    vocab = vocab or ItemVocab.from_items(events["item_id"])
    items, codes, uniques = _known_events_in_order(events, vocab)
    starts = np.flatnonzero(np.diff(codes, prepend=-1))  # each sequence's first event
    ends = np.append(starts[1:], len(items))
    ids = uniques.take(codes[starts]).tolist()
    return Interactions(
        sequences=tuple(items[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)),
        sequence_ids=tuple(_plain(i) for i in ids) if uniques.dtype == object else tuple(ids),
        vocab=vocab,
        fingerprint=fingerprint,
        n_events=len(items),
        unknown_events=len(events) - len(items),
    )


def _known_events_in_order(events: pd.DataFrame, vocab: ItemVocab) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """Item indices and sequence codes of the events whose item ``vocab`` knows, by sequence
    (codes in order of first appearance) then time, and the sequence id of each code."""
    item_index = vocab.indices_of(events["item_id"])
    codes, uniques = pd.factorize(events["sequence_id"], sort=False)
    # lexsort is stable: equal timestamps keep their file order, as RecBole does.
    order = np.lexsort((events["timestamp"].to_numpy(), codes))
    order = order[item_index[order] != PAD]
    return item_index[order], codes[order], uniques
