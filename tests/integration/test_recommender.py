"""Recommender: external ids in and out, unknown items, popularity fallback, same scores as evaluation."""

import numpy as np
import pytest

from recops.config import load_config
from recops.data import build_interactions, leave_one_out_split, validate_events
from recops.serving.recommender import Recommender
from recops.training.evaluate import score_histories
from recops.training.experiment import PreparedData, train_and_evaluate
from tests.helpers import TINY, cycle_events

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def recommender(tmp_path_factory):
    inter = build_interactions(validate_events(cycle_events()))
    data = PreparedData("cycle", inter, leave_one_out_split(inter))
    report = train_and_evaluate(data, "sasrec", load_config(overrides={**TINY, "train.epochs": 15}))
    path = report.checkpoint.save(tmp_path_factory.mktemp("model") / "checkpoint.pt")
    return Recommender.from_path(str(path))


def test_recommends_the_successor_in_external_ids(recommender):
    result = recommender.recommend([103, 104, 105], k=3)
    assert result.items[0][0] == 106
    assert result.fallback is None and result.unknown_items == []
    assert [score for _, score in result.items] == sorted((s for _, s in result.items), reverse=True)


def test_unknown_items_are_reported_and_ignored(recommender):
    with_unknown = recommender.recommend([103, "nope", 104], k=5)
    without = recommender.recommend([103, 104], k=5)
    assert with_unknown.unknown_items == ["nope"]
    assert with_unknown.items == without.items


def test_session_without_known_items_falls_back_to_popular(recommender):
    result = recommender.recommend(["x", "y"], k=4)
    assert result.fallback == "popular" and result.unknown_items == ["x", "y"]
    counts = dict(zip(recommender.vocab.items, recommender.checkpoint.item_counts, strict=True))
    top = sorted(counts, key=lambda item: -counts[item])[:4]
    assert sorted(item for item, _ in result.items) == sorted(top)


def test_exclude_seen_and_no_duplicates(recommender):
    session = [100, 101, 102]
    result = recommender.recommend(session, k=recommender.n_items)
    ids = [item for item, _ in result.items]
    assert not set(ids) & set(session)
    assert len(ids) == len(set(ids)) == recommender.n_items - len(session)
    kept = [item for item, _ in recommender.recommend(session, k=5, exclude_seen=False).items]
    assert len(kept) == 5


def test_scores_are_the_evaluation_scores(recommender):
    session = [107, 108]
    indices, _ = recommender.vocab.encode(session)
    expected = score_histories(recommender.model, [indices])[0].numpy()
    result = recommender.recommend(session, k=5, exclude_seen=False)
    for item, score in result.items:
        assert score == pytest.approx(float(expected[recommender.vocab.index_of(item)]))
    assert result.items[0][0] == recommender.vocab.items[int(np.argmax(expected[1:]))]


@pytest.mark.parametrize("k", [0, 10_000])
def test_k_outside_the_catalogue_is_an_error(recommender, k):
    with pytest.raises(ValueError, match="k must be between 1 and"):
        recommender.recommend([100], k=k)


def test_rank_targets_equals_evaluation_ranks_and_handles_other_data(recommender):
    """How the gate scores a champion on a challenger's split: same ranks as evaluation on its
    own data; an unknown target ranks last; a session of unknown items is ranked by popularity."""
    from recops.training.evaluate import rank_eval_set

    inter = build_interactions(validate_events(cycle_events(seed=5)), vocab=recommender.vocab)
    test = leave_one_out_split(inter).test
    sessions = [recommender.vocab.decode(h) for h in test.inputs]
    targets = recommender.vocab.decode(test.targets)
    expected = rank_eval_set(recommender.model, test)
    assert np.array_equal(recommender.rank_targets(sessions, targets), expected)

    ranks = recommender.rank_targets([[103, 104], [103, 104], ["x"]], [105, "never-seen", 103])
    served = recommender.recommend([103, 104], k=recommender.n_items, exclude_seen=False).items
    assert ranks[0] == [item for item, _ in served].index(105) + 1
    assert ranks[1] == recommender.n_items + 1
    popular = recommender.recommend(["x"], k=recommender.n_items).items
    assert ranks[2] == [item for item, _ in popular].index(103) + 1
