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
