"""MovieLens-100k from RecBole's wheel, split exactly as RecBole splits it."""

import pytest

from recops.config import load_config
from recops.data import build_interactions, leave_one_out_split, load_events
from recops.data.movielens import RECBOLE_MEMBER

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECOPS_HOME", str(tmp_path_factory.mktemp("ml100k-home")))
        try:
            return load_events("ml-100k:recbole", load_config().data)
        except Exception as exc:
            pytest.skip(f"cannot fetch {RECBOLE_MEMBER} from PyPI: {exc}")


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
