"""``[tune]``: the hyperparameter search and the space it searches per model family."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from recops.config.base import (
    Bool,
    ConfigError,
    Float,
    Seed,
    Size,
    Str,
    _known_models,
    _one_of,
    _require,
    _Section,
)
from recops.config.sections import GRU4RecConfig, MarkovConfig, SASRecConfig, SRConfig, VSKNNConfig


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
