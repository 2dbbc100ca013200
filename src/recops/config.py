"""One typed, frozen configuration tree, read from TOML and command-line overrides.

Parsing happens once, at an entry point (CLI, flow start, Prefect task); everything
below takes the resulting :class:`Config` (or one of its parts) whole.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key."""


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and shape of the built-in synthetic e-commerce sessions."""

    n_sessions: int = 4000
    n_items: int = 800
    n_categories: int = 16
    mean_session_length: float = 9.0
    successor_prob: float = 0.6  # chance the next item follows the current item's pattern
    zipf_exponent: float = 1.1  # long-tail popularity
    seed: int = 7


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "synthetic"
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass(frozen=True)
class SASRecConfig:
    """Self-attentive sequential recommendation (Kang & McAuley 2018), trained with full CE."""

    max_len: int = 200
    hidden: int = 64
    n_layers: int = 2
    n_heads: int = 1
    ffn_multiplier: int = 4  # feed-forward width = ffn_multiplier x hidden
    dropout: float = 0.2
    tie_embeddings: bool = True  # score with the input item embeddings (else a separate output table)
    history_bias: bool = True  # learned score offset for items already in the input (see models/base.py)
    lr: float = 2e-3  # Adam learning rate; per model, as each converges best at its own

    def __post_init__(self) -> None:
        _require(self.hidden % self.n_heads == 0, "sasrec.hidden must be divisible by n_heads")
        _require(self.max_len >= 2, "sasrec.max_len must be at least 2")
        _require(0.0 <= self.dropout < 1.0, "sasrec.dropout must be in [0, 1)")
        _require(self.lr > 0, "sasrec.lr must be positive")


@dataclass(frozen=True)
class GRU4RecConfig:
    """Session-based recommendation with a GRU (Hidasi et al. 2016), trained with full CE."""

    max_len: int = 50  # a GRU reads sequentially: long windows cost time and forget anyway
    embedding: int = 64
    hidden: int = 128
    n_layers: int = 1
    dropout: float = 0.3
    history_bias: bool = True
    lr: float = 5e-3

    def __post_init__(self) -> None:
        _require(self.max_len >= 2, "gru4rec.max_len must be at least 2")
        _require(0.0 <= self.dropout < 1.0, "gru4rec.dropout must be in [0, 1)")
        _require(self.lr > 0, "gru4rec.lr must be positive")


@dataclass(frozen=True)
class PopularConfig:
    """Most-popular baseline: scores items by their training frequency."""

    max_len: int = 200  # only the length of input it accepts; the score ignores the session


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 200
    batch_size: int = 64
    weight_decay: float = 0.0
    patience: int = 5  # epochs without a better validation NDCG@10 before stopping
    min_epochs: int = 1
    eval_k: int = 10
    seed: int = 42
    device: str = "auto"  # "auto" = CUDA when present, else CPU
    grad_clip: float = 5.0

    def __post_init__(self) -> None:
        _require(self.epochs >= 1, "train.epochs must be at least 1")
        _require(self.batch_size >= 1, "train.batch_size must be at least 1")
        _require(self.patience >= 1, "train.patience must be at least 1")
        _require(self.device in ("auto", "cpu", "cuda"), "train.device must be auto, cpu or cuda")


@dataclass(frozen=True)
class GateConfig:
    """The champion/challenger gate: paired bootstrap on per-sequence NDCG@k plus behavioural checks."""

    margin: float = 0.0  # how far below the champion the CI's lower bound may reach (NDCG points)
    resamples: int = 1000
    seed: int = 0
    latency_budget_ms: float = 50.0  # p95 of one `recommend` call
    k: int = 10  # NDCG@k for the comparison, top-k for the behavioural checks
    sessions: int = 200  # sessions the behavioural checks run
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise ValueError(f"gate margin must be >= 0, got {self.margin}")
        if self.resamples < 1 or self.k < 1 or self.sessions < 1:
            raise ValueError("gate resamples, k and sessions must be at least 1")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"gate confidence must be in (0, 1), got {self.confidence}")
        if self.latency_budget_ms <= 0:
            raise ValueError(f"gate latency_budget_ms must be positive, got {self.latency_budget_ms}")


@dataclass(frozen=True)
class ResourcesConfig:
    """What the training step asks of a remote compute layer (AWS Batch, Kubernetes).

    Metaflow ignores @resources for local runs, so the defaults cost nothing on a laptop.
    """

    cpu: int = 2
    memory: int = 8000  # MB
    gpu: int = 1
    retries: int = 1  # extra attempts for the training step (@retry), e.g. after a spot interruption


@dataclass(frozen=True)
class DriftConfig:
    """When new events count as drifted from the champion's training data (recops.continuous.drift)."""

    popularity_js: float = 0.1  # Jensen-Shannon divergence (base 2, 0..1) of item popularity
    unseen_share: float = 0.05  # share of new events on items the champion never saw
    length_js: float = 0.1  # Jensen-Shannon divergence of the session-length distribution
    min_events: int = 200  # fewer new events than this: too few to judge, no drift reported

    def __post_init__(self) -> None:
        for name in ("popularity_js", "unseen_share", "length_js"):
            _require(0.0 < getattr(self, name) <= 1.0, f"drift.{name} must be in (0, 1]")
        _require(self.min_events >= 1, "drift.min_events must be at least 1")


