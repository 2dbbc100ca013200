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
from typing import Annotated, Any, ClassVar, Literal

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

from recops.errors import RecopsError
from recops.store import uri_problem


class ConfigError(RecopsError):
    """A configuration file or override is invalid; the message names the key."""


MODEL_SECTIONS = ("sasrec", "gru4rec", "popular", "markov", "sr", "vsknn")
# the simple baselines: trained in seconds, counted not learned; the gate compares every
# challenger with the best of them (gate.require_beat_baseline)
BASELINES = ("markov", "sr", "vsknn", "popular")


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


def _known_models(models: tuple[str, ...]) -> tuple[str, ...]:
    if not models:
        raise ValueError("must name at least one model")
    if unknown := [m for m in models if m not in MODEL_SECTIONS]:
        raise ValueError(f"names unknown model {', '.join(unknown)}; choose from {', '.join(MODEL_SECTIONS)}")
    return models


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


def _max_len(value: Any) -> Any:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 2):
        return value
    if isinstance(value, str) and value.strip().isdigit() and int(value) >= 2:
        return int(value)
    raise ValueError('must be a whole number of at least 2, or "auto" (set from the data)')


# The most recent events a model reads. "auto": chosen from the training sequences when the
# model is built (recops.models.auto_max_len); the checkpoint holds the number it chose.
MaxLen = Annotated[int | Literal["auto"], BeforeValidator(_max_len)]


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
    # 1: the pattern follows the current item only; 2: the last two items together decide it
    # (what a first-order Markov chain cannot see, and a sequence model can)
    order: Annotated[Int, Field(ge=1, le=2)] = 1
    # "successors": each item's short successor lists (above). "intent": every session has a
    # hidden shopping intent and items have latent attributes; the next item depends on the
    # current one (its complements) and on the intent, which only the whole session reveals
    structure: Annotated[Str, _one_of("successors", "intent")] = "successors"
    intent_strength: Annotated[Float, Field(ge=0)] = 10.0  # "intent": weight of the session's intent
    complement_strength: Annotated[Float, Field(ge=0)] = 6.0  # "intent": weight of the current item
    intent_change: Probability = 0.05  # "intent": chance per step that the shopper's intent changes
    zipf_exponent: Annotated[Float, Field(ge=0)] = 1.1  # long-tail popularity (0: uniform)
    seed: Seed = 7

    def _check_rules(self) -> None:
        _require(
            self.structure == "successors" or self.order == 1,
            'data.synthetic.order = 2 applies to structure = "successors" only; '
            '"intent" sessions depend on the whole session already',
        )


class DataConfig(_Section):
    _path: ClassVar[str] = "data"

    dataset: Str = "synthetic"
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)


class SASRecConfig(_Section):
    """Self-attentive sequential recommendation (Kang & McAuley 2018), trained with full CE."""

    _path: ClassVar[str] = "sasrec"
    longest_auto_len: ClassVar[int] = 200  # what max_len = "auto" chooses at most

    max_len: MaxLen = "auto"  # a number, or "auto": covers 95% of the training sequences
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
    # a GRU reads sequentially: long windows cost time and forget anyway
    longest_auto_len: ClassVar[int] = 50

    max_len: MaxLen = "auto"
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


class MarkovConfig(_Section):
    """First-order Markov chain: the next item scored by how often it followed the last one."""

    _path: ClassVar[str] = "markov"

    max_len: Size = 200  # the length of input it accepts; the score reads the last item only
    smoothing: Annotated[Float, Field(ge=0)] = 1.0  # pseudo-count spread by popularity over the row


class SRConfig(_Section):
    """Sequential rules (Ludewig & Jannach 2018): item j after item i within ``steps`` positions,
    weighted 1/gap; the next item scored by the rules of the last one."""

    _path: ClassVar[str] = "sr"

    max_len: Size = 200
    steps: Size = 10  # the longest gap between the two items of a rule
    smoothing: Annotated[Float, Field(ge=0)] = 1.0


