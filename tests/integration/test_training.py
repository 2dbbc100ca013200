"""Real training runs on tiny data: the loss falls, the pattern is learned, checkpoints rebuild."""

import numpy as np
import pytest
import torch

from recops.config import load_config
from recops.data import build_interactions, leave_one_out_split, validate_events
from recops.models import auto_max_len, build_model
from recops.training.checkpoint import Checkpoint, CheckpointError
from recops.training.evaluate import evaluate_model, score_histories, top_k
from recops.training.experiment import PreparedData, train_and_evaluate
from tests.helpers import TINY, cycle_events

pytestmark = pytest.mark.integration


def prepared(frame=None) -> PreparedData:
    inter = build_interactions(validate_events(cycle_events() if frame is None else frame))
    return PreparedData("cycle", inter, leave_one_out_split(inter))


@pytest.mark.parametrize("model", ["sasrec", "gru4rec"])
def test_two_epochs_loss_falls(model):
    cfg = load_config(overrides={**TINY, "train.epochs": 2})
    report = train_and_evaluate(prepared(), model, cfg)
    first, second = report.train.history
    assert second.loss < first.loss
    assert report.train.epochs_run == 2


@pytest.mark.parametrize("model", ["sasrec", "gru4rec"])
def test_successor_ranks_first_on_a_strong_pattern(model):
    cfg = load_config(overrides={**TINY, "train.epochs": 15})
    report = train_and_evaluate(prepared(), model, cfg)
    assert report.test.metrics["mrr@5"] > 0.9
    assert np.mean(report.test.ranks == 1) > 0.9


def test_popular_is_beaten_by_a_sequence_model():
    cfg = load_config(overrides={**TINY, "train.epochs": 5})
    data = prepared()
    sasrec = train_and_evaluate(data, "sasrec", cfg).test.metrics["ndcg@10"]
    popular = train_and_evaluate(data, "popular", cfg).test.metrics["ndcg@10"]
    assert sasrec > 2 * popular


@pytest.mark.parametrize("model", ["sasrec", "gru4rec"])
def test_sampled_loss_trains_and_beats_popularity(model):
    """[train] loss = "sampled" with 16 negatives over 200 items: the loss falls epoch on epoch
    and the learned order of items beats popularity by far."""
    data = prepared(cycle_events(n_items=200))
    cfg = load_config(overrides={**TINY, "train.epochs": 6, "train.loss": "sampled", "train.negatives": 16})
    report = train_and_evaluate(data, model, cfg)
    losses = [epoch.loss for epoch in report.train.history]
    assert losses[-1] < 0.7 * losses[0]
    popular = train_and_evaluate(data, "popular", cfg).test.metrics["ndcg@10"]
    assert report.test.metrics["ndcg@10"] > max(3 * popular, 0.3)


@pytest.mark.parametrize("model", ["sasrec", "gru4rec", "popular"])
def test_padding_is_never_recommended(model):
    data = prepared()
    cfg = load_config(overrides={**TINY, "train.epochs": 1})
    report = train_and_evaluate(data, model, cfg)
    histories = [np.array([], dtype=np.int64), np.array([1]), data.split.test.inputs[0]]
    scores = score_histories(report.train.model, histories)
    assert torch.isneginf(scores[:, 0]).all()
    assert torch.isfinite(scores[:, 1:]).all()
    _, items = top_k(scores, data.interactions.n_items)  # the whole catalogue
    assert not (items == 0).any()


def test_checkpoint_rebuilds_the_same_model(tmp_path):
    data = prepared()
    cfg = load_config(overrides={**TINY, "train.epochs": 2})
    report = train_and_evaluate(data, "sasrec", cfg)
    path = report.checkpoint.save(tmp_path / "model.pt")
    loaded = Checkpoint.load(path)
    assert loaded.vocab == data.interactions.vocab
    assert loaded.data_fingerprint == data.interactions.fingerprint
    rebuilt = loaded.build_model()
    again = evaluate_model(rebuilt, data.split.test)
    assert np.array_equal(again.ranks, report.test.ranks)
    assert list(tmp_path.iterdir()) == [path]  # no temporary files left behind


def test_training_is_deterministic_under_a_seed():
    data = prepared()
    cfg = load_config(overrides={**TINY, "train.epochs": 2})
    one = train_and_evaluate(data, "sasrec", cfg)
    two = train_and_evaluate(data, "sasrec", cfg)
    for key, tensor in one.checkpoint.state_dict.items():
        assert torch.equal(tensor, two.checkpoint.state_dict[key]), key


def test_best_epoch_weights_are_restored():
    data = prepared()
    cfg = load_config(overrides={**TINY, "train.epochs": 6, "gru4rec.lr": 0.05})
    report = train_and_evaluate(data, "gru4rec", cfg)
    best = max(h.valid_ndcg for h in report.train.history)
    assert report.train.valid_metrics["ndcg@10"] == pytest.approx(best)
    rerun = evaluate_model(report.train.model, data.split.valid, ks=(10,)).metrics["ndcg@10"]
    assert rerun == pytest.approx(best)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        Checkpoint.load(bad)
    with pytest.raises(CheckpointError, match="not found"):
        Checkpoint.load(tmp_path / "missing.pt")


