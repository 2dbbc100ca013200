"""Training with cross-entropy at every position, early stopping on validation NDCG@10.

The loss is ``[train] loss`` (recops.models.losses): full softmax cross-entropy, the same in
bounded-memory chunks, or a sampled softmax for catalogues too large for either.

Each training sequence is cut from its end into windows of ``max_len + 1`` items (inputs and
next-item targets), so every training event is a target exactly once per epoch however long
the sequence. After each epoch the validation NDCG@K decides early stopping; the best
epoch's weights are restored at the end.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from recops.config import TrainConfig
from recops.data.split import Split
from recops.localproc import cap_torch_threads
from recops.models import SequenceModel
from recops.models.base import pad_left, trim_padding
from recops.models.losses import Objective, objective_for
from recops.training.evaluate import evaluate_model

log = logging.getLogger(__name__)


@dataclass
class EpochStats:
    epoch: int
    loss: float
    valid_ndcg: float
    seconds: float


def epoch_line(stats: EpochStats, prefix: str = "") -> str:
    """One epoch as the progress line ``recops train`` and the training flow print."""
    return (
        f"{prefix}epoch {stats.epoch:3d}  loss {stats.loss:.4f}  "
        f"valid ndcg@10 {stats.valid_ndcg:.4f}  ({stats.seconds:.1f}s)"
    )


@dataclass
class TrainResult:
    model: SequenceModel
    history: list[EpochStats] = field(default_factory=list)
    best_epoch: int = 0
    epochs_run: int = 0
    train_seconds: float = 0.0
    valid_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def seconds_per_epoch(self) -> float:
        return self.train_seconds / self.epochs_run if self.epochs_run else 0.0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device = 'cuda' but no CUDA device is available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def training_windows(sequences: tuple[np.ndarray, ...], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), each (N, max_len) left-padded: windows of max_len+1 items cut from the end."""
    windows = []
    for seq in sequences:
        end = len(seq)
        while end >= 2:
            windows.append(seq[max(0, end - max_len - 1) : end])
            end -= max_len
    inputs = pad_left([w[:-1] for w in windows], max_len)
    targets = pad_left([w[1:] for w in windows], max_len)
    return inputs, targets


def length_bucketed_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Shuffled batches of windows of similar length: little padding, random order each epoch."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * 32
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def train_step(
    model: SequenceModel,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    objective: Objective,
    grad_clip: float,
) -> float:
    """One optimiser step on a batch already on the model's device (bf16 autocast on CUDA);
    returns the batch's loss."""
    device_type = x.device.type
    with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=device_type == "cuda"):
        loss = model.training_loss(x, y, objective)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def train_model(
    model: SequenceModel,
    split: Split,
    config: TrainConfig,
    on_epoch: Callable[[EpochStats], Any] | None = None,
) -> TrainResult:
    """Train ``model`` on ``split.train``; return it with its best-validation weights restored."""
    cap_torch_threads()
    seed_everything(config.seed)
    device = resolve_device(config.device)
    model.to(device)
    started = time.perf_counter()
    if not model.trainable:
        model.fit(split.train)  # type: ignore[attr-defined]
        valid = evaluate_model(model, split.valid, ks=(config.eval_k,)).metrics
        return TrainResult(model, [], 0, 0, time.perf_counter() - started, valid)

    inputs, targets = training_windows(split.train, model.max_len)
    if len(inputs) == 0:
        raise ValueError("no training sequences with at least two events")
    inputs_t, targets_t = torch.as_tensor(inputs), torch.as_tensor(targets)
    lengths = (targets != 0).sum(axis=1)
    objective = objective_for(config, split.train, model.n_items)
    optimizer = torch.optim.Adam(model.parameters(), lr=model.config.lr, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    result = TrainResult(model)
    best_ndcg, best_state, stale = -1.0, None, 0
    metric = f"ndcg@{config.eval_k}"

    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        total, batches = 0.0, 0
        for batch in length_bucketed_batches(lengths, config.batch_size, rng):
            idx = torch.as_tensor(batch)
            x, y = trim_padding(inputs_t[idx], targets_t[idx])
            total += train_step(model, optimizer, x.to(device), y.to(device), objective, config.grad_clip)
            batches += 1
        valid = evaluate_model(model, split.valid, ks=(config.eval_k,)).metrics
        stats = EpochStats(epoch, total / batches, valid[metric], time.perf_counter() - epoch_start)
        result.history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
        if valid[metric] > best_ndcg:
            best_ndcg, best_state, stale = valid[metric], copy.deepcopy(model.state_dict()), 0
            result.best_epoch, result.valid_metrics = epoch, valid
        else:
            stale += 1
            if stale >= config.patience and epoch >= config.min_epochs:
                log.info("early stop at epoch %d: no better %s for %d epochs", epoch, metric, stale)
                break

    result.epochs_run = len(result.history)
    result.train_seconds = time.perf_counter() - started
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result
