"""Read the deployments of prefect.yaml into typed specs, refusing keys that Prefect does not read.

``prefect.yaml`` is the one description of the deployments: ``prefect deploy --all`` registers it
with a server and a work pool, `recops schedule serve` (:mod:`recops.continuous.scheduler`) runs the
same deployments from this checkout, and `recops schedule status` (:mod:`recops.continuous.status`)
warns about the deployments of the file that the Prefect API does not know.

The models follow the keys that `prefect deploy` reads (``prefect.cli.deploy._models``), in the
same places and with the same meaning, so that serving locally and deploying cannot disagree. Only
what recops uses is modelled; Prefect's other keys at each place (``prefect_keys``) are accepted
and skipped. Any other key is an error that names it and its deployment: Prefect itself ignores
unknown deployment keys, so a typo such as ``shedules:`` would otherwise drop the schedules silently.
"""

from __future__ import annotations

import difflib
import math
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from recops.continuous.status_render import format_duration
from recops.errors import RecopsError

DEFAULT_PREFECT_YAML = "prefect.yaml"
MAX_INTERVAL_S = timedelta.max.total_seconds()  # the longest interval a timedelta, and so Prefect, holds


class ScheduleError(RecopsError):
    """prefect.yaml or the Prefect API is not usable as asked; the message says why and what to do."""


def _problem(message: str, *, entry: bool = False) -> PydanticCustomError:
    """A validation error in recops's words: about one key (named in ``message``), or with ``entry``
    about the whole mapping. The message is passed as context, not as a template."""
    return PydanticCustomError("recops_entry" if entry else "recops", "{message}", {"message": message})


def _keys(names: str) -> frozenset[str]:
    return frozenset(names.split())


class _Entry(BaseModel):
    """A mapping of prefect.yaml: frozen, and no key that Prefect does not read at this place."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prefect_keys: ClassVar[frozenset[str]]  # every key `prefect deploy` reads here
    blank_is_default: ClassVar[frozenset[str]] = frozenset()  # `key:` with no value means the default

    @model_validator(mode="before")
    @classmethod
    def _only_prefect_keys(cls, data: Any) -> Any:
        """Refuse keys Prefect does not read here, and skip those of its keys that recops does not use."""
        if not isinstance(data, dict):
            return data  # pydantic refuses it as "must be a mapping"
        if unknown := [key for key in data if key not in cls.prefect_keys]:
            raise _problem(_unknown_keys(unknown, cls.prefect_keys), entry=True)
        cls._refuse(data)
        modelled = {field.alias or name for name, field in cls.model_fields.items()}
        return {
            key: value
            for key, value in data.items()
            if key in modelled and not (value is None and key in cls.blank_is_default)
        }

    @classmethod
    def _refuse(cls, data: dict[str, Any]) -> None:
        """Raise for what a key's own validation cannot say well (overridden where needed)."""