def test_model_accepts_sequences_longer_than_its_window():
    model = build_model("sasrec", load_config(overrides=TINY).sasrec, n_items=20)
    long_history = np.arange(1, 21)
    scores = score_histories(model, [long_history])
    assert scores.shape == (1, 21)


@pytest.mark.parametrize("model", ["sasrec", "gru4rec"])
def test_mixed_precision_path_runs(model):
    """The bf16 autocast path that CUDA training takes, exercised on the CPU."""
    data = prepared()
    net = build_model(model, getattr(load_config(overrides=TINY), model), data.interactions.n_items)
    x = torch.as_tensor(np.array([[0, 1, 2, 3], [4, 5, 6, 7]]))
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = net.training_loss(x[:, :-1], x[:, 1:])
        scores = net.predict(x)
    loss.backward()
    assert torch.isfinite(loss) and net.history_logit.grad is not None
    assert scores.dtype == torch.float32 and torch.isneginf(scores[:, 0]).all()


@pytest.mark.parametrize("model", ["sasrec", "gru4rec"])
def test_scores_do_not_depend_on_left_padding(model):
    """Invariance: the same history scores the same, however much padding precedes it."""
    torch.manual_seed(0)
    net = build_model(model, getattr(load_config(overrides=TINY), model), n_items=20).eval()
    history = torch.tensor([[3, 7, 5]])
    padded = torch.tensor([[0, 0, 0, 3, 7, 5]])
    assert torch.allclose(net.predict(history), net.predict(padded), atol=1e-5)


@pytest.mark.parametrize("model", ["sasrec", "gru4rec"])
def test_auto_max_len_is_chosen_from_the_training_sequences(tmp_path, model):
    """max_len = "auto" becomes a number at training, and the checkpoint keeps that number:
    the served model reads exactly as far back as the trained one."""
    data = prepared()
    cfg = load_config(overrides={**TINY, "train.epochs": 1, f"{model}.max_len": "auto"})
    report = train_and_evaluate(data, model, cfg)
    expected = auto_max_len(data.split.train, 200 if model == "sasrec" else 50)
    assert report.checkpoint.model_config["max_len"] == expected
    assert isinstance(expected, int) and expected < 200  # short test sessions: not the ceiling
    rebuilt = Checkpoint.load(report.checkpoint.save(tmp_path / "model.pt")).build_model()
    assert rebuilt.max_len == expected
    assert np.array_equal(evaluate_model(rebuilt, data.split.test).ranks, report.test.ranks)


def test_warm_start_continues_the_champion_on_new_data():
    """Train on the first snapshot, then start from that model on a snapshot with new items:
    the old items' rows carry over, training takes at most train.warm_epochs epochs, and the
    checkpoint says what it started from."""
    events = cycle_events()
    first = prepared(events[events["item_id"] != events["item_id"].max()])  # one item arrives later
    cfg = load_config(overrides={**TINY, "train.epochs": 3, "train.warm_epochs": 2, "train.patience": 9})
    champion = train_and_evaluate(first, "sasrec", cfg).checkpoint
    data = prepared(events)
    assert data.interactions.n_items == first.interactions.n_items + 1
    warm = train_and_evaluate(data, "sasrec", cfg, warm_from=(champion, "version 1"))
    assert warm.train.epochs_run == 2 and warm.checkpoint.train_config["epochs"] == 2
    kept = first.interactions.n_items
    assert warm.checkpoint.warm_start == {
        "from": "version 1",
        "kept_items": kept,
        "new_items": 1,
        "dropped_items": 0,
    }
    # from scratch on the same data: a different start, so different weights after training
    cold = train_and_evaluate(data, "sasrec", cfg)
    assert cold.checkpoint.warm_start == {} and cold.train.epochs_run == 3
    # it starts where the champion ended: with a learning rate too small to learn much in one
    # epoch (lr is not part of the shape), the warm model is good at once, a cold one is not
    slow = load_config(overrides={**TINY, "train.epochs": 1, "train.warm_epochs": 1, "sasrec.lr": 1e-5})
    slow_warm = train_and_evaluate(data, "sasrec", slow, warm_from=(champion, "version 1"))
    slow_cold = train_and_evaluate(data, "sasrec", slow)
    assert slow_warm.test.metrics["ndcg@10"] > slow_cold.test.metrics["ndcg@10"] + 0.3
    # a champion of another shape is not continued: from scratch, and the reason kept
    other = load_config(overrides={**TINY, "sasrec.hidden": 16, "train.epochs": 1})
    refused = train_and_evaluate(data, "sasrec", other, warm_from=(champion, "version 1"))
    assert refused.checkpoint.warm_start["refused"] == "version 1"
    assert "hidden 32 -> 16" in refused.checkpoint.warm_start["reason"]


def test_a_checkpoint_pickled_before_a_field_existed_unpickles_with_its_default():
    """A failed run resumed after an upgrade reads checkpoints pickled by the older code."""
    import pickle

    report = train_and_evaluate(prepared(), "popular", load_config(overrides=TINY))
    state = dict(report.checkpoint.__dict__)
    del state["warm_start"]  # as pickled before warm start existed
    old = Checkpoint.__new__(Checkpoint)
    old.__dict__.update(state)
    restored = pickle.loads(pickle.dumps(old))
    assert restored.warm_start == {} and restored.vocab == report.checkpoint.vocab
