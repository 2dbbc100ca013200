"""structure = "scale": the successors process, vectorised for 1M items and 10M events."""

import numpy as np
import pandas as pd
import pytest

from recops.config import ConfigError, SyntheticConfig
from recops.data import validate_events
from recops.data.synthetic import generate_sessions, scale_config

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return generate_sessions(scale_config(100_000, 10_000))


def next_item_accuracy(events: pd.DataFrame) -> tuple[float, float]:
    """Top-1 accuracy of the next item on the last 20% of sessions: a first-order Markov chain
    (the most frequent successor in the first 80%) and the most popular item."""
    session, item = events["session_id"].to_numpy(), events["item_id"].to_numpy()
    cut = np.quantile(session, 0.8)
    pairs = session[1:] == session[:-1]
    train, test = pairs & (session[1:] <= cut), pairs & (session[1:] > cut)
    counts = pd.DataFrame({"item": item[:-1][train], "next": item[1:][train]}).value_counts()
    best_next = counts.reset_index().drop_duplicates("item").set_index("item")["next"]
    most_popular = pd.Series(item[session <= cut]).value_counts().index[0]
    markov = pd.Series(item[:-1][test]).map(best_next).fillna(most_popular).to_numpy()
    return float(np.mean(markov == item[1:][test])), float(np.mean(item[1:][test] == most_popular))


def test_scale_config_sizes_the_grid_points():
    config = scale_config(10_000_000, 1_000_000, seed=3)
    assert config.structure == "scale" and config.n_items == 1_000_000 and config.seed == 3
    assert config.n_sessions == 1_000_000  # sessions average 2 + (mean_session_length - 1) = 10 events
    assert config.n_categories == 20_000  # the default's 50 items per category
    assert scale_config(100, 4).n_categories == SyntheticConfig().n_categories


def test_same_seed_same_events_and_the_target_size(events):
    pd.testing.assert_frame_equal(events, generate_sessions(scale_config(100_000, 10_000)), check_exact=True)
    other = generate_sessions(scale_config(100_000, 10_000, seed=8))
    assert not np.array_equal(events["item_id"].to_numpy()[:1000], other["item_id"].to_numpy()[:1000])
    assert abs(len(events) - 100_000) < 2_000
    assert events["session_id"].nunique() == 10_000 and events.groupby("session_id").size().min() >= 2
    assert events["item_id"].between(1, 10_000).all()
    assert list(events.columns) == ["session_id", "item_id", "timestamp", "event_type", "category"]


def test_popularity_is_long_tailed(events):
    counts = events["item_id"].value_counts()
    assert counts.iloc[:100].sum() > 0.25 * len(events)  # top 1% of the items (measured 44%)


def test_the_next_item_is_learnable(events):
    markov, popular = next_item_accuracy(events)
    assert markov > 0.25 and markov > 5 * popular  # measured 0.34 and 0.026


def test_sessions_stay_in_a_category_and_items_keep_theirs(events):
    assert (events.groupby("item_id")["category"].nunique() == 1).all()
    same_session = events["session_id"].diff().eq(0)
    same_category = events["category"].diff().eq(0)
    assert same_category[same_session].mean() > 0.7  # successors and in-category clicks (measured 0.86)


def next_item_accuracy_given_context(events: pd.DataFrame) -> tuple[float, float]:
    """Top-1 accuracy of the most frequent next item (first 80% of sessions, scored on the rest)
    given the current item, and given it and order 2's context (the category of the item before)."""
    session, item = events["session_id"].to_numpy(), events["item_id"].to_numpy()
    triples = pd.DataFrame(
        {
            "context": events["category"].to_numpy()[:-2] % 4,
            "item": item[1:-1],
            "next": item[2:],
            "train": session[2:] <= np.quantile(session, 0.8),
        }
    )[(session[2:] == session[1:-1]) & (session[1:-1] == session[:-2])]
    train, test = triples[triples["train"]], triples[~triples["train"]]
    accuracy = []
    for keys in (["item"], ["context", "item"]):
        best = train.value_counts([*keys, "next"]).reset_index().drop_duplicates(keys).set_index(keys)["next"]
        accuracy.append(float((test.join(best.rename("best"), on=keys)["best"] == test["next"]).mean()))
    return accuracy[0], accuracy[1]


def test_with_order_two_the_item_before_decides_the_successors():
    config = scale_config(60_000, 1_000)
    current_only, with_context = next_item_accuracy_given_context(generate_sessions(config))
    assert with_context < current_only  # order 1: the context only splits the counts (0.336, 0.350)
    order_two = generate_sessions(config.model_copy(update={"order": 2}))
    current_only, with_context = next_item_accuracy_given_context(order_two)
    assert with_context > 1.05 * current_only  # measured 0.342 and 0.310


def test_validation_accepts_it_as_if_event_type_were_text(events):
    assert isinstance(events["event_type"].dtype, pd.CategoricalDtype)
    as_text = events.assign(event_type=events["event_type"].astype(str))
    checked = validate_events(events, source="x")
    pd.testing.assert_frame_equal(checked, validate_events(as_text, source="x"))
    assert len(checked) == len(events) and set(checked["event_type"]) == {"view", "cart", "purchase"}


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("n_items", [4, 5, 9])
def test_small_catalogues_work(order, n_items):
    config = SyntheticConfig(structure="scale", n_items=n_items, n_categories=3, n_sessions=40, order=order)
    frame = generate_sessions(config)
    assert frame["item_id"].between(1, n_items).all() and frame["session_id"].nunique() == 40
    validate_events(frame, source="x")


def test_order_two_is_allowed_for_scale_not_for_intent():
    assert SyntheticConfig(structure="scale", order=2).order == 2
    with pytest.raises(ConfigError, match="order = 2 applies to"):
        SyntheticConfig(structure="intent", order=2)
