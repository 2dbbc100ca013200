"""Descriptive statistics of an event table.

:class:`EventProfile` (:func:`profile_events`) is what the exploration notebook plots: session
lengths, item popularity (long tail), repeat rate, and time between events.

:class:`DataProfile` (:func:`data_profile`) is the compact description of a training set that
drift checks need (events per item, sequences per length, the last timestamp and the
fingerprint), saved with every registered model (``data_profile.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

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


LENGTH_CAP = 50  # sequences longer than this are counted as this long


@dataclass(frozen=True)
class DataProfile:
    item_counts: dict[Any, int]  # events per item id
    length_counts: dict[int, int]  # sequences per length (capped at LENGTH_CAP)
    n_events: int
    last_timestamp: float
    fingerprint: str = ""

    def to_json(self) -> str:
        # Item ids are ints or strings; JSON object keys are strings, so keep (id, count) pairs.
        return json.dumps(
            {
                "item_counts": [[_plain(k), int(v)] for k, v in self.item_counts.items()],
                "length_counts": [[int(k), int(v)] for k, v in self.length_counts.items()],
                "n_events": self.n_events,
                "last_timestamp": self.last_timestamp,
                "fingerprint": self.fingerprint,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> DataProfile:
        raw = json.loads(text)
        return cls(
            item_counts={k: v for k, v in raw["item_counts"]},
            length_counts={int(k): v for k, v in raw["length_counts"]},
            n_events=int(raw["n_events"]),
            last_timestamp=float(raw["last_timestamp"]),
            fingerprint=raw.get("fingerprint", ""),
        )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _length_counts(events: pd.DataFrame) -> dict[int, int]:
    lengths = events.groupby("sequence_id", sort=False).size().clip(upper=LENGTH_CAP)
    return {int(k): int(v) for k, v in lengths.value_counts().items()}


def data_profile(events: pd.DataFrame, fingerprint: str = "") -> DataProfile:
    """The profile of validated events (``recops.data.load_events`` output)."""
    counts = events["item_id"].value_counts(sort=False)
    return DataProfile(
        item_counts={_plain(k): int(v) for k, v in counts.items()},
        length_counts=_length_counts(events),
        n_events=len(events),
        last_timestamp=float(events["timestamp"].max()),
        fingerprint=fingerprint,
    )
