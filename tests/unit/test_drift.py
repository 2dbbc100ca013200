"""Drift figures, and ranking another split's targets."""

import numpy as np
import pandas as pd
import pytest

from recops.config import DriftConfig
from recops.continuous.drift import drift_report, js_divergence
from recops.data import validate_events
from recops.data.profile import DataProfile, data_profile
from recops.data.synthetic import new_events_like

pytestmark = pytest.mark.unit


def events(n_sessions=400, n_items=50, seed=0, start=0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1)
    rows = []
    for s in range(n_sessions):
        for t in range(rng.integers(3, 9)):
            item = int(rng.choice(n_items, p=weights / weights.sum())) + 1
            rows.append((s, item, start + 100.0 * s + t))
    return validate_events(pd.DataFrame(rows, columns=["session_id", "item_id", "timestamp"]))


@pytest.mark.parametrize(
    ("p", "q", "expected"),
    [({"a": 1}, {"a": 5}, 0.0), ({"a": 1}, {"b": 1}, 1.0), ({"a": 1, "b": 1}, {"a": 1}, 0.311278)],
)
def test_js_divergence_is_base_2_and_bounded(p, q, expected):
    assert js_divergence(p, q) == pytest.approx(expected, abs=1e-6)


def test_profile_round_trips_through_json_with_int_and_string_ids():
    frame = validate_events(
        pd.DataFrame({"session_id": [1, 1, 2], "item_id": ["x", "y", "x"], "timestamp": [1, 2, 3]})
    )
    profile = data_profile(frame, "sha256:abc")
    assert DataProfile.from_json(profile.to_json()) == profile
    assert profile.item_counts == {"x": 2, "y": 1} and profile.length_counts == {2: 1, 1: 1}


def test_new_events_from_the_same_distribution_are_not_drift():
    base = events()
    new = new_events_like(base, 150, seed=1)
    report = drift_report(data_profile(base), pd.concat([base, validate_events(new)]), DriftConfig())
    assert report.window == "new" and report.judged
    assert not report.detected, report.summary()
    assert report.popularity_js < 0.02 and report.unseen_share == 0.0


def test_shifted_popularity_is_drift():
    base = events()
    new = new_events_like(base, 150, shift_popularity=True, seed=1)
    report = drift_report(data_profile(base), pd.concat([base, validate_events(new)]), DriftConfig())
    assert report.drifted == ["item popularity"], report.summary()
    assert report.popularity_js > 0.1


def test_unseen_items_and_longer_sessions_are_drift():
    base = events()
    later = float(base["timestamp"].max()) + 1
    rows = [(10_000 + s, 1000 + (s * 7 + t) % 40, later + 100 * s + t) for s in range(40) for t in range(30)]
    new = validate_events(pd.DataFrame(rows, columns=["session_id", "item_id", "timestamp"]))
    report = drift_report(data_profile(base), pd.concat([base, new]), DriftConfig())
    assert set(report.drifted) == {"unseen items", "session length"}
    assert report.unseen_share == 1.0 and report.mean_length_new > report.mean_length_reference


def test_too_few_new_events_are_not_judged():
    base = events()
    new = validate_events(new_events_like(base, 5, shift_popularity=True))
    report = drift_report(data_profile(base), pd.concat([base, new]), DriftConfig(min_events=200))
    assert not report.judged and not report.detected
    assert report.summary().startswith("too few new events")


def test_no_new_events_says_so_and_judges_nothing():
    base = events()
    report = drift_report(data_profile(base), base, DriftConfig())
    assert not report.judged and not report.detected and report.new_events == 0
    assert report.summary() == (
        "no new events since the champion's data (its last event 1970-01-01 11:05:07 UTC): drift not judged"
    )


def test_old_events_never_dilute_the_new_ones():
    """Events the profile already describes are left out, not compared in place of new ones."""
    base = events()
    shifted = validate_events(new_events_like(base, 300, shift_popularity=True, seed=1))
    report = drift_report(data_profile(base), pd.concat([base, base, shifted]), DriftConfig())
    alone = drift_report(data_profile(base), shifted, DriftConfig())
    assert report.new_events == len(shifted) and report.popularity_js == alone.popularity_js
    assert report.drifted == ["item popularity"]
    replayed = shifted.assign(timestamp=shifted["timestamp"] - 10**6)  # not after the profile's data
    assert drift_report(data_profile(base), pd.concat([base, replayed]), DriftConfig()).new_events == 0
