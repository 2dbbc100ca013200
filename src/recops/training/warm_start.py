"""Warm start: a challenger that begins from the champion's weights instead of random ones.

The champion was trained on an earlier snapshot; the new one may hold new items and lack some
old ones. :func:`warm_start_model` builds the new model with the champion's shape (its model
config, so ``max_len = "auto"`` keeps the champion's number) over the new vocabulary, copies
every weight that does not depend on the catalogue, and maps the item tables row by row by
item id: an old item keeps its learned row at its new index, a new item starts from the mean
of the old items' rows (an average item rather than noise), an item gone from the data loses
its row. Training then continues with its own, smaller epoch budget and early stopping
(``retrain.warm_epochs``); the gate judges the result like any challenger.

A champion of another family or shape (``hidden``, layers, ...) cannot be continued:
:class:`WarmStartMismatch` says why, and the caller trains from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recops.data.interactions import ItemVocab
from recops.models import SequenceModel, build_model
from recops.training.checkpoint import Checkpoint


class WarmStartMismatch(ValueError):
    """The champion cannot be continued as this challenger; the message says why."""


@dataclass(frozen=True)
class WarmStart:
    model: SequenceModel
    kept_items: int  # old items present in the new vocabulary: their rows carried over
    new_items: int  # items the champion never saw: rows from the mean old row
    dropped_items: int  # old items absent from the new data: rows left behind

    def summary(self) -> dict[str, int]:
        return {
            "kept_items": self.kept_items,
            "new_items": self.new_items,
            "dropped_items": self.dropped_items,
        }


def continuable(model_name: str) -> bool:
    """Whether a model of this family can start from another's weights: a network can; a model
    fitted by counting is refitted in seconds instead (the cycle does not even load the champion)."""
    from recops.models import MODELS

    return MODELS[model_name][0].trainable


def shape_of(model_config: dict[str, Any]) -> dict[str, Any]:
    """The keys of a model config that decide its weights' shapes (all but the training knobs)."""
    return {key: value for key, value in model_config.items() if key not in TRAINING_ONLY}


TRAINING_ONLY = frozenset({"lr", "dropout"})  # change how it trains, not what its weights are


def warm_start_model(
    champion: Checkpoint, model_name: str, model_config: dict[str, Any], vocab: ItemVocab
) -> WarmStart:
    """A ``model_name`` over ``vocab`` starting from ``champion``'s weights (module docstring).

    ``model_config`` is the challenger's section (a resolved ``max_len``, or ``"auto"``, which
    takes the champion's); its training knobs (lr, dropout) are used, its shape must be the
    champion's. Raises :class:`WarmStartMismatch` when the family or the shape differs, or the
    champion is a counting model (refitted in seconds, nothing to continue)."""
    if champion.model_name != model_name:
        raise WarmStartMismatch(f"the champion is a {champion.model_name}, the challenger a {model_name}")
    wanted = dict(model_config)
    if wanted.get("max_len") == "auto":
        wanted["max_len"] = champion.model_config.get("max_len")
    if shape_of(wanted) != shape_of(champion.model_config):
        differ = sorted(
            key
            for key in shape_of(wanted).keys() | shape_of(champion.model_config).keys()
            if wanted.get(key) != champion.model_config.get(key)
        )
        described = ", ".join(f"{k} {champion.model_config.get(k)!r} -> {wanted.get(k)!r}" for k in differ)
        raise WarmStartMismatch(f"the champion's shape differs: {described}")
    model = build_model(model_name, wanted, len(vocab))
    if not model.trainable:
        raise WarmStartMismatch(f"{model_name} is fitted by counting: nothing to continue")
    tables = set(model.item_tables)
    state = model.state_dict()
    old_index = champion.vocab.indices_of(vocab.items)  # 0: an item the champion never saw
    kept = old_index > 0
    for key, tensor in state.items():
        saved = champion.state_dict[key]
        if key not in tables:
            if saved.shape != tensor.shape:  # a shape key the configs do not show
                raise WarmStartMismatch(
                    f"the champion's {key} is {tuple(saved.shape)}, not {tuple(tensor.shape)}"
                )
            state[key] = saved.clone()
            continue
        state[key] = _mapped_rows(saved, old_index, kept)
    model.load_state_dict(state)
    return WarmStart(model, int(kept.sum()), int((~kept).sum()), len(champion.vocab) - int(kept.sum()))


def _mapped_rows(saved: torch.Tensor, old_index: np.ndarray, kept: np.ndarray) -> torch.Tensor:
    """An item table for the new vocabulary: row 0 (padding) as it was, an old item's row from
    its old index, a new item's the mean of the old items' rows."""
    rows = torch.empty((len(old_index) + 1, *saved.shape[1:]), dtype=saved.dtype)
    rows[0] = saved[0]
    rows[1:] = saved[1:].mean(dim=0) if len(saved) > 1 else 0
    new_at = torch.as_tensor(np.flatnonzero(kept) + 1)
    rows[new_at] = saved[torch.as_tensor(old_index[kept])]
    return rows
