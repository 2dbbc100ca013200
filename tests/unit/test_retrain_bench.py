"""The two ways new data arrives in `recops bench retrain`."""

from __future__ import annotations

import pytest

from recops.data import validate_events
from recops.training.retrain_bench import snapshots
from tests.helpers import cycle_events

pytestmark = pytest.mark.unit


def test_time_arrival_keeps_the_first_90_percent_by_time():
    events = validate_events(cycle_events(n_sessions=100))
    old, new = snapshots(events, "time")
    assert len(new) == len(events) and len(old) == int(len(events) * 0.9)
    assert old["timestamp"].max() <= new["timestamp"].sort_values().iloc[len(old)]


def test_session_arrival_adds_sessions_with_new_items():
    events = validate_events(cycle_events(n_sessions=200, n_items=40))
    old, new = snapshots(events, "sessions", seed=3)
    assert old.equals(validate_events(cycle_events(n_sessions=200, n_items=40)))
    assert new["sequence_id"].nunique() == 200 + 20  # 10% more sessions
    added = set(new["item_id"]) - set(old["item_id"])
    assert added and len(added) <= 2 and min(added) > old["item_id"].max()  # 5% of 40 items, new int ids
    replaced = new[new["sequence_id"].isin(set(new["sequence_id"]) - set(old["sequence_id"]))]
    assert set(replaced["item_id"]) & added  # only the new sessions carry them
    with pytest.raises(ValueError, match="arrival must be sessions or time"):
        snapshots(events, "later")
