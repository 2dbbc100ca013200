"""Sequence recommenders: one config model each, built through :func:`build_model`."""

from __future__ import annotations

from typing import Any

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


def build_model(name: str, config: Any, n_items: int) -> SequenceModel:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    cls, config_cls = MODELS[name]
    if isinstance(config, dict):
        config = config_cls(**config)
    return cls(config, n_items)


__all__ = [
    "MODELS",
    "VSKNN",
    "GRU4Rec",
    "Markov",
    "Popular",
    "SASRec",
    "SequenceModel",
    "SequentialRules",
    "build_model",
    "pad_left",
    "trim_padding",
]
