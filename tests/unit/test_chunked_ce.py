"""Chunked cross-entropy equals the full one: loss and every gradient (issue 17's exactness)."""

import pytest
import torch
import torch.nn.functional as F

from recops.models.base import history_pairs
from recops.models.chunked_ce import chunked_cross_entropy
from recops.models.losses import Objective


def full(hidden, weight, targets, rows, items, bias):
    logits = hidden @ weight.T
    logits = logits.index_put((rows, items), bias.expand(len(rows)), accumulate=True)
    return F.cross_entropy(logits, targets)


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_chunked_equals_full_in_loss_and_gradients(chunk):
    torch.manual_seed(0)
    n, v, d = 37, 101, 16
    input_ids = torch.randint(0, v + 1, (5, 12))
    input_ids[:, :3] = 0  # left padding
    positions = torch.rand(5, 12) < 0.6
    positions[:, :3] = False
    n = int(positions.sum())
    rows, item_ids = history_pairs(input_ids, positions, v)
    items = item_ids - 1  # 0-based, as the loss sees the catalogue
    targets = torch.randint(0, v, (n,))
    leaves = [torch.randn(n, d, requires_grad=True), torch.randn(v, d, requires_grad=True)]
    bias = torch.tensor(0.7, requires_grad=True)

    expected = full(leaves[0], leaves[1], targets, rows, items, bias)
    want = torch.autograd.grad(expected, [*leaves, bias])
    got_loss = chunked_cross_entropy(
        leaves[0], leaves[1], targets, history=(rows, items), bias=bias, chunk_items=chunk
    )
    got = torch.autograd.grad(got_loss, [*leaves, bias])
    assert got_loss.item() == pytest.approx(expected.item(), abs=1e-5)
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, atol=1e-5), (g - w).abs().max()


def test_without_history_it_is_plain_cross_entropy():
    torch.manual_seed(1)
    hidden, weight = torch.randn(9, 4, requires_grad=True), torch.randn(30, 4, requires_grad=True)
    targets = torch.randint(0, 30, (9,))
    loss = chunked_cross_entropy(hidden, weight, targets, chunk_items=8)
    assert loss.item() == pytest.approx(F.cross_entropy(hidden @ weight.T, targets).item(), abs=1e-6)
    with pytest.raises(ValueError, match="chunk_items must be at least 1"):
        chunked_cross_entropy(hidden, weight, targets, chunk_items=0)


def test_history_pairs_are_each_distinct_item_up_to_each_position():
    torch.manual_seed(2)
    input_ids = torch.randint(0, 6, (4, 9))  # small catalogue: many repeats and padding
    positions = torch.rand(4, 9) < 0.7
    rows, items = history_pairs(input_ids, positions, 5)
    got = sorted(zip(rows.tolist(), items.tolist(), strict=True))
    expected, row = [], 0
    for b in range(4):
        for t in range(9):
            if positions[b, t]:
                expected += [(row, i) for i in sorted({int(x) for x in input_ids[b, : t + 1]} - {0})]
                row += 1
    assert got == sorted(expected)


@pytest.mark.parametrize("model", ["sasrec", "gru4rec"])
def test_a_models_chunked_training_loss_equals_its_full_one(model):
    from recops.config import load_config
    from recops.models import build_model

    torch.manual_seed(3)
    config = load_config(overrides={f"{model}.max_len": 10, "sasrec.hidden": 16, f"{model}.dropout": 0.0})
    net = build_model(model, config.model_section(model), 50)
    input_ids = torch.randint(1, 51, (6, 10))
    input_ids[:2, :4] = 0
    targets = torch.randint(1, 51, (6, 10))
    targets[:2, :4] = 0

    def loss_and_grads(objective):
        net.zero_grad()
        loss = net.training_loss(input_ids, targets, objective)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in net.parameters() if p.grad is not None]

    full_loss, full_grads = loss_and_grads(None)
    positions = int((targets != 0).sum())
    chunked = Objective("ce_chunked", logits_bytes=4 * positions * 16)  # budget: 16 items a chunk
    assert chunked.chunk_items(positions) == 16
    chunk_loss, chunk_grads = loss_and_grads(chunked)
    assert chunk_loss == pytest.approx(full_loss, abs=1e-5)
    assert len(chunk_grads) == len(full_grads)
    for got, want in zip(chunk_grads, full_grads, strict=True):
        assert torch.allclose(got, want, atol=1e-5)


def test_auto_is_full_ce_while_the_logits_fit_and_chunked_above():
    auto = Objective("auto", logits_bytes=4 * 100 * 1000)
    assert auto.kind_for(positions=100, n_items=1000) == "ce"
    assert auto.kind_for(positions=100, n_items=1001) == "ce_chunked"
    assert auto.chunk_items(positions=100) == 1000
    assert Objective("sampled").kind_for(10**6, 10**7) == "sampled"


@pytest.mark.parametrize("model", ["sasrec", "gru4rec"])
def test_sampled_softmax_over_every_item_with_even_shares_is_full_ce(model):
    """With every item drawn and every item's share alike, logQ shifts all logits equally and the
    sampled loss is the full one: the candidate lookup, history bias and target columns are right."""
    from recops.config import load_config
    from recops.models import build_model

    torch.manual_seed(5)
    config = load_config(overrides={f"{model}.max_len": 10, "sasrec.hidden": 16, f"{model}.dropout": 0.0})
    net = build_model(model, config.model_section(model), 30)
    input_ids = torch.randint(1, 31, (4, 10))
    targets = torch.randint(1, 31, (4, 10))
    even = torch.full((30,), 1 / 30)
    full_loss = net.training_loss(input_ids, targets)
    sampled = net.training_loss(input_ids, targets, Objective("sampled", negatives=3000, target_share=even))
    assert sampled.item() == pytest.approx(full_loss.item(), abs=1e-5)


def test_sampled_softmax_subtracts_each_candidates_log_expected_count():
    """At zero scores the loss is exactly the logQ terms: the batch's targets and the drawn
    negatives, each once, with logit -log(negatives / V + positions x share)."""
    from recops.models.losses import sequence_loss

    hidden, weight = torch.zeros(2, 4), torch.randn(1000, 4)
    targets = torch.tensor([0, 1])
    share = torch.zeros(1000)
    share[0], share[1] = 0.99, 0.01
    torch.manual_seed(1)
    got = sequence_loss(hidden, weight, targets, Objective("sampled", negatives=8, target_share=share))
    torch.manual_seed(1)
    candidates = torch.unique(torch.cat([targets, torch.randint(1000, (8,))]))
    logits = -torch.log(8 / 1000 + 2 * share[candidates])
    want = F.cross_entropy(logits.expand(2, -1), torch.searchsorted(candidates, targets))
    assert got.item() == pytest.approx(want.item(), abs=1e-6)
    assert got.item() < F.cross_entropy(hidden @ weight.T, targets).item()  # fewer competitors
    with pytest.raises(ValueError, match="share of each of the 1000 items"):
        sequence_loss(hidden, weight, targets, Objective("sampled"))
