import pytest
import torch

from recops.training.evaluate import target_ranks, top_k

pytestmark = pytest.mark.unit

NEG = float("-inf")


@pytest.mark.parametrize(
    ("scores", "target", "rank"),
    [
        ([NEG, 0.1, 0.9, 0.5], 2, 1),
        ([NEG, 0.1, 0.9, 0.5], 3, 2),
        ([NEG, 0.1, 0.9, 0.5], 1, 3),
        # ties: lower index first, as in the served top-k list
        ([NEG, 0.5, 0.5, 0.5], 1, 1),
        ([NEG, 0.5, 0.5, 0.5], 3, 3),
        # padding (index 0) is never ahead, even when everything else is -inf-ish
        ([NEG, -1e9, -1e9], 2, 2),
    ],
)
def test_target_rank(scores, target, rank):
    assert int(target_ranks(torch.tensor([scores]), torch.tensor([target]))[0]) == rank


def test_rank_equals_position_in_top_k():
    torch.manual_seed(0)
    scores = torch.randint(0, 5, (8, 30)).float()  # many ties
    scores[:, 0] = NEG
    _, order = top_k(scores, 29)
    for row in range(8):
        for target in (1, 7, 29):
            position = int((order[row] == target).nonzero()[0]) + 1
            assert int(target_ranks(scores[row : row + 1], torch.tensor([target]))[0]) == position
    assert not (order == 0).any()


@pytest.mark.parametrize("ties", [False, True], ids=["distinct scores", "ties at the k-th score"])
def test_top_k_equals_a_full_stable_sort(ties):
    """Both paths of top_k (one sort for all rows; a row at a time when a row ties at its k-th
    score) give what sorting the whole row would: score descending, lower index first."""
    generator = torch.Generator().manual_seed(1)
    scores = torch.randn(16, 200, generator=generator)
    if ties:
        scores[3] = torch.randint(0, 3, (200,), generator=generator).float()
    scores[:, 0] = NEG
    for k in (1, 10, 199):
        values, indices = top_k(scores, k)
        expected = torch.sort(scores, dim=1, descending=True, stable=True)
        assert torch.equal(indices, expected.indices[:, :k]) and torch.equal(values, expected.values[:, :k])


def test_evaluation_over_a_catalogue_larger_than_its_memory_budget_ranks_exactly():
    """A budget smaller than one default batch of scores: histories are ranked a few at a time,
    and every rank equals a brute-force rank from the model's full score rows (history bias on)."""
    import numpy as np

    from recops.config import load_config
    from recops.data.split import EvalSet
    from recops.models import build_model
    from recops.training.evaluate import BYTES_PER_SCORE, eval_batch_size, rank_eval_set, score_histories

    torch.manual_seed(0)
    n_items = 20_000
    net = build_model(
        "sasrec", load_config(overrides={"sasrec.max_len": 10, "sasrec.hidden": 16}).sasrec, n_items
    )
    with torch.no_grad():
        net.history_logit.fill_(0.3)
    rng = np.random.default_rng(0)
    inputs = tuple(rng.integers(1, n_items + 1, size=rng.integers(1, 12)) for _ in range(40))
    eval_set = EvalSet(inputs, rng.integers(1, n_items + 1, size=40), tuple(range(40)))
    budget = 3 * BYTES_PER_SCORE * (n_items + 1)  # three histories' scores
    assert eval_batch_size(n_items + 1, budget) == 3 and eval_batch_size(n_items + 1) == 256
    ranks = rank_eval_set(net, eval_set, memory_bytes=budget)
    scores = score_histories(net, list(inputs)).numpy()  # one (40 x catalogue) batch
    for row, target in enumerate(eval_set.targets):
        s = scores[row]
        ahead = (s > s[target]).sum() + (s[:target] == s[target]).sum()
        assert ranks[row] == ahead + 1
