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
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    Strict,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic.fields import FieldInfo

from recops.errors import RecopsError
from recops.store import uri_problem


class ConfigError(RecopsError):
    """A configuration file or override is invalid; the message names the key."""


MODEL_SECTIONS = ("sasrec", "gru4rec", "popular")


def _from_text(parse: Callable[[str], Any]) -> BeforeValidator:
    """Parse override strings; what does not parse stays a string for the strict check to reject."""

    def before(value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse(value)
            except ValueError:
                return value
        return value

    return BeforeValidator(before)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError(text)


def _one_of(*choices: str) -> AfterValidator:
    text = ", ".join(choices[:-1]) + " or " + choices[-1]

    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be {text}")
        return value

    return AfterValidator(check)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


# Strict: no bool for an int, no 1.5 for an int, no number for a str.
Int = Annotated[int, Strict(), _from_text(int)]
Float = Annotated[FiniteFloat, Strict(), _from_text(float)]
Bool = Annotated[bool, Strict(), _from_text(_parse_bool)]
Str = Annotated[str, Strict()]
Size = Annotated[Int, Field(ge=1)]
Seed = Annotated[Int, Field(ge=0, le=2**32 - 1)]  # np.random.seed takes 32-bit seeds
Probability = Annotated[Float, Field(ge=0, le=1)]
Dropout = Annotated[Float, Field(ge=0, lt=1)]
Positive = Annotated[Float, Field(gt=0)]


class _Section(BaseModel):
    """Frozen, closed to unknown keys, and failing with a ConfigError that names the key."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    _path: ClassVar[str] = ""  # where the section sits in the tree, e.g. "data.synthetic"

    @model_validator(mode="wrap")
    @classmethod
    def _errors_name_the_key(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # A ConfigError is not a ValueError, so pydantic lets it through the enclosing
        # sections unchanged: the innermost failing section words the message.
        try:
            section = handler(data)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, cls)) from None
        section._check_rules()
        return section

    def _check_rules(self) -> None:
        """Rules across fields, raising ConfigError with the full key (here, not in a
        model_validator, which would run outside the wrapper above)."""


class SyntheticConfig(_Section):
    """Size and shape of the built-in synthetic e-commerce sessions."""

    _path: ClassVar[str] = "data.synthetic"

    n_sessions: Size = 4000
    n_items: Size = 800
    n_categories: Size = 16
    mean_session_length: Annotated[Float, Field(ge=1)] = 9.0
    successor_prob: Probability = 0.6  # chance the next item follows the current item's pattern
    zipf_exponent: Annotated[Float, Field(ge=0)] = 1.1  # long-tail popularity (0: uniform)
    seed: Seed = 7


class DataConfig(_Section):
    _path: ClassVar[str] = "data"

    dataset: Str = "synthetic"
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)


class SASRecConfig(_Section):
    """Self-attentive sequential recommendation (Kang & McAuley 2018), trained with full CE."""

    _path: ClassVar[str] = "sasrec"

    max_len: Annotated[Int, Field(ge=2)] = 200
    hidden: Size = 64
    n_layers: Size = 2
    n_heads: Size = 1
    ffn_multiplier: Size = 4  # feed-forward width = ffn_multiplier x hidden
    dropout: Dropout = 0.2
    tie_embeddings: Bool = True  # score with the input item embeddings (else a separate output table)
    history_bias: Bool = True  # learned score offset for items already in the input (see models/base.py)
    lr: Positive = 2e-3  # Adam learning rate; per model, as each converges best at its own

    def _check_rules(self) -> None:
        _require(
            self.hidden % self.n_heads == 0,
            f"sasrec.hidden must be divisible by n_heads, got hidden={self.hidden}, n_heads={self.n_heads}",
        )


class GRU4RecConfig(_Section):
    """Session-based recommendation with a GRU (Hidasi et al. 2016), trained with full CE."""

    _path: ClassVar[str] = "gru4rec"

    max_len: Annotated[Int, Field(ge=2)] = (
        50  # a GRU reads sequentially: long windows cost time and forget anyway
    )
    embedding: Size = 64
    hidden: Size = 128
    n_layers: Size = 1
    dropout: Dropout = 0.3
    history_bias: Bool = True
    lr: Positive = 5e-3


class PopularConfig(_Section):
    """Most-popular baseline: scores items by their training frequency."""

    _path: ClassVar[str] = "popular"

    max_len: Size = 200  # only the length of input it accepts; the score ignores the session


class TrainConfig(_Section):
    _path: ClassVar[str] = "train"

    epochs: Size = 200
    batch_size: Size = 64
    weight_decay: Annotated[Float, Field(ge=0)] = 0.0
    patience: Size = 5  # epochs without a better validation NDCG@10 before stopping
    min_epochs: Size = 1
    eval_k: Size = 10
    seed: Seed = 42
    device: Annotated[Str, _one_of("auto", "cpu", "cuda")] = "auto"  # "auto" = CUDA when present, else CPU
    grad_clip: Annotated[Float, Field(ge=0)] = 5.0  # max gradient norm; 0 turns clipping off


class GateConfig(_Section):
    """The champion/challenger gate: paired bootstrap on per-sequence NDCG@k plus behavioural checks."""

    _path: ClassVar[str] = "gate"

    margin: Annotated[Float, Field(ge=0)] = (
        0.0  # how far below the champion the CI's lower bound may reach (NDCG points)
    )
    resamples: Size = 1000
    seed: Seed = 0
    latency_budget_ms: Positive = 50.0  # p95 of one `recommend` call
    k: Size = 10  # NDCG@k for the comparison, top-k for the behavioural checks
    sessions: Size = 200  # sessions the behavioural checks run
    confidence: Annotated[Float, Field(gt=0, lt=1)] = 0.95


class ResourcesConfig(_Section):
    """What the training step asks of a remote compute layer (AWS Batch, Kubernetes).

    Metaflow ignores @resources for local runs, so the defaults cost nothing on a laptop.
    """

    _path: ClassVar[str] = "resources"

    cpu: Size = 2
    memory: Size = 8000  # MB
    gpu: Annotated[Int, Field(ge=0)] = 1
    retries: Annotated[Int, Field(ge=0)] = (
        1  # extra attempts for the training step (@retry), e.g. after a spot interruption
    )


class DriftConfig(_Section):
    """When new events count as drifted from the champion's training data (recops.continuous.drift)."""

    _path: ClassVar[str] = "drift"

    popularity_js: Annotated[Float, Field(gt=0, le=1)] = (
        0.1  # Jensen-Shannon divergence (base 2, 0..1) of item popularity
    )
    unseen_share: Annotated[Float, Field(gt=0, le=1)] = (
        0.05  # share of new events on items the champion never saw
    )
    length_js: Annotated[Float, Field(gt=0, le=1)] = (
        0.1  # Jensen-Shannon divergence of the session-length distribution
    )
    min_events: Size = 200  # fewer new events than this: too few to judge, no drift reported


class RetrainConfig(_Section):
    """The continuous-training policy of `recops retrain` and the Prefect `retrain` flow."""

    _path: ClassVar[str] = "retrain"

    max_champion_age_hours: Positive = 168.0  # retrain a champion this old even if nothing changed
    on_new_data: Bool = True  # new events alone trigger retraining (False: only drift or age do)
    model: Annotated[Str, _one_of(*MODEL_SECTIONS)] = "sasrec"
    deploy_timeout_s: Positive = 60.0  # how long `deploy` waits for the local server to switch
    webhook_url: Str = ""  # POSTed a JSON message when a cycle fails (empty: no webhook)
    train_timeout_s: Positive = 21600.0  # a training run still going after this is ended (6 h)
    lock_wait_s: Positive = 3600.0  # how long a cycle waits for another to finish before skipping
    keep: Size = 5  # after each cycle, gc keeps the newest N versions, bentos, models (+ champion's)


def _store_uri(value: str) -> str:
    if problem := uri_problem(value):
        raise ValueError(problem)
    return value


class StoreConfig(_Section):
    """Where the continuous-training state lives (recops.store); ``$RECOPS_STORE`` overrides it."""

    _path: ClassVar[str] = "store"

    uri: Annotated[Str, AfterValidator(_store_uri)] = ""  # a folder or s3://bucket/prefix ("": $RECOPS_HOME)


class Config(_Section):
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sasrec: SASRecConfig = Field(default_factory=SASRecConfig)
    gru4rec: GRU4RecConfig = Field(default_factory=GRU4RecConfig)
    popular: PopularConfig = Field(default_factory=PopularConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)

    def model_section(self, model: str) -> SASRecConfig | GRU4RecConfig | PopularConfig:
        """The section configuring ``model`` (pydantic reserves the name ``model_config``)."""
        if model not in MODEL_SECTIONS:
            raise ConfigError(f"unknown model {model!r}; choose one of {sorted(MODEL_SECTIONS)}")
        return getattr(self, model)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


_EXPECTED = {
    "int_type": "int",
    "float_type": "float",
    "bool_type": "bool (true/false)",
    "string_type": "str",
    "model_type": "a table",
}
_RANGE_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _describe(exc: ValidationError, section: type[_Section]) -> str:
    """One message for a section's validation errors, each naming its dotted key."""
    path = section._path
    problems, unknown = [], []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        key = ".".join((path, *loc) if path else loc) or "config"
        kind, value = error["type"], error.get("input")
        if kind == "extra_forbidden":
            unknown.append(key)
        elif kind in _EXPECTED:
            problems.append(f"{key}: expected {_EXPECTED[kind]}, got {value!r}")
        elif kind == "finite_number":
            problems.append(f"{key} must be a finite number, got {value}")
        elif kind in _RANGE_ERRORS and loc:
            problems.append(f"{key} must be {_range(section.model_fields[loc[0]])}, got {value}")
        elif kind == "value_error":  # a field's own rule, e.g. "must be auto, cpu or cuda"
            problems.append(f"{key} {error['ctx']['error']}, got {value!r}")
        else:
            problems.append(f"{key}: {error['msg']}, got {value!r}")
    if unknown:
        where = f"[{path}]" if path else "top level"
        known = ", ".join(section.model_fields)
        problems.insert(0, f"unknown config key(s) {', '.join(unknown)} in {where}; known: {known}")
    return "; ".join(problems)


def _range(field: FieldInfo) -> str:
    """A field's bounds as text: ">= 1", "> 0", "in [0, 1)"."""
    bounds = {
        name: getattr(rule, name)
        for rule in field.metadata
        for name in ("ge", "gt", "le", "lt")
        if hasattr(rule, name)
    }
    low = f"[{bounds['ge']}" if "ge" in bounds else f"({bounds['gt']}" if "gt" in bounds else ""
    high = f"{bounds['le']}]" if "le" in bounds else f"{bounds['lt']})" if "lt" in bounds else ""
    if low and high:
        return f"in {low}, {high}"
    if low:
        return (">= " if low[0] == "[" else "> ") + low[1:]
    return ("<= " if high[-1] == "]" else "< ") + high[:-1]


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
