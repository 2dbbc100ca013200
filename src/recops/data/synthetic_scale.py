"""The "successors" sessions at catalogue scale (``structure = "scale"``), vectorised.

The same process as :func:`recops.data.synthetic.generate_sessions` with structure
"successors" (Zipf popularity over a random order of the items, categories, successor lists
per item and, with ``order = 2``, per context; follow a successor, else stay in the category
by popularity, else jump to a popular item; exponential gaps), but not the same draws: each
step draws the next item for every session of a block at once. Items are drawn by inverse CDF
on one cumulative popularity over the items sorted by category, where the whole catalogue and
each category are a contiguous range, so a draw costs O(log items), not O(items). Output
columns are allocated once from the session lengths and filled block by block: memory is the
output frame plus O(items + sessions), never a sessions x length matrix. (10M events over 1M
items take seconds; "successors" loops in Python per event and sums 1M probabilities per draw.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recops.config import SyntheticConfig
from recops.data.synthetic import (
    EVENT_TYPES,
    MEAN_GAP,
    N_CONTEXTS,
    N_SUCCESSORS,
    STAY_IN_CATEGORY,
    SUCCESSOR_WEIGHTS,
    _catalogue,
    _session_shapes,
)

BLOCK_SESSIONS = 131_072  # sessions drawn together: big enough to vectorise, small next to the output
SUCCESSOR_CDF = np.cumsum(SUCCESSOR_WEIGHTS)
# event_type as a Categorical (one byte a row, not a string object): the same 6:1:1 odds
EVENT_NAMES, EVENT_CODES = np.unique(EVENT_TYPES, return_inverse=True)
EVENT_CODES = EVENT_CODES.astype(np.int8)


@dataclass(frozen=True)
class Catalogue:
    """The items, their popularity and successors: draws the next items of many sessions at once."""

    category: np.ndarray  # (items,) each item's category
    by_category: np.ndarray  # (items,) the items, sorted by category
    first: np.ndarray  # (categories + 1,) where each category starts in by_category
    edges: np.ndarray  # (items + 1,) cumulative popularity along by_category, from 0
    successors: np.ndarray  # (contexts, items, N_SUCCESSORS) int32; see successor_tables

    @classmethod
    def draw(cls, rng: np.random.Generator, config: SyntheticConfig) -> Catalogue:
        category, popularity = _catalogue(rng, config)
        by_category = np.argsort(category, kind="stable")
        first = np.searchsorted(category[by_category], np.arange(config.n_categories + 1))
        edges = np.concatenate([[0.0], np.cumsum(popularity[by_category])])
        n_tables = N_CONTEXTS if config.order == 2 else 1
        return cls(
            category, by_category, first, edges, successor_tables(rng, category, by_category, first, n_tables)
        )

    def popular(self, u: np.ndarray, low: np.ndarray | int, high: np.ndarray | int) -> np.ndarray:
        """Items at positions [low, high) of by_category, by popularity; ``u`` uniform in [0, 1)."""
        target = self.edges[low] + u * (self.edges[high] - self.edges[low])
        position = np.searchsorted(self.edges, target, side="right") - 1
        return self.by_category[np.clip(position, low, np.asarray(high) - 1)]

    def anywhere(self, u: np.ndarray) -> np.ndarray:
        return self.popular(u, 0, len(self.category))

    def in_category_of(self, items: np.ndarray, u: np.ndarray) -> np.ndarray:
        own = self.category[items]
        return self.popular(u, self.first[own], self.first[own + 1])

    def successor_of(self, items: np.ndarray, context: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One of each item's successors in its context's table, by SUCCESSOR_WEIGHTS."""
        slot = np.minimum(np.searchsorted(SUCCESSOR_CDF, u, side="right"), N_SUCCESSORS - 1)
        return self.successors[context, items, slot]


@dataclass(frozen=True)
class EventColumns:
    """The output columns, one row per event, filled in place block by block."""

    items: np.ndarray
    times: np.ndarray
    categories: np.ndarray

    @classmethod
    def empty(cls, n_events: int) -> EventColumns:
        return cls(np.empty(n_events, np.int64), np.empty(n_events, np.float64), np.empty(n_events, np.int64))


