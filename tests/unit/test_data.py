import numpy as np
import pandas as pd
import pytest

from recops.config import SyntheticConfig
from recops.data import (
    DataValidationError,
    ItemVocab,
    build_interactions,
    leave_one_out_split,
    validate_events,
)
from recops.data.synthetic import generate_sessions

pytestmark = pytest.mark.unit


def frame(**columns):
    base = {"session_id": [1, 1, 2], "item_id": [10, 11, 10], "timestamp": [1.0, 2.0, 3.0]}
    base.update(columns)
    return pd.DataFrame({k: v for k, v in base.items() if v is not None})


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (pd.DataFrame(), "no events"),
        (frame(item_id=None), "missing column 'item_id'"),
        (frame(timestamp=None), "missing column 'timestamp'"),
        (frame(session_id=None), "missing column 'session_id' or 'user_id'"),
        (
            frame(item_id=[10, None, 10]),
            "column 'item_id' has null values in 1 row(s): row 2 (rows counted from 1)",
        ),
        (
            frame(session_id=[1, 1, None]),
            "column 'session_id' has null values in 1 row(s): row 3 (rows counted from 1)",
        ),
        (
            frame(timestamp=[1.0, "soon", "2024-01-01"]),
            "column 'timestamp' has unparsable, missing or infinite values in 1 row(s): row 2 'soon'",
        ),
        (
            frame(timestamp=[1.0, float("inf"), 2.0]),
            "column 'timestamp' has unparsable, missing or infinite values in 1 row(s): row 2 inf",
        ),
        (frame(timestamp=[True, False, True]), "column 'timestamp' is boolean"),
    ],
)
def test_schema_errors_name_column_and_rows(bad, message):
    with pytest.raises(DataValidationError) as err:
        validate_events(bad, source="test.csv")
    assert message in str(err.value)
    assert str(err.value).startswith("test.csv:")


def test_unparsable_timestamp_error_shows_the_value():
    with pytest.raises(DataValidationError, match="'soon'"):
        validate_events(frame(timestamp=["2024-01-01", "soon", "2024-01-02"]))


def test_user_id_and_iso_dates_are_accepted():
    events = validate_events(
        pd.DataFrame(
            {
                "user_id": ["a", "a"],
                "item_id": ["x", "y"],
                "timestamp": ["2024-01-01", "2024-01-02"],
            }
        )
    )
    assert list(events.columns) == ["sequence_id", "item_id", "timestamp"]
    assert events["timestamp"].iloc[1] - events["timestamp"].iloc[0] == 86_400


@pytest.mark.parametrize("items", [[5, 3, 9], ["b", "a", "c"], [101, 7]])
def test_vocab_round_trip(items):
    vocab = ItemVocab.from_items(items)
    indices, unknown = vocab.encode(items)
    assert unknown == []
    assert 0 not in indices
    assert vocab.decode(indices) == items
    assert ItemVocab(tuple(vocab.to_list())) == vocab


def test_vocab_reports_unknown_items():
    vocab = ItemVocab.from_items([1, 2])
    indices, unknown = vocab.encode([1, 99, 2])
    assert list(indices) == [1, 2] and unknown == [99]


def test_sequences_are_time_ordered_and_ties_keep_file_order():
    events = validate_events(
        pd.DataFrame({"user_id": [1, 1, 1, 1], "item_id": [30, 10, 20, 40], "timestamp": [5, 1, 1, 0]})
    )
    inter = build_interactions(events)
    assert inter.vocab.decode(inter.sequences[0]) == [40, 10, 20, 30]


def test_split_is_leave_one_out_without_leakage():
    inter = build_interactions(
        validate_events(generate_sessions(SyntheticConfig(n_sessions=300, n_items=60)))
    )
    split = leave_one_out_split(inter)
    full = dict(zip(inter.sequence_ids, inter.sequences, strict=True))
    assert list(split.test.sequence_ids) == [sid for sid, seq in full.items() if len(seq) >= 3]
    assert split.valid.sequence_ids == split.test.sequence_ids
    for i, sid in enumerate(split.test.sequence_ids):
        seq = full[sid]
        assert split.test.targets[i] == seq[-1] and np.array_equal(split.test.inputs[i], seq[:-1])
        assert split.valid.targets[i] == seq[-2] and np.array_equal(split.valid.inputs[i], seq[:-2])
    train = dict(zip(split.train_ids, split.train, strict=True))
    for sid, seq in full.items():
        # training ends before the validation target: neither held-out event is training input
        expected = seq[:-2] if len(seq) >= 3 else seq
        if len(expected) >= 2:
            assert np.array_equal(train[sid], expected)
        else:
            assert sid not in train
    held_out = sum(2 for seq in full.values() if len(seq) >= 3)
    too_short = sum(
        len(seq) - (2 if len(seq) >= 3 else 0)
        for seq in full.values()
        if 0 < len(seq) - (2 if len(seq) >= 3 else 0) < 2
    )
    assert sum(len(s) for s in split.train) + held_out + too_short == inter.n_events


def test_fingerprint_changes_with_content_only():
    a = validate_events(frame())
    b = validate_events(frame())
    c = validate_events(frame(item_id=[10, 12, 10]))
    assert build_interactions(a).fingerprint == build_interactions(b).fingerprint
    assert build_interactions(a).fingerprint != build_interactions(c).fingerprint


def test_synthetic_is_seeded_and_long_tailed():
    cfg = SyntheticConfig(n_sessions=500, n_items=200)
    one, two = generate_sessions(cfg), generate_sessions(cfg)
    pd.testing.assert_frame_equal(one, two)
    counts = one["item_id"].value_counts()
    assert counts.iloc[:20].sum() > 0.3 * counts.sum()  # top 10% of items: a third of the events
    validate_events(one)


def two_back_same_category(events: pd.DataFrame) -> float:
    """How often an item shares its category with the item two clicks before it."""
    same = total = 0
    for _, session in events.groupby("session_id", sort=False):
        category = session["category"].to_numpy()
        same += int((category[2:] == category[:-2]).sum())
        total += len(category) - 2
    return same / total


def test_intent_sessions_are_seeded_and_the_session_reveals_the_intent():
    cfg = SyntheticConfig(n_sessions=2000, n_items=300, structure="intent")
    one = generate_sessions(cfg)
    pd.testing.assert_frame_equal(one, generate_sessions(cfg))
    validate_events(one)
    assert one.groupby("session_id").size().min() >= 2 and one["session_id"].nunique() == 2000
    assert one["item_id"].between(1, 300).all()
    # the item two clicks back says something the last one does not: the shopper's intent
    # (measured 0.316 with it, 0.142 without, 0.108 with neither intent nor complements)
    without_intent = generate_sessions(cfg.model_copy(update={"intent_strength": 0.0}))
    assert two_back_same_category(one) > 1.8 * two_back_same_category(without_intent)


def test_profile_counts_lengths_repeats_and_gaps():
    from recops.data.profile import profile_events

    events = validate_events(
        pd.DataFrame(
            {"session_id": [1, 1, 1, 2, 2], "item_id": [5, 6, 5, 7, 7], "timestamp": [0, 10, 30, 100, 160]}
        )
    )
    profile = profile_events(events)
    assert profile.n_events == 5 and profile.n_sequences == 2 and profile.n_items == 3
    assert sorted(profile.session_lengths.tolist()) == [2, 3]
    assert profile.repeat_rate == pytest.approx(2 / 5)
    assert sorted(profile.seconds_between_events.tolist()) == [10, 20, 60]
    assert profile.item_counts.index[0] in (5, 7) and profile.top_share(0.34) == pytest.approx(2 / 5)