class ScheduleSpec(_Entry):
    """One schedule of a deployment: exactly one of ``cron``, ``interval`` (seconds) or ``rrule``.

    Constructed from code with the prefect.yaml names: ``ScheduleSpec(interval=60)``.
    """

    prefect_keys: ClassVar[frozenset[str]] = _keys(
        "cron interval rrule timezone anchor_date active parameters slug replaces day_or"
    )
    blank_is_default: ClassVar[frozenset[str]] = frozenset({"parameters"})

    cron: StrictStr | None = None
    interval_seconds: float | None = Field(default=None, alias="interval")
    rrule: StrictStr | None = None
    timezone: StrictStr | None = None
    active: StrictBool = True
    parameters: dict[str, Any] = Field(default_factory=dict)
    slug: StrictStr | None = None

    @field_validator("interval_seconds", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _problem(f"`interval` is a number of seconds, not {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise _problem(f"`interval` must be a finite number of seconds, not {value!r}")
        if value <= 0:
            raise _problem("`interval` must be positive")
        if value > MAX_INTERVAL_S:
            raise _problem(f"`interval` must be at most {MAX_INTERVAL_S:.0f} seconds")
        return float(value)

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleSpec:
        if sum(kind is not None for kind in (self.cron, self.interval_seconds, self.rrule)) != 1:
            raise _problem("give exactly one of cron, interval (seconds) or rrule", entry=True)
        return self

    def describe(self) -> str:
        if self.cron is not None:
            what = f"cron {self.cron}"
        elif self.interval_seconds is not None:
            what = f"every {format_duration(self.interval_seconds)}"
        else:
            what = f"rrule {self.rrule}"
        return f"{what} ({self.timezone or 'UTC'})"


class DeploymentSpec(BaseModel):
    """A deployment of prefect.yaml: what `recops schedule serve` serves and status expects."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    entrypoint: str  # path/to/file.py:function, relative to project_dir
    project_dir: Path  # the folder of prefect.yaml: Prefect resolves entrypoints from there
    parameters: dict[str, Any] = Field(default_factory=dict)
    schedules: tuple[ScheduleSpec, ...] = ()
    work_pool: str | None = None
    tags: tuple[str, ...] = ()
    description: str | None = None

    @property
    def entrypoint_path(self) -> str:
        """The entrypoint with an absolute file path, loadable from any working directory."""
        file, function = self.entrypoint.rsplit(":", 1)
        return f"{(self.project_dir / file).resolve()}:{function}"

    @property
    def full_name(self) -> str:
        """``flow/deployment``, the name the Prefect API knows it by (``retrain/nightly-retrain``).

        The flow's name is read from the entrypoint's ``@flow(name=...)`` without importing it,
        as `prefect deploy` reads it: the file holds several flows' deployments, and a
        deployment's name alone is unique only within its flow.
        """
        from prefect.flows import load_flow_arguments_from_entrypoint

        try:
            flow = load_flow_arguments_from_entrypoint(self.entrypoint_path, {"name"})["name"]
        except Exception as exc:  # a missing file or function, a syntax error
            raise ScheduleError(f"deployment {self.name!r}: cannot read {self.entrypoint}: {exc}") from exc
        return f"{flow}/{self.name}"


class _WorkPool(_Entry):
    prefect_keys: ClassVar[frozenset[str]] = frozenset({"name", "work_queue_name", "job_variables"})

    name: StrictStr | None = None


class _Deployment(_Entry):
    """An item of ``deployments:`` as written; :meth:`spec` makes it a :class:`DeploymentSpec`."""

    prefect_keys: ClassVar[frozenset[str]] = _keys(
        "name version version_type tags description schedule schedules paused concurrency_limit flow_name "
        "entrypoint parameters enforce_parameter_schema build push pull work_pool triggers sla"
    )
    blank_is_default: ClassVar[frozenset[str]] = frozenset({"parameters", "schedules", "work_pool", "tags"})

    name: str = Field(default="", validate_default=True)
    entrypoint: str = Field(default="", validate_default=True)
    parameters: dict[str, Any] = Field(default_factory=dict)
    schedules: tuple[ScheduleSpec, ...] = ()
    work_pool: _WorkPool = _WorkPool()
    tags: tuple[str, ...] = ()
    description: StrictStr | None = None

    @classmethod
    def _refuse(cls, data: dict[str, Any]) -> None:
        if "schedule" in data:
            raise _problem("use `schedules:` (a list); Prefect 3 dropped `schedule:`", entry=True)

    @field_validator("name", mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        if not isinstance(value, str) or not value:
            raise _problem("needs a `name`")
        return value

    @field_validator("entrypoint", mode="before")
    @classmethod
    def _entrypoint(cls, value: Any) -> Any:
        if not isinstance(value, str) or ":" not in value:
            raise _problem("`entrypoint` must be path/to/file.py:flow_function")
        return value

    @field_validator("work_pool", mode="before")
    @classmethod
    def _work_pool(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise _problem("`work_pool` must be a mapping with a `name`")
        return value

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list):
            raise _problem("`tags` must be a list or a string")
        return tuple(str(tag) for tag in value)

    def spec(self, project_dir: Path) -> DeploymentSpec:
        return DeploymentSpec(
            name=self.name,
            entrypoint=self.entrypoint,
            project_dir=project_dir,
            parameters=self.parameters,
            schedules=self.schedules,
            work_pool=self.work_pool.name,
            tags=self.tags,
            description=self.description,
        )


class _PrefectFile(_Entry):
    # `definitions` is not Prefect's but the place Prefect's docs give to YAML anchors (it skips it)
    prefect_keys: ClassVar[frozenset[str]] = _keys(
        "prefect-version prefect_version name build push pull deployments definitions"
    )

    deployments: list[_Deployment]


# pydantic's own error types, in prefect.yaml's words
_PHRASES = {
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "tuple_type": "must be a list",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
}


def load_deployments(path: str | Path = DEFAULT_PREFECT_YAML) -> list[DeploymentSpec]:
    """Parse the deployments of a prefect.yaml (name, entrypoint, parameters, schedules, work pool).

    Reads the keys that `prefect deploy` reads, with the same meaning, so that serving locally and
    deploying to a work pool cannot disagree; errors name the deployment and the key.
    """
    import yaml  # a dependency of prefect

    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ScheduleError(f"{path}: no such file (the project's prefect.yaml is at the repo root)") from exc
    except yaml.YAMLError as exc:
        raise ScheduleError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("deployments"), list):
        raise ScheduleError(f"{path}: expected a mapping with a `deployments:` list")
    try:
        parsed = _PrefectFile.model_validate(document)
    except ValidationError as exc:
        problems = [_error_message(path, document, error) for error in exc.errors()]
        raise ScheduleError("\n".join(problems)) from exc
    project_dir = path.resolve().parent
    specs = [deployment.spec(project_dir) for deployment in parsed.deployments]
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ScheduleError(f"{path}: deployment names must be unique; repeated: {', '.join(duplicates)}")
    return specs


def _error_message(path: Path, document: dict[str, Any], error: ErrorDetails) -> str:
    """One validation error as ``<file>: deployment 'x': schedules[0]: <what is wrong>``."""
    loc = list(error["loc"])
    about_key = error["type"] != "recops_entry" and loc and isinstance(loc[-1], str)
    key = loc.pop() if about_key else None  # the key at fault, if any
    place = str(path)
    if loc[:1] == ["deployments"] and len(loc) >= 2 and isinstance(loc[1], int):
        raw = document["deployments"][loc[1]]
        name = raw.get("name") if isinstance(raw, dict) else None
        place += f": deployment {name!r}" if isinstance(name, str) and name else f": deployments[{loc[1]}]"
        loc = loc[2:]
    for part in loc:
        place += f"[{part}]" if isinstance(part, int) else f": {part}"
    if error["type"] in ("recops", "recops_entry"):
        text = str(error.get("ctx", {}).get("message", error["msg"]))
    else:
        phrase = _PHRASES.get(error["type"], error["msg"])
        text = f"`{key}` {phrase}" if key is not None else phrase
    # "deployments[0] must be a mapping", "deployments[0] needs a `name`"; else "<place>: <text>"
    return f"{place}{' ' if text.startswith(('must ', 'needs ')) else ': '}{text}"


def _unknown_keys(unknown: list[Any], known: frozenset[str]) -> str:
    """``unknown key `crron` (did you mean `cron`?)``; the keys Prefect reads when no key is close."""
    named, all_close = [], True
    for key in unknown:
        close = difflib.get_close_matches(str(key), sorted(known), n=1)
        named.append(f"`{key}`" + (f" (did you mean `{close[0]}`?)" if close else ""))
        all_close = all_close and bool(close)
    text = f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(named)}"
    return text if all_close else f"{text}; Prefect reads here: {', '.join(sorted(known))}"


def check_deployments(path: str | Path = DEFAULT_PREFECT_YAML) -> list[str]:
    """Check prefect.yaml against the flows it names: each entrypoint loads and is a Prefect
    flow, and each deployment's parameters, merged with each schedule's, are accepted by that
    flow's signature, as Prefect itself will check them at run time (``Flow.validate_parameters``:
    no unknown name, every required one given, every value of its annotated type), and no
    module beside an entrypoint hides an installed one in its runs
    (:func:`recops.continuous.flow_run_path.hidden_modules`).
    What ``prefect deploy`` would only find out when a scheduled run fails, CI finds before the
    deploy. Returns one line per deployment checked; raises :class:`ScheduleError` naming every
    problem (file, deployment, schedule, parameter).
    """
    from prefect.exceptions import ParameterTypeError, SignatureMismatchError
    from prefect.flows import load_flow_from_entrypoint

    from recops.continuous.flow_run_path import hidden_modules

    problems: list[str] = []
    checked: list[str] = []
    for spec in load_deployments(path):
        where = f"{path}: deployment {spec.name!r}"
        problems += [
            f"{where}: entrypoint {spec.entrypoint}: {hidden}; a flow run puts the entrypoint's folder "
            "first on sys.path: rename the module or move the flow"
            for hidden in hidden_modules(spec.project_dir / spec.entrypoint.rsplit(":", 1)[0])
        ]
        try:
            flow = load_flow_from_entrypoint(spec.entrypoint_path)
        except Exception as exc:  # a missing file or function, not a @flow, an import error
            problems.append(f"{where}: entrypoint {spec.entrypoint} does not load: {exc}")
            continue
        variants = [("", spec.parameters)] + [
            (f" schedules[{i}]", {**spec.parameters, **schedule.parameters})
            for i, schedule in enumerate(spec.schedules)
            if schedule.parameters
        ]
        for label, parameters in variants:
            try:
                flow.validate_parameters(dict(parameters))
            except (ParameterTypeError, SignatureMismatchError) as exc:
                problems.append(f"{where}{label}: parameters {parameters} do not fit {flow.name}(): {exc}")
        checked.append(f"{spec.name}: {spec.entrypoint} accepts {spec.parameters or 'its defaults'}")
    if problems:
        raise ScheduleError("\n".join(problems))
    return checked