class VSKNNConfig(_Section):
    """Vector session-KNN (Ludewig & Jannach 2018): the k training sessions most like the
    current one (its items weighted by recency), their items scored by that similarity."""

    _path: ClassVar[str] = "vsknn"

    max_len: Size = 200
    k: Size = 100  # neighbours
    recency: Annotated[Str, _one_of("div", "linear", "same")] = "div"  # item weight by position
    idf: Bool = True  # weight a shared item by log(sessions / sessions containing it)
    smoothing: Annotated[Float, Field(ge=0)] = 0.01  # popularity prior, so no item ties at zero


ModelConfig = SASRecConfig | GRU4RecConfig | PopularConfig | MarkovConfig | SRConfig | VSKNNConfig


class TrainConfig(_Section):
    _path: ClassVar[str] = "train"

    epochs: Size = 200
    batch_size: Size = 64
    weight_decay: Annotated[Float, Field(ge=0)] = 0.0
    patience: Size = 5  # epochs without a better validation NDCG@10 before stopping
    warm_epochs: Size = 5  # at most, when training starts from the champion's weights
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
    # reject a challenger whose NDCG@k does not clear the best simple baseline's (markov, sr,
    # vsknn, popular), trained on the same split at registration (ML Test Score, Model 5)
    require_beat_baseline: Bool = True


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
    tune: Bool = False  # run a small search (TuneRecommenderFlow, [tune]) instead of one training
    # start from the champion's weights for at most train.warm_epochs epochs (from scratch when
    # the champion is of another family or shape, or with tune)
    warm_start: Bool = True


class SearchDimension(BaseModel):
    """How one key of a model's section is searched: a range (``low``..``high``; ``log`` draws
    its logarithm uniformly, as for learning rates) or a list of ``choices``. A plain model, not
    a section, so that an error in it names its full key (``tune.sasrec.lr.low``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    low: Float | None = None
    high: Float | None = None
    log: Bool = False
    choices: tuple[Any, ...] | None = None  # each checked against the model's own field

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        # here rather than by extra="forbid", whose message would list the enclosing table's keys
        if isinstance(data, dict) and (unknown := sorted(set(data) - set(cls.model_fields))):
            raise ValueError(
                f"has unknown key(s) {', '.join(unknown)}; a dimension has {', '.join(cls.model_fields)}"
            )
        return data

    def describe(self) -> dict[str, Any]:
        """The dimension as plain JSON (for the search lineage)."""
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log}


class SearchSpace(_Section):
    """The space searched for one model family (``[tune.<family>]``): a :class:`SearchDimension`
    per searched key of the family's section; the others stay None (not searched)."""

    section: ClassVar[type[_Section]]

    def dimensions(self) -> dict[str, SearchDimension]:
        return {key: dim for key in type(self).model_fields if (dim := getattr(self, key)) is not None}

    def _check_rules(self) -> None:
        for key, dimension in self.dimensions().items():
            _check_dimension(f"{self._path}.{key}", self.section, key, dimension)


def _space_for(section: type[_Section]) -> type[SearchSpace]:
    """A SearchSpace with exactly the keys of ``section``, so that it follows the section's keys."""
    name = section.__name__.removesuffix("Config") + "Space"
    namespace: dict[str, Any] = {
        "__module__": __name__,  # with the module-level name below, pickle finds the class
        "__annotations__": {
            "_path": ClassVar[str],
            "section": ClassVar[type[_Section]],
            **dict.fromkeys(section.model_fields, SearchDimension | None),
        },
        "_path": f"tune.{section._path}",
        "section": section,
        **dict.fromkeys(section.model_fields),
    }
    return type(name, (SearchSpace,), namespace)


SASRecSpace = _space_for(SASRecConfig)
GRU4RecSpace = _space_for(GRU4RecConfig)
MarkovSpace = _space_for(MarkovConfig)
SRSpace = _space_for(SRConfig)
VSKNNSpace = _space_for(VSKNNConfig)


def _between(low: float, high: float, log: bool = False) -> SearchDimension:
    return SearchDimension(low=low, high=high, log=log)


