import math

import numpy as np
import pytest

from recops.training.metrics import hit_rate, mrr, ndcg, summarize

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("rank", "k", "hr", "ndcg_value", "mrr_value"),
    [
        (1, 10, 1.0, 1.0, 1.0),
        (2, 10, 1.0, 1 / math.log2(3), 0.5),
        (3, 10, 1.0, 0.5, 1 / 3),
        (10, 10, 1.0, 1 / math.log2(11), 0.1),
        (11, 10, 0.0, 0.0, 0.0),
        (5, 5, 1.0, 1 / math.log2(6), 0.2),
        (6, 5, 0.0, 0.0, 0.0),
        (1000, 20, 0.0, 0.0, 0.0),
    ],
)
def test_metrics_from_known_ranks(rank, k, hr, ndcg_value, mrr_value):
    ranks = np.array([rank])
    assert hit_rate(ranks, k)[0] == hr
    assert ndcg(ranks, k)[0] == pytest.approx(ndcg_value)
    assert mrr(ranks, k)[0] == pytest.approx(mrr_value)


def test_summary_is_the_mean_of_per_sequence_values():
    ranks = np.array([1, 3, 11, 2])
    out = summarize(ranks, ks=(10,))
    assert out["hr@10"] == pytest.approx(0.75)
    assert out["ndcg@10"] == pytest.approx((1 + 0.5 + 0 + 1 / math.log2(3)) / 4)
    assert out["mrr@10"] == pytest.approx((1 + 1 / 3 + 0 + 0.5) / 4)


def test_summary_of_nothing_is_zero():
    assert summarize(np.array([], dtype=int), ks=(10,)) == {
        "hr@10": 0.0,
        "ndcg@10": 0.0,
        "mrr@10": 0.0,
    }


def test_slice_figures_use_the_offline_metrics_on_each_slice():
    import numpy as np

    from recops.training.metrics import summarize
    from recops.training.slices import short_sessions, slice_figures

    ranks = np.array([1, 3, 50, 2])
    mask = short_sessions([[1], [1, 2, 3], [4, 5], [6, 7, 8, 9]])
    figures = slice_figures(ranks, {"short_sessions": mask, "empty": np.zeros(4, dtype=bool)})
    assert figures["short_sessions"] == {
        "n": 2.0,
        **{k: v for k, v in summarize(ranks[[0, 2]], ks=(10,)).items() if not k.startswith("mrr")},
    }
    assert figures["empty"] == {"n": 0.0}
