"""The simple baselines (markov, sr, vsknn) on a data set small enough to count by hand.

Training sequences (item indices; 0 is padding):

    a: 1 2 3      b: 1 2 4      c: 2 3 1      d: 5 1 2

Transitions: 1->2 three times (a, b, d), 2->3 twice (a, c), 2->4 once, 3->1 once, 5->1 once.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recops.config import MarkovConfig, SRConfig, VSKNNConfig
from recops.data.interactions import ItemVocab
from recops.models import build_model
from recops.training.checkpoint import Checkpoint
from recops.training.evaluate import top_k

pytestmark = pytest.mark.unit

TRAIN = (np.array([1, 2, 3]), np.array([1, 2, 4]), np.array([2, 3, 1]), np.array([5, 1, 2]))
N_ITEMS = 5


def fitted(name: str, config):
    model = build_model(name, config, N_ITEMS)
    model.fit(TRAIN)
    return model


def ranking(model, session: list[int], k: int = 4) -> list[int]:
    scores = model.predict(torch.tensor([session]))
    return top_k(scores, k)[1][0].tolist()


def test_markov_ranks_what_followed_the_last_item_then_popularity():
    model = fitted("markov", MarkovConfig(smoothing=0.0))
    assert model.predict(torch.tensor([[0, 2]]))[0, 1:].tolist() == [0.0, 0.0, 2.0, 1.0, 0.0]
    # after 2: 3 (twice), 4 (once); the rest tie at 0 and keep index order
    assert ranking(model, [0, 2]) == [3, 4, 1, 2]
    # smoothing breaks the ties by popularity: 1 and 2 (4 events each) before 5 (1 event)
    smoothed = fitted("markov", MarkovConfig(smoothing=1.0))
    assert ranking(smoothed, [0, 2], k=5) == [3, 4, 1, 2, 5]
    # only the last item counts: 5 then 1 scores like 1 alone
    assert ranking(smoothed, [5, 1], k=2) == ranking(smoothed, [0, 1], k=2) == [2, 1]


def test_markov_after_an_unseen_item_or_padding_is_popularity():
    model = fitted("markov", MarkovConfig(smoothing=1.0))
    assert ranking(model, [0, 4], k=5) == [1, 2, 3, 4, 5]  # nothing ever followed 4
    assert ranking(model, [0, 0], k=5) == [1, 2, 3, 4, 5]  # an empty session


def test_sequential_rules_count_later_items_with_a_1_over_gap_weight():
    model = fitted("sr", SRConfig(smoothing=0.0))
    # from 1: 2 at gap 1 in a, b, d (3.0); 3 at gap 2 in a (0.5); 4 at gap 2 in b (0.5)
    assert model.predict(torch.tensor([[1]]))[0, 1:].tolist() == [0.0, 3.0, 0.5, 0.5, 0.0]
    assert ranking(model, [1], k=3) == [2, 3, 4]
    # from 2: 3 (1 + 1), 4 (1), 1 at gap 2 in c (0.5)
    assert ranking(model, [2], k=4) == [3, 4, 1, 2]
    # steps = 1 keeps only adjacent pairs: the Markov chain
    markov = fitted("markov", MarkovConfig(smoothing=0.0))
    one_step = fitted("sr", SRConfig(steps=1, smoothing=0.0))
    sessions = torch.tensor([[0, 1], [0, 2], [1, 3], [0, 5]])
    assert torch.equal(one_step.predict(sessions), markov.predict(sessions))


def test_vsknn_scores_items_by_the_similarity_of_the_sessions_holding_them():
    model = fitted("vsknn", VSKNNConfig(k=2, idf=False, smoothing=0.0))
    # session (5, 1), recency div: 5 weighs 1/2, 1 weighs 2/2. Similarities: d {5,1,2} 1.5; a, b, c 1.0.
    # The 2 nearest: d, then a (ties go to the earlier session). Votes: 1 and 2 from both (2.5),
    # 5 from d (1.5), 3 from a (1.0); 4 in no neighbour
    assert model.predict(torch.tensor([[5, 1]]))[0, 1:].tolist() == [2.5, 2.5, 1.0, 0.0, 1.5]
    assert ranking(model, [5, 1], k=4) == [1, 2, 5, 3]


def test_vsknn_recency_weights_the_latest_items_most():
    model = fitted("vsknn", VSKNNConfig(k=1, idf=False, smoothing=0.0))
    # (4, 3): with div, 3 (weight 1) beats 4 (1/2): the nearest session holds 3 (a, the first of a and c)
    assert ranking(model, [4, 3], k=3) == [1, 2, 3]
    # (3, 4): 4 now weighs 1: b is nearest
    assert ranking(model, [3, 4], k=3) == [1, 2, 4]


@pytest.mark.parametrize(
    "name, config", [("markov", MarkovConfig()), ("sr", SRConfig()), ("vsknn", VSKNNConfig())]
)
def test_a_baseline_survives_its_checkpoint(tmp_path, name, config):
    """Their tables are sized by the data; loading resizes the buffers and scores the same."""
    model = fitted(name, config)
    vocab = ItemVocab(tuple(range(101, 101 + N_ITEMS)))
    path = Checkpoint.from_model(model, name, vocab, data_fingerprint="fp").save(tmp_path / "c.pt")
    loaded = Checkpoint.load(path).build_model()
    sessions = torch.tensor([[0, 0, 1], [5, 1, 2], [0, 0, 0]])
    assert torch.equal(loaded.predict(sessions), model.predict(sessions))
    assert loaded.predict(sessions)[:, 0].isneginf().all()  # padding is never recommended
