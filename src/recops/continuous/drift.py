"""Has the data moved away from what the champion was trained on?

A :class:`recops.data.profile.DataProfile` describes a training set and is saved with every
registered model (``data_profile.json``). :func:`drift_report` compares the events that arrived
after the profile's last timestamp, the new events, with it: never the events the profile
already describes, which would dilute a shift. With no new event it says so and judges nothing
(``recops simulate-events`` times its events after every known one; the data contract refuses
incoming sessions that reuse an earlier session's id, :mod:`recops.data.collisions`):

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
reported but never called drift (too few to judge), and no new event at all is reported as
that, with no figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from recops.config import DriftConfig
from recops.data.profile import DataProfile, data_profile

POPULARITY_BUCKETS = 10


LENGTH_EDGES = (1, 2, 3, 5, 9, 17, 33)  # bucket i holds lengths [edge i, edge i+1)


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
    window: str  # which events were compared: always "new" (after the reference's last event)
    new_events: int
    popularity_js: float
    unseen_share: float
    length_js: float
    mean_length_reference: float
    mean_length_new: float
    drifted: list[str] = field(default_factory=list)  # the figures above their threshold
    judged: bool = True  # False: fewer than drift.min_events new events, so no verdict
    reference_last: float = 0.0  # the reference's last timestamp (epoch seconds): new is after it

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
        if self.new_events == 0:
            since = datetime.fromtimestamp(self.reference_last, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            return f"no new events since the champion's data (its last event {since}): drift not judged"
        if not self.judged:
            return f"too few new events to judge drift ({what}): {figures}"
        if self.detected:
            return f"drift in {', '.join(self.drifted)} over {what}: {figures}"
        return f"no drift over {what}: {figures}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "detected": self.detected}


def drift_report(reference: DataProfile, events: pd.DataFrame, config: DriftConfig) -> DriftReport:
    """Compare the events newer than the reference with the reference; none: not judged."""
    compared = events[events["timestamp"] > reference.last_timestamp]
    if len(compared) == 0:
        mean = round(_mean_length(reference.length_counts), 3)
        return DriftReport(
            "new", 0, 0.0, 0.0, 0.0, mean, 0.0, judged=False, reference_last=reference.last_timestamp
        )
    current = data_profile(compared)
    unseen = sum(n for item, n in current.item_counts.items() if item not in reference.item_counts)
    report = DriftReport(
        window="new",
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
        reference_last=reference.last_timestamp,
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
