"""Warm start from the champion: old items keep their rows, new items get the mean row."""

from __future__ import annotations

import pytest
import torch

from recops.config import GRU4RecConfig, MarkovConfig, SASRecConfig
from recops.data.interactions import ItemVocab
from recops.models import build_model
from recops.training.checkpoint import Checkpoint
from recops.training.warm_start import WarmStartMismatch, warm_start_model

pytestmark = pytest.mark.unit

OLD = ItemVocab(("a", "b", "c", "d", "e"))
NEW = ItemVocab(("b", "c", "d", "e", "f", "g"))  # a gone; f and g new


def champion(name: str = "sasrec", **config) -> Checkpoint:
    torch.manual_seed(0)
    section = {"sasrec": SASRecConfig, "gru4rec": GRU4RecConfig}[name](**{"max_len": 5, **config})
    model = build_model(name, section, len(OLD))
    with torch.no_grad():  # a trained-looking history bias, so that it is carried too
        model.history_logit.fill_(0.3)
    return Checkpoint.from_model(model, name, OLD, data_fingerprint="sha256:old")


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("sasrec", {"hidden": 8}),
        ("sasrec", {"hidden": 8, "tie_embeddings": False}),
        ("gru4rec", {"embedding": 8, "hidden": 8}),
    ],
)
def test_old_items_keep_their_rows_and_scores(name, config):
    old = champion(name, **config)
    warm = warm_start_model(old, name, {**old.model_config, "lr": 0.01}, NEW)
    assert warm.summary() == {"kept_items": 4, "new_items": 2, "dropped_items": 1}
    model, before = warm.model.eval(), old.build_model()
    for key in model.item_tables:
        if key not in old.state_dict:
            continue
        new_rows, old_rows = model.state_dict()[key], old.state_dict[key]
        for item in NEW.items:
            row = new_rows[NEW.index_of(item)]
            expected = old_rows[OLD.index_of(item)] if item in OLD.items else old_rows[1:].mean(dim=0)
            assert torch.equal(row, expected), (key, item)
        assert torch.equal(new_rows[0], old_rows[0])  # padding
    for key, value in model.state_dict().items():
        if key not in model.item_tables:
            assert torch.equal(value, old.state_dict[key]), key
    # the same session of old items scores every old item exactly as the champion did
    session = ["b", "d", "c"]
    old_scores = before.predict(torch.tensor([[OLD.index_of(i) for i in session]]))[0]
    new_scores = model.predict(torch.tensor([[NEW.index_of(i) for i in session]]))[0]
    for item in ("b", "c", "d", "e"):
        assert torch.isclose(new_scores[NEW.index_of(item)], old_scores[OLD.index_of(item)], atol=1e-5)


def test_auto_max_len_takes_the_champions():
    old = champion("sasrec", hidden=8)
    warm = warm_start_model(old, "sasrec", {**old.model_config, "max_len": "auto"}, NEW)
    assert warm.model.max_len == 5 and warm.model.config.max_len == 5


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("gru4rec", {}, "the champion is a sasrec, the challenger a gru4rec"),
        ("sasrec", {"hidden": 16}, "the champion's shape differs: hidden 8 -> 16"),
        ("sasrec", {"n_layers": 1, "max_len": 7}, "max_len 5 -> 7, n_layers 2 -> 1"),
    ],
)
def test_another_family_or_shape_cannot_be_continued(name, change, message):
    old = champion("sasrec", hidden=8)
    config = {**old.model_config, **change} if name == "sasrec" else GRU4RecConfig().model_dump()
    with pytest.raises(WarmStartMismatch, match=message):
        warm_start_model(old, name, config, NEW)


def test_a_counting_model_is_refitted_not_continued():
    markov = build_model("markov", MarkovConfig(), len(OLD))
    old = Checkpoint.from_model(markov, "markov", OLD, data_fingerprint="sha256:old")
    with pytest.raises(WarmStartMismatch, match="markov is fitted by counting"):
        warm_start_model(old, "markov", old.model_config, NEW)


def test_only_networks_are_continuable():
    from recops.training.warm_start import continuable

    assert continuable("sasrec") and continuable("gru4rec")
    assert not any(continuable(name) for name in ("markov", "sr", "vsknn", "popular"))