def _among(*choices: Any) -> SearchDimension:
    return SearchDimension(choices=choices)


class TuneConfig(_Section):
    """Hyperparameter search (TuneRecommenderFlow): one Metaflow task per trial, Optuna samples
    the parameters, the best trial by validation NDCG@10 is registered.

    ``[tune.<family>]`` is the space searched for that family (popular has nothing to search, so
    it gets one trial). The config's own value of each searched key is always part of the space
    (a range widens to it, choices gain it): the first trial of every family is the config
    itself, so a search never ends below it on validation."""

    _path: ClassVar[str] = "tune"

    trials: Size = 20  # in all, split across the families in `models`
    models: Annotated[tuple[Str, ...], AfterValidator(_known_models)] = ("sasrec",)  # families searched
    sampler: Annotated[Str, _one_of("qmc", "random", "tpe")] = "qmc"  # one wave: QMC spreads it best
    max_epochs: Size = 20  # per trial, in place of train.epochs (early stopping still applies)
    patience: Size = 3  # per trial, in place of train.patience: a search looks for the promising ones
    parallel: Size = 2  # trials running at once on one machine (Metaflow --max-workers)
    seed: Seed = 0
    sasrec: SASRecSpace = Field(  # type: ignore[valid-type]
        default_factory=lambda: SASRecSpace(
            lr=_between(5e-4, 1e-2, log=True),
            hidden=_among(32, 64, 128),
            n_layers=_among(1, 2),
            dropout=_between(0.1, 0.5),
            max_len=_among(20, 50, 200),
        )
    )
    gru4rec: GRU4RecSpace = Field(  # type: ignore[valid-type]
        default_factory=lambda: GRU4RecSpace(
            lr=_between(5e-4, 1e-2, log=True),
            embedding=_among(32, 64, 128),
            hidden=_among(64, 128, 256),
            dropout=_between(0.0, 0.5),
            max_len=_among(20, 50),
        )
    )
    markov: MarkovSpace = Field(  # type: ignore[valid-type]
        default_factory=lambda: MarkovSpace(smoothing=_between(0.01, 10.0, log=True))
    )
    sr: SRSpace = Field(  # type: ignore[valid-type]
        default_factory=lambda: SRSpace(steps=_between(2, 20), smoothing=_between(0.01, 10.0, log=True))
    )
    vsknn: VSKNNSpace = Field(  # type: ignore[valid-type]
        default_factory=lambda: VSKNNSpace(
            k=_among(50, 100, 200, 500), recency=_among("div", "linear", "same"), idf=_among(True, False)
        )
    )

    def space(self, family: str) -> dict[str, SearchDimension]:
        """The dimensions searched for ``family`` (none for a family with nothing to search)."""
        space = getattr(self, family, None)
        return space.dimensions() if isinstance(space, SearchSpace) else {}

    def _check_rules(self) -> None:
        _require(
            self.trials >= len(self.models),
            f"tune.trials must be at least one per family in tune.models (each starts with its "
            f"defaults), got trials={self.trials} for {len(self.models)} families",
        )


def _check_dimension(key: str, section: type[_Section], name: str, dimension: SearchDimension) -> None:
    """Every value a searched key can take is valid in the model's section."""
    if dimension.choices is not None:
        _require(dimension.low is None and dimension.high is None, f"{key}: give low and high, or choices")
        _require(len(dimension.choices) > 0, f"{key}: choices must not be empty")
        values = list(dimension.choices)
    else:
        _require(
            dimension.low is not None and dimension.high is not None, f"{key}: give low and high, or choices"
        )
        low, high = float(dimension.low), float(dimension.high)  # type: ignore[arg-type]
        _require(low < high, f"{key}: low must be below high, got {low} and {high}")
        _require(not dimension.log or low > 0, f"{key}: a log range needs low > 0, got {low}")
        default = section.model_fields[name].default
        _require(
            isinstance(default, int | float) and not isinstance(default, bool),
            f"{key}: {section._path}.{name} is not a number; search it with choices",
        )
        values = [low, high]
        if isinstance(default, int):
            _require(low.is_integer() and high.is_integer(), f"{key}: an integer key needs whole bounds")
            values = [int(low), int(high)]
    for value in values:
        try:
            section(**{name: value})
        except ConfigError as exc:
            raise ConfigError(f"{key}: {value!r} is not a valid {section._path}.{name} ({exc})") from None