def scale_sessions(config: SyntheticConfig) -> pd.DataFrame:
    """Events with columns session_id, item_id, timestamp, event_type (categorical), category."""
    rng = np.random.default_rng(config.seed)
    columns, lengths = _walk(rng, config)
    np.round(columns.times, 3, out=columns.times)
    event_codes = EVENT_CODES[rng.integers(0, len(EVENT_TYPES), size=len(columns.items), dtype=np.int8)]
    return pd.DataFrame(
        {
            "session_id": np.repeat(np.arange(1, config.n_sessions + 1, dtype=np.int64), lengths),
            "item_id": columns.items,
            "timestamp": columns.times,
            "event_type": pd.Categorical.from_codes(event_codes, categories=EVENT_NAMES),
            "category": columns.categories,
        },
        copy=False,
    )


def _walk(rng: np.random.Generator, config: SyntheticConfig) -> tuple[EventColumns, np.ndarray]:
    """Every session's clicks, and the sessions' lengths (the catalogue is freed on return)."""
    catalogue = Catalogue.draw(rng, config)
    lengths, starts = _session_shapes(rng, config)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    columns = EventColumns.empty(int(offsets[-1]))
    for begin in range(0, config.n_sessions, BLOCK_SESSIONS):
        block = slice(begin, begin + BLOCK_SESSIONS)
        _fill_block(rng, config, catalogue, lengths[block], starts[block], offsets[block], columns)
    return columns, lengths


def successor_tables(
    rng: np.random.Generator, category: np.ndarray, by_category: np.ndarray, first: np.ndarray, n_tables: int
) -> np.ndarray:
    """(tables, items, N_SUCCESSORS) distinct successors of each item, itself excluded: from its
    category, or from the whole catalogue where the category has too few other items."""
    n_items = len(category)
    start = first[category]
    size = first[category + 1] - start
    in_category = size > N_SUCCESSORS
    pool = np.where(in_category, size - 1, n_items - 1)
    rank = np.empty(n_items, dtype=np.int64)  # each item's position within its category
    rank[by_category] = np.arange(n_items) - first[category[by_category]]
    own = np.where(in_category, rank, np.arange(n_items))[:, None]  # the item itself, skipped
    tables = np.empty((n_tables, n_items, N_SUCCESSORS), dtype=np.int32)
    for table in tables:
        picks = _distinct_picks(rng, pool, N_SUCCESSORS)
        picks += picks >= own
        table[:] = picks
        table[in_category] = by_category[start[in_category, None] + picks[in_category]]
    return tables


def _distinct_picks(rng: np.random.Generator, pool: np.ndarray, k: int) -> np.ndarray:
    """(len(pool), k): per row, k distinct values of [0, pool) in random order, uniformly."""
    picks = np.empty((len(pool), k), dtype=np.int64)
    for j in range(k):
        pick = rng.integers(0, pool - j)  # the pick-th value not taken yet
        for taken in np.sort(picks[:, :j], axis=1).T:  # ascending: each one taken shifts it up
            pick += pick >= taken
        picks[:, j] = pick
    return picks


def _fill_block(
    rng: np.random.Generator,
    config: SyntheticConfig,
    catalogue: Catalogue,
    lengths: np.ndarray,
    starts: np.ndarray,
    offsets: np.ndarray,
    columns: EventColumns,
) -> None:
    """Draw a block of sessions, step by step, into ``columns`` at the sessions' ``offsets``."""
    order = np.argsort(-lengths, kind="stable")  # longest first: the sessions still going are a prefix
    lengths, positions = lengths[order], offsets[order]
    going = np.searchsorted(-lengths, -np.arange(1, lengths[0]), side="left")  # longer than each step
    stay = config.successor_prob + (1 - config.successor_prob) * STAY_IN_CATEGORY

    current = catalogue.anywhere(rng.random(len(order)))
    context = np.zeros(len(order), dtype=np.int64)  # the successor table: from the previous item's category
    clock = starts[order]
    for step in range(lengths[0]):
        if step > 0:
            n = going[step - 1]
            current, context, clock, positions = current[:n], context[:n], clock[:n], positions[:n]
            r, u = rng.random(n), rng.random(n)
            follow = np.flatnonzero(r < config.successor_prob)
            same = np.flatnonzero((r >= config.successor_prob) & (r < stay))
            elsewhere = np.flatnonzero(r >= stay)
            chosen = np.empty(n, dtype=np.int64)
            chosen[follow] = catalogue.successor_of(current[follow], context[follow], u[follow])
            chosen[same] = catalogue.in_category_of(current[same], u[same])
            chosen[elsewhere] = catalogue.anywhere(u[elsewhere])
            context = catalogue.category[current] % len(catalogue.successors)
            current = chosen
            clock = clock + rng.exponential(MEAN_GAP, size=n) + 1.0
        at = positions + step
        columns.items[at] = current + 1
        columns.times[at] = clock
        columns.categories[at] = catalogue.category[current]
