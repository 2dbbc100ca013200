"""MovieLens-100k from RecBole's wheel, split exactly as RecBole splits it."""

import pytest

from recops.data import build_interactions, leave_one_out_split

pytestmark = pytest.mark.integration


def test_ml100k_has_the_published_shape(ml100k):
    assert len(ml100k) == 100_000
    assert ml100k["sequence_id"].nunique() == 943
    assert ml100k["item_id"].nunique() == 1682


def test_split_matches_an_independent_stable_sort(ml100k):
    """Last event by time (ties in file order) is the test target, the one before validation."""
    split = leave_one_out_split(build_interactions(ml100k))
    vocab = build_interactions(ml100k).vocab
    ordered = ml100k.reset_index().sort_values(["sequence_id", "timestamp", "index"], kind="stable")
    last = ordered.groupby("sequence_id").tail(2).groupby("sequence_id")["item_id"].agg(list)
    ours = {
        sid: vocab.decode([valid, test])
        for sid, valid, test in zip(
            split.test.sequence_ids, split.valid.targets, split.test.targets, strict=True
        )
    }
    assert len(ours) == 943
    assert ours == last.to_dict()
    assert sum(len(s) for s in split.train) == 100_000 - 2 * 943
