"""Descriptive statistics of an event table: what the exploration notebook plots.

The same figures describe a data set's shape for drift checks later: session lengths,
item popularity (long tail), repeat rate, and time between events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class EventProfile:
    n_events: int
    n_sequences: int
    n_items: int
    session_lengths: pd.Series  # events per sequence
    item_counts: pd.Series  # events per item, most popular first
    repeat_rate: float  # share of events whose item already occurred earlier in the same sequence
    seconds_between_events: pd.Series  # gaps inside sequences

    def top_share(self, fraction: float = 0.1) -> float:
        """Share of all events that go to the most popular ``fraction`` of items."""
        top = max(1, round(fraction * len(self.item_counts)))
        return float(self.item_counts.iloc[:top].sum() / self.item_counts.sum())

    def summary(self) -> dict[str, float]:
        return {
            "events": self.n_events,
            "sequences": self.n_sequences,
            "items": self.n_items,
            "median_session_length": float(self.session_lengths.median()),
            "mean_session_length": float(self.session_lengths.mean()),
            "top_10pct_items_share": self.top_share(0.1),
            "repeat_rate": self.repeat_rate,
            "median_seconds_between_events": float(self.seconds_between_events.median())
            if len(self.seconds_between_events)
            else 0.0,
        }


def profile_events(events: pd.DataFrame) -> EventProfile:
    """Profile validated events (columns sequence_id, item_id, timestamp)."""
    ordered = events.reset_index(drop=True)
    ordered = ordered.iloc[
        np.lexsort((ordered["timestamp"].to_numpy(), pd.factorize(ordered["sequence_id"])[0]))
    ]
    lengths = ordered.groupby("sequence_id", sort=False).size()
    repeats = ordered.duplicated(["sequence_id", "item_id"]).mean()
    gaps = ordered.groupby("sequence_id", sort=False)["timestamp"].diff().dropna()
    return EventProfile(
        n_events=len(ordered),
        n_sequences=len(lengths),
        n_items=int(ordered["item_id"].nunique()),
        session_lengths=lengths,
        item_counts=ordered["item_id"].value_counts(),
        repeat_rate=float(repeats),
        seconds_between_events=gaps,
    )