def _store_uri(value: str) -> str:
    if problem := uri_problem(value):
        raise ValueError(problem)
    return value


class StoreConfig(_Section):
    """Where the continuous-training state lives (recops.store); ``$RECOPS_STORE`` overrides it."""

    _path: ClassVar[str] = "store"

    uri: Annotated[Str, AfterValidator(_store_uri)] = ""  # a folder or s3://bucket/prefix ("": $RECOPS_HOME)


def _price_table(value: Any) -> Any:
    if not isinstance(value, dict):
        return value  # pairs already (a default, or a config read back)
    for name, price in value.items():
        if isinstance(price, bool) or not isinstance(price, (int, float)) or not 0 <= price < float("inf"):
            raise ValueError(f"needs a price >= 0 (USD per hour) for {name!r}")
    return tuple(sorted((str(name), float(price)) for name, price in value.items()))


class CacheConfig(_Section):
    """The step cache of the training flows (recops.pipeline.cache; off: --no-cache or RECOPS_CACHE=off)."""

    _path: ClassVar[str] = "cache"

    # USD per hour of the machine a step ran on ($RECOPS_INSTANCE_TYPE; "local" when unset):
    # what `recops cache report` prices saved seconds at. On-demand Linux prices, us-east-1.
    # A table in TOML; kept as sorted (type, price) pairs so that the config stays hashable.
    instance_prices: Annotated[tuple[tuple[str, float], ...], BeforeValidator(_price_table)] = (
        ("c5.2xlarge", 0.34),
        ("g4dn.xlarge", 0.526),
        ("g5.xlarge", 1.006),
        ("local", 0.0),
        ("m5.large", 0.096),
        ("m5.xlarge", 0.192),
        ("p3.2xlarge", 3.06),
    )

    def price(self, instance_type: str) -> float | None:
        """USD per hour of ``instance_type``; None when the table does not know it."""
        return dict(self.instance_prices).get(instance_type)


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
            field = section.model_fields[loc[0]]
            bounds = _range(field.metadata) or _range([error.get("ctx", {})])  # a dict's values: ctx
            problems.append(f"{key} must be {bounds}, got {value}")
        elif kind == "value_error":  # a field's own rule, e.g. "must be auto, cpu or cuda"
            problems.append(f"{key} {error['ctx']['error']}, got {value!r}")
        else:
            problems.append(f"{key}: {error['msg']}, got {value!r}")
    if unknown:
        where = f"[{path}]" if path else "top level"
        known = ", ".join(section.model_fields)
        problems.insert(0, f"unknown config key(s) {', '.join(unknown)} in {where}; known: {known}")
    return "; ".join(problems)


def _range(rules: list[Any]) -> str:
    """Bounds (a field's metadata, or an error's ctx) as text: ">= 1", "> 0", "in [0, 1)"."""
    bounds = {
        name: rule[name] if isinstance(rule, dict) else getattr(rule, name)
        for rule in rules
        for name in ("ge", "gt", "le", "lt")
        if (name in rule if isinstance(rule, dict) else hasattr(rule, name))
    }
    low = f"[{bounds['ge']}" if "ge" in bounds else f"({bounds['gt']}" if "gt" in bounds else ""
    high = f"{bounds['le']}]" if "le" in bounds else f"{bounds['lt']})" if "lt" in bounds else ""
    if low and high:
        return f"in {low}, {high}"
    if low:
        return (">= " if low[0] == "[" else "> ") + low[1:]
    if high:
        return ("<= " if high[-1] == "]" else "< ") + high[:-1]
    return ""


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
