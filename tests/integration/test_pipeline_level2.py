"""Google's MLOps level 2 names three tests of the pipeline itself, run by CI's pipeline job
(`make test-pipeline`, with tests/integration/test_train_flow.py for the third):

- the model's training converges, on a tiny slice of data, for every model family the
  pipeline trains;
- the model produces no NaN: not in the loss, the weights or the scores it serves;
- each step of the pipeline produces its artifacts (test_train_flow.py: every artifact of
  TrainRecommenderFlow read back through Metaflow's Client).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recops.config import load_config
from recops.data import build_interactions, leave_one_out_split, validate_events
from recops.training.evaluate import score_histories
from recops.training.experiment import PreparedData, train_and_evaluate
from tests.helpers import TINY, cycle_events

pytestmark = pytest.mark.integration

FAMILIES = ("sasrec", "gru4rec")


@pytest.fixture(scope="module")
def tiny_slice() -> PreparedData:
    """A few hundred events whose next item is predictable: a slice any working model learns."""
    interactions = build_interactions(validate_events(cycle_events()))
    return PreparedData("cycle", interactions, leave_one_out_split(interactions))


@pytest.fixture(scope="module", params=FAMILIES)
def trained(request, tiny_slice):
    config = load_config(overrides={**TINY, "train.epochs": 8, "train.patience": 8})
    return train_and_evaluate(tiny_slice, request.param, config)


def test_training_converges_on_a_tiny_slice(trained):
    losses = [epoch.loss for epoch in trained.train.history]
    assert len(losses) == 8
    assert losses[-1] < 0.7 * losses[0], f"{trained.checkpoint.model_name}: loss {losses}"
    ndcg = [epoch.valid_ndcg for epoch in trained.train.history]
    # ends at least where it began, far above chance (1 / the catalogue's size)
    assert ndcg[-1] >= ndcg[0] and ndcg[-1] > 0.5, f"{trained.checkpoint.model_name}: valid NDCG {ndcg}"


def test_no_nan_in_losses_weights_or_scores(trained, tiny_slice):
    name = trained.checkpoint.model_name
    assert all(math.isfinite(epoch.loss) for epoch in trained.train.history), name
    for key, tensor in trained.checkpoint.state_dict.items():
        assert torch.isfinite(tensor).all(), f"{name}: {key} holds a NaN or inf"
    model = trained.train.model.eval()
    with torch.no_grad():
        scores = score_histories(model, tiny_slice.split.test.inputs)[:, 1:]  # column 0 is padding
    assert np.isfinite(scores.float().cpu().numpy()).all(), f"{name}: a served score is NaN or inf"
    assert all(math.isfinite(value) for value in trained.test.metrics.values()), name
