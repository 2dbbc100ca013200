"""One typed, frozen configuration tree, read from TOML and command-line overrides.

Parsing happens once, at an entry point (CLI, flow start, Prefect task); everything
below takes the resulting :class:`Config` (or one of its parts) whole.

Each section is a frozen pydantic model that rejects unknown keys, values of the wrong type
(types are strict, except that strings, as overrides arrive from the command line, are parsed:
``"3"``, ``"1e-3"``, ``"false"``), nan and infinity, and numbers outside the field's range.
Every failure, from a file, an override or a section built in code, is a :class:`ConfigError`
naming the dotted key.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field

from recops.config.base import BASELINES, MODEL_SECTIONS, ConfigError, _Section
from recops.config.search import (
    GRU4RecSpace,
    MarkovSpace,
    SASRecSpace,
    SearchDimension,
    SearchSpace,
    SRSpace,
    TuneConfig,
    VSKNNSpace,
)
from recops.config.sections import (
    CacheConfig,
    DataConfig,
    DriftConfig,
    GateConfig,
    GRU4RecConfig,
    MarkovConfig,
    ModelConfig,
    OnlineConfig,
    PopularConfig,
    ResourcesConfig,
    RetrainConfig,
    SASRecConfig,
    SRConfig,
    StoreConfig,
    SyntheticConfig,
    TrainConfig,
    VSKNNConfig,
)


class Config(_Section):
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sasrec: SASRecConfig = Field(default_factory=SASRecConfig)
    gru4rec: GRU4RecConfig = Field(default_factory=GRU4RecConfig)
    popular: PopularConfig = Field(default_factory=PopularConfig)
    markov: MarkovConfig = Field(default_factory=MarkovConfig)
    sr: SRConfig = Field(default_factory=SRConfig)
    vsknn: VSKNNConfig = Field(default_factory=VSKNNConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    online: OnlineConfig = Field(default_factory=OnlineConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)

    def model_section(self, model: str) -> ModelConfig:
        """The section configuring ``model`` (pydantic reserves the name ``model_config``)."""
        if model not in MODEL_SECTIONS:
            raise ConfigError(f"unknown model {model!r}; choose one of {sorted(MODEL_SECTIONS)}")
        return getattr(self, model)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


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
    return Config.model_validate(tree)


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
        return config_from_dict(tree)
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


# what the package's modules define, importable from recops.config (and found there by pickle
# for artifacts written before the package was split)
__all__ = [
    "BASELINES",
    "MODEL_SECTIONS",
    "CacheConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "DriftConfig",
    "GRU4RecConfig",
    "GRU4RecSpace",
    "GateConfig",
    "MarkovConfig",
    "MarkovSpace",
    "ModelConfig",
    "OnlineConfig",
    "PopularConfig",
    "ResourcesConfig",
    "RetrainConfig",
    "SASRecConfig",
    "SASRecSpace",
    "SRConfig",
    "SRSpace",
    "SearchDimension",
    "SearchSpace",
    "StoreConfig",
    "SyntheticConfig",
    "TrainConfig",
    "TuneConfig",
    "VSKNNConfig",
    "VSKNNSpace",
    "config_from_dict",
    "load_config",
    "parse_override",
]
