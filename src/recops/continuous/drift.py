"""Has the data moved away from what the champion was trained on?

A :class:`DataProfile` is the compact description of a training set that drift needs: events
per item, sequences per length, the last timestamp and the fingerprint. It is saved with every
registered model (``data_profile.json``). :func:`drift_report` compares the events that arrived
after the profile's last timestamp (all current events when none are newer) with it:

- item popularity: Jensen-Shannon divergence (base 2, so 0..1) of the share of events per
  popularity bucket, the buckets being the reference's items ranked by count and cut into
  ``POPULARITY_BUCKETS`` equal groups. Per-item divergence would read a few hundred events
  from an unchanged catalogue of thousands of items as drift (most items get no event by
  chance); buckets keep the sampling noise small and catch what matters, events moving
  between the head and the tail;
- unseen items: share of new events on items the profile never saw (the model cannot rank them);
- session length: Jensen-Shannon divergence of sequences per length bucket (1, 2, 3-4, 5-8,
  ..., 33+), plus the mean lengths for the reader.

Each figure has a threshold in ``[drift]``; fewer than ``drift.min_events`` new events are
reported but never called drift (too few to judge).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recops.config import DriftConfig

LENGTH_CAP = 50  # sequences longer than this are counted as this long
POPULARITY_BUCKETS = 10
LENGTH_EDGES = (1, 2, 3, 5, 9, 17, 33)  # bucket i holds lengths [edge i, edge i+1)


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


def profile_events(events: pd.DataFrame, fingerprint: str = "") -> DataProfile:
    """The profile of validated events (``recops.data.load_events`` output)."""
    counts = events["item_id"].value_counts(sort=False)
    return DataProfile(
        item_counts={_plain(k): int(v) for k, v in counts.items()},
        length_counts=_length_counts(events),
        n_events=len(events),
        last_timestamp=float(events["timestamp"].max()),
        fingerprint=fingerprint,
    )


def js_divergence(p: Mapping[Any, float], q: Mapping[Any, float]) -> float:
    """Jensen-Shannon divergence (base 2, 0..1) of two count tables over the union of their keys."""
    keys = list(set(p) | set(q))
    a = np.array([p.get(k, 0) for k in keys], dtype=np.float64)
    b = np.array([q.get(k, 0) for k in keys], dtype=np.float64)
    if a.sum() == 0 or b.sum() == 0:
        return 0.0  # nothing to compare (e.g. every new event is on an unseen item: its own figure)
    a, b = a / a.sum(), b / b.sum()
    m = (a + b) / 2

    def kl(x: np.ndarray) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return max(0.0, min(1.0, (kl(a) + kl(b)) / 2))


def popularity_buckets(reference: Mapping[Any, int], counts: Mapping[Any, int]) -> dict[int, int]:
    """Events of ``counts`` per reference popularity bucket (0 = most popular); unseen items left out."""
    ranked = sorted(reference, key=lambda item: -reference[item])  # stable: ties keep their order
    bucket_of = {item: rank * POPULARITY_BUCKETS // len(ranked) for rank, item in enumerate(ranked)}
    out: dict[int, int] = {}
    for item, n in counts.items():
        if item in bucket_of:
            out[bucket_of[item]] = out.get(bucket_of[item], 0) + n
    return out


def length_buckets(length_counts: Mapping[int, int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for length, n in length_counts.items():
        bucket = int(np.searchsorted(LENGTH_EDGES, length, side="right")) - 1
        out[bucket] = out.get(bucket, 0) + n
    return out


def _mean_length(length_counts: Mapping[int, int]) -> float:
    total = sum(length_counts.values())
    return sum(k * v for k, v in length_counts.items()) / total if total else 0.0


@dataclass(frozen=True)
class DriftReport:
    window: str  # which events were compared: "new" (after the reference) or "all"
    new_events: int
    popularity_js: float
    unseen_share: float
    length_js: float
    mean_length_reference: float
    mean_length_new: float
    drifted: list[str] = field(default_factory=list)  # the figures above their threshold
    judged: bool = True  # False: fewer than drift.min_events events, so no verdict

    @property
    def detected(self) -> bool:
        return bool(self.drifted)

    def summary(self) -> str:
        figures = (
            f"popularity JS {self.popularity_js:.3f}, unseen items {self.unseen_share:.1%}, "
            f"session-length JS {self.length_js:.3f} (mean {self.mean_length_reference:.1f} -> "
            f"{self.mean_length_new:.1f})"
        )
        what = f"{self.new_events} {self.window} events"
        if not self.judged:
            return f"too few events to judge drift ({what}): {figures}"
        if self.detected:
            return f"drift in {', '.join(self.drifted)} over {what}: {figures}"
        return f"no drift over {what}: {figures}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "detected": self.detected}


def drift_report(reference: DataProfile, events: pd.DataFrame, config: DriftConfig) -> DriftReport:
    """Compare the events newer than the reference (else all current events) with the reference."""
    newer = events[events["timestamp"] > reference.last_timestamp]
    window, compared = ("new", newer) if len(newer) else ("all", events)
    current = profile_events(compared)
    unseen = sum(n for item, n in current.item_counts.items() if item not in reference.item_counts)
    report = DriftReport(
        window=window,
        new_events=len(compared),
        popularity_js=round(
            js_divergence(
                popularity_buckets(reference.item_counts, reference.item_counts),
                popularity_buckets(reference.item_counts, current.item_counts),
            ),
            6,
        ),
        unseen_share=round(unseen / max(1, current.n_events), 6),
        length_js=round(
            js_divergence(length_buckets(reference.length_counts), length_buckets(current.length_counts)), 6
        ),
        mean_length_reference=round(_mean_length(reference.length_counts), 3),
        mean_length_new=round(_mean_length(current.length_counts), 3),
    )
    if len(compared) < config.min_events:
        return DriftReport(**{**asdict(report), "judged": False})
    drifted = [
        name
        for name, value, limit in (
            ("item popularity", report.popularity_js, config.popularity_js),
            ("unseen items", report.unseen_share, config.unseen_share),
            ("session length", report.length_js, config.length_js),
        )
        if value > limit
    ]
    return DriftReport(**{**asdict(report), "drifted": drifted})
