"""The building blocks of recops.config: the error, the strict value types and the section base
class whose validation errors name the dotted key."""

from __future__ import annotations

from collections.abc import Callable
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


class ConfigError(RecopsError):
    """A configuration file or override is invalid; the message names the key."""


MODEL_SECTIONS = ("sasrec", "gru4rec", "popular", "markov", "sr", "vsknn")
LOSSES = ("auto", "ce", "ce_chunked", "sampled")  # the values of [train] loss (recops.models.losses)
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