@dataclass(frozen=True)
class RetrainConfig:
    """The continuous-training policy of `recops retrain` and the Prefect `retrain` flow."""

    max_champion_age_hours: float = 168.0  # retrain a champion this old even if nothing changed
    on_new_data: bool = True  # new events alone trigger retraining (False: only drift or age do)
    model: str = "sasrec"
    deploy_timeout_s: float = 60.0  # how long `deploy` waits for the local server to switch
    webhook_url: str = ""  # POSTed a JSON message when a cycle fails (empty: no webhook)

    def __post_init__(self) -> None:
        _require(self.max_champion_age_hours > 0, "retrain.max_champion_age_hours must be positive")
        _require(self.deploy_timeout_s > 0, "retrain.deploy_timeout_s must be positive")


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sasrec: SASRecConfig = field(default_factory=SASRecConfig)
    gru4rec: GRU4RecConfig = field(default_factory=GRU4RecConfig)
    popular: PopularConfig = field(default_factory=PopularConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)

    def model_config(self, model: str) -> Any:
        if model not in MODEL_SECTIONS:
            raise ConfigError(f"unknown model {model!r}; choose one of {sorted(MODEL_SECTIONS)}")
        return getattr(self, model)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


MODEL_SECTIONS = ("sasrec", "gru4rec", "popular")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif annotation is str and isinstance(value, str):
        return value
    raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}")


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        where = f"[{prefix.rstrip('.')}]" if prefix else "top level"
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + u for u in unknown)} in {where}; "
            f"known: {', '.join(sorted(names))}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation):
            if not isinstance(value, dict):
                raise ConfigError(f"{prefix}{name}: expected a table, got {value!r}")
            kwargs[name] = _build(annotation, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, annotation, prefix + name)
    return cls(**kwargs)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {part} is not a table")
    node[parts[-1]] = value


def config_from_dict(tree: dict[str, Any]) -> Config:
    """Build a Config from a parsed tree (e.g. a Metaflow Config value)."""
    return _build(Config, tree, "")


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read a TOML config file (optional) and apply ``{"train.epochs": 5}``-style overrides.

    Raises :class:`ConfigError` naming the file and key on any unknown key or bad value.
    """
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            tree = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(tree, dotted, value)
    try:
        return _build(Config, tree, "")
    except ConfigError as exc:
        if path is not None:
            raise ConfigError(f"{path}: {exc}") from exc
        raise


def parse_override(text: str) -> tuple[str, str]:
    """Split a ``key=value`` command-line override."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    return key.strip(), value.strip()
