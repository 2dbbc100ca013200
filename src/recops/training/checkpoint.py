"""A checkpoint carries everything needed to rebuild its model: config, vocabulary, lineage."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from recops import __version__
from recops.data.interactions import ItemVocab
from recops.errors import RecopsError
from recops.models import MODELS, SequenceModel, build_model
from recops.paths import atomic_path

# 2: an all-integer vocabulary and the item counts are int64 tensors (format 1: lists, still read)
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)


def _packed(values: list[Any]) -> Any:
    """Python ints as one int64 tensor: a million of them unpickle in seconds as a list, in
    milliseconds as a tensor. Anything else (text ids, ints past int64) stays a list."""
    if values and all(type(value) is int for value in values):
        try:
            return torch.tensor(values, dtype=torch.int64)
        except (OverflowError, RuntimeError):
            return values
    return values


def _unpacked(values: Any) -> list[Any]:
    return values.tolist() if isinstance(values, torch.Tensor) else list(values)


class CheckpointError(RecopsError):
    """A checkpoint file is missing, unreadable or not a recops checkpoint."""


@dataclass
class Checkpoint:
    model_name: str
    model_config: dict[str, Any]
    vocab: ItemVocab
    state_dict: dict[str, torch.Tensor]
    data_fingerprint: str
    train_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    dataset: str = ""
    item_counts: list[int] = field(default_factory=list)  # training frequency per vocab item
    # set when training started from another model's weights (recops.training.warm_start):
    # "from" (what it started from), kept_items, new_items, dropped_items
    warm_start: dict[str, Any] = field(default_factory=dict)
    recops_version: str = __version__

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling (a Metaflow artifact) a checkpoint saved before a field existed gives it the
        field's default, so that a run resumed after an upgrade reads its own checkpoints."""
        for spec in fields(self):
            if spec.name not in state and spec.default_factory is not MISSING:
                state[spec.name] = spec.default_factory()
            elif spec.name not in state and spec.default is not MISSING:
                state[spec.name] = spec.default
        self.__dict__.update(state)

    @classmethod
    def from_model(
        cls, model: SequenceModel, model_name: str, vocab: ItemVocab, **lineage: Any
    ) -> Checkpoint:
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return cls(model_name, model.config.model_dump(), vocab, state, **lineage)

    def build_model(self, device: str | torch.device = "cpu") -> SequenceModel:
        model = build_model(self.model_name, self.model_config, len(self.vocab))
        model.load_state_dict(self.state_dict)
        return model.to(device).eval()

    def save(self, path: str | Path) -> Path:
        """Write atomically: a crash leaves the old file or none, never half a checkpoint."""
        path = Path(path)
        payload = {
            "format_version": FORMAT_VERSION,
            "model_name": self.model_name,
            "model_config": self.model_config,
            "vocab": _packed(self.vocab.to_list()),
            "state_dict": self.state_dict,
            "data_fingerprint": self.data_fingerprint,
            "train_config": self.train_config,
            "metrics": self.metrics,
            "dataset": self.dataset,
            "item_counts": _packed(list(self.item_counts)),
            "warm_start": dict(self.warm_start),
            "recops_version": self.recops_version,
        }
        # To an open file, not a path: torch names the archive's folder after a path (here the
        # temporary file's random name), so the same checkpoint saved twice differed in bytes;
        # to a file it is "archive", and equal checkpoints are equal files (one sha256).
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            torch.save(payload, handle)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Checkpoint:
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"checkpoint not found: {path}")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for corrupt files
            raise CheckpointError(f"{path}: not a readable checkpoint ({exc})") from exc
        if not isinstance(payload, dict) or payload.get("format_version") not in READABLE_FORMATS:
            raise CheckpointError(f"{path}: not a recops checkpoint (formats {READABLE_FORMATS})")
        if payload["model_name"] not in MODELS:
            raise CheckpointError(f"{path}: unknown model {payload['model_name']!r}")
        return cls(
            model_name=payload["model_name"],
            model_config=payload["model_config"],
            vocab=ItemVocab(tuple(_unpacked(payload["vocab"]))),
            state_dict=payload["state_dict"],
            data_fingerprint=payload["data_fingerprint"],
            train_config=payload["train_config"],
            metrics=payload["metrics"],
            dataset=payload.get("dataset", ""),
            item_counts=_unpacked(payload.get("item_counts", [])),
            warm_start=dict(payload.get("warm_start", {})),
            recops_version=payload.get("recops_version", ""),
        )
