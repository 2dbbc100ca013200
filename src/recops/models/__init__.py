"""Sequence recommenders: one config model each, built through :func:`build_model`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recops.config import GRU4RecConfig, MarkovConfig, PopularConfig, SASRecConfig, SRConfig, VSKNNConfig
from recops.models.base import SequenceModel, pad_left, trim_padding
from recops.models.gru4rec import GRU4Rec
from recops.models.popularity import Popular
from recops.models.rules import Markov, SequentialRules
from recops.models.sasrec import SASRec
from recops.models.sknn import VSKNN

MODELS: dict[str, tuple[type[SequenceModel], type]] = {
    "sasrec": (SASRec, SASRecConfig),
    "gru4rec": (GRU4Rec, GRU4RecConfig),
    "popular": (Popular, PopularConfig),
    "markov": (Markov, MarkovConfig),
    "sr": (SequentialRules, SRConfig),
    "vsknn": (VSKNN, VSKNNConfig),
}


AUTO_LENGTHS = (10, 20, 50, 100, 200, 500)  # what max_len = "auto" chooses among
AUTO_COVERAGE = 95  # percent of the training sequences whose whole history the model reads


def auto_max_len(sequences: Sequence[np.ndarray] | None, longest: int) -> int:
    """``max_len = "auto"``: the shortest of :data:`AUTO_LENGTHS` that holds the whole input of
    95% of the training sequences (a sequence of n events is n - 1 inputs), at most ``longest``
    (the family's ``longest_auto_len``); ``longest`` without sequences (an untrained model).

    Sessions of a few clicks get 10 or 20 positions, user histories of hundreds of events the
    longest; a longer max_len than the data needs costs nothing in training (batches are cut to
    their longest window) but gives the positional table rows that never train."""
    lengths = [len(seq) - 1 for seq in sequences or () if len(seq) >= 2]
    if not lengths:
        return longest
    needed = float(np.percentile(lengths, AUTO_COVERAGE))
    return min(next((n for n in AUTO_LENGTHS if n >= needed), longest), longest)


def resolve_config(config: Any, sequences: Sequence[np.ndarray] | None = None) -> Any:
    """``config`` with ``max_len = "auto"`` replaced by the number the data calls for."""
    if getattr(config, "max_len", None) != "auto":
        return config
    length = auto_max_len(sequences, type(config).longest_auto_len)
    return config.model_copy(update={"max_len": length})


def build_model(
    name: str, config: Any, n_items: int, sequences: Sequence[np.ndarray] | None = None
) -> SequenceModel:
    """The model ``name`` with ``config`` (its section, or that as a dict) over ``n_items`` items;
    ``sequences`` (the training sequences) decide a ``max_len = "auto"`` (:func:`auto_max_len`),
    and the model's ``config`` holds the number chosen."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    cls, config_cls = MODELS[name]
    if isinstance(config, dict):
        config = config_cls(**config)
    return cls(resolve_config(config, sequences), n_items)


__all__ = [
    "AUTO_LENGTHS",
    "MODELS",
    "VSKNN",
    "GRU4Rec",
    "Markov",
    "Popular",
    "SASRec",
    "SequenceModel",
    "SequentialRules",
    "auto_max_len",
    "build_model",
    "pad_left",
    "resolve_config",
    "trim_padding",
]
