"""Step memoization across Metaflow runs: ``@cached`` reuses a step whose inputs did not change.

Metaflow's own reuse is ``resume`` (one failed run); this works across runs, in scheduled
cycles, on the local and the S3 datastore. A step's cache key has two parts:

* the **primary key**, known before the step runs: flow and step name, the step's source, the
  hash of ``constraints.txt`` (the library versions), the Python version, and what the step's
  ``inputs=`` function returns for facts outside the run (e.g. the registry's champion);
* a **trace**, recorded while the step first runs and checked at every later lookup: the
  artifacts it read (with Metaflow's content hashes), the parameters it read, the sections of
  the typed config it read (``recops.config.Config`` artifacts; a gate-only change does not
  touch a training step), and the project modules whose code it ran (sources hashed, so a
  change in a helper invalidates exactly the steps that called it).

On a hit the step's outputs are taken from the earlier task by content hash (no copy); the run's
``step_cache`` artifact (a ledger, one entry per cached step) records ``cached_from`` and the
seconds (and, for a known instance type, dollars) the original task took. Index entries and hit
records live in the flow's Metaflow datastore under ``_recops_step_cache/``
(:mod:`recops.pipeline.cache_index`; digests: :mod:`recops.pipeline.digest`); an entry is written
before the task's artifacts are, so a lookup uses it only once that task has finished
successfully (a crash in between leaves an entry that is never used).

Off: ``--no-cache`` on a flow that declares it, or ``RECOPS_CACHE=off``. Steps with side
effects (registration, the report's separate kernel) are simply not decorated.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from metaflow import current
from metaflow.user_decorators.user_step_decorator import UserStepDecorator

from recops.paths import REPO_ROOT
from recops.pipeline import NO_CACHE_ATTRIBUTE
from recops.pipeline.cache_index import Index, finished_task
from recops.pipeline.digest import data_fingerprint, environment_hash, file_sha, short_sha, stable_digest

LEDGER = "step_cache"  # the run's ledger artifact
# in every primary key: 2 since entries list only the artifacts a step assigned (format 1 also
# listed those it read, and a hit put the earlier run's copies of them back)
ENTRY_FORMAT = 2
ENV = "RECOPS_CACHE"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/recops
# the cache's own code: it runs around every step, and is not one of the step's inputs
OWN_MODULES = frozenset(
    Path(__file__).resolve().with_name(name) for name in ("cache.py", "cache_index.py", "digest.py")
)
# pydantic methods that see every field of a config at once
WHOLE_CONFIG = frozenset(
    {"model_dump", "model_dump_json", "model_copy", "to_dict", "__getstate__", "__reduce_ex__",
     "__copy__", "__deepcopy__", "__eq__", "__iter__", "__repr__"}
)  # fmt: skip


def enabled(flow: Any = None, step_name: str = "") -> bool:
    """False with RECOPS_CACHE=off (or 0/false/no), the flow's ``--no-cache`` flag, or for the
    step RECOPS_INJECT_FAULT names (a fault injected into a step needs the step to run)."""
    if os.environ.get(ENV, "on").strip().lower() in {"off", "0", "false", "no"}:
        return False
    if step_name and os.environ.get("RECOPS_INJECT_FAULT") == step_name:
        return False
    return not bool(getattr(flow, NO_CACHE_ATTRIBUTE, False))


# -- where project code lives ------------------------------------------------------------------


def _project_roots(flow: Any) -> dict[str, Path]:
    """Prefix -> folder of the code whose changes invalidate a step: the recops package and the
    folder of the flow file (helper modules next to a generated flow)."""
    flow_file = Path(inspect.getfile(type(flow))).resolve()
    return {"recops": PACKAGE_DIR, "flowdir": flow_file.parent}


def _module_name(path: Path, roots: dict[str, Path], flow_file: Path) -> str | None:
    if path == flow_file or path in OWN_MODULES:
        return None  # the step's own source is in the primary key; the cache is not the step
    for prefix, root in roots.items():
        if path.is_relative_to(root):
            return f"{prefix}/{path.relative_to(root).as_posix()}"
    return None


def _module_path(name: str, roots: dict[str, Path]) -> Path:
    prefix, _, rel = name.partition("/")
    return roots[prefix] / rel


# -- tracing a step's reads ---------------------------------------------------------------------

_CONFIG_READS: dict[int, set[str]] = {}  # id(config object) -> sections read while traced


def _traced_config_class(base: type) -> type:
    """A subclass of recops' Config that records which sections are read (``*`` for a read of
    the whole tree); instances are switched to it while a step runs and back before persisting."""
    fields = frozenset(base.model_fields)

    class TracedConfig(base):  # type: ignore[misc,valid-type]
        __slots__ = ()

        def __getattribute__(self, name: str) -> Any:
            reads = _CONFIG_READS.get(id(self))
            if reads is not None:
                if name in fields:
                    reads.add(name)
                elif name in WHOLE_CONFIG:
                    reads.add("*")
            return super().__getattribute__(name)

    return TracedConfig


_TRACED: dict[type, type] = {}


def _is_config(value: Any) -> bool:
    from recops.config import Config

    return type(value) is Config


def config_digests(config: Any, sections: set[str] | list[str]) -> dict[str, str]:
    tree = config.to_dict()
    return {s: stable_digest(tree if s == "*" else tree[s]) for s in sorted(sections)}


class _ReadRecorder:
    """Stands in for the flow's input datastore while the step runs: every artifact the step
    loads passes through ``__getitem__`` (FlowSpec.__getattr__ reads artifacts this way)."""

    def __init__(self, datastore: Any, tracer: _Tracer) -> None:
        self._recops_ds = datastore
        self._recops_tracer = tracer

    def __contains__(self, name: str) -> bool:
        return name in self._recops_ds

    def __bool__(self) -> bool:
        return True

    def __getitem__(self, name: str) -> Any:
        value = self._recops_ds[name]
        return self._recops_tracer.loaded(name, value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._recops_ds, name)


class _Tracer:
    """Records what one step reads (artifacts, parameters, config sections) and which project
    modules' code it runs (sys.setprofile, 'call' events only: a few percent on a training loop)."""

    def __init__(self, flow: Any) -> None:
        self.flow = flow
        self.artifacts: dict[str, str] = {}
        self.parameters: dict[str, str] = {}
        self.configs: dict[str, Any] = {}  # artifact name -> config object (class switched)
        self.files: set[str] = set()
        self.data: dict[str, str] = {}
        self._saved_props: dict[str, property] = {}
        self._datastore = None
        self._loaded: dict[str, Any] = {}  # name -> the object loaded (FlowSpec caches it in the flow)

    def loaded(self, name: str, value: Any) -> Any:
        self._loaded[name] = value
        objects = getattr(self._datastore, "_objects", {})
        if _is_config(value):
            base = type(value)
            value.__class__ = _TRACED.setdefault(base, _traced_config_class(base))
            _CONFIG_READS[id(value)] = set()
            self.configs[name] = value
        elif name in objects:
            self.artifacts[name] = objects[name]
        return value

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            self.files.add(frame.f_code.co_filename)

    def start(self) -> None:
        flow, cls = self.flow, type(self.flow)
        for name in vars(flow):  # loaded before the step began (another decorator): a read
            if not name.startswith("_") and name != "name":
                self.loaded(name, vars(flow)[name])
        for name in current.parameter_names or []:
            prop = getattr(cls, name, None)
            if isinstance(prop, property):
                self._saved_props[name] = prop
                setattr(cls, name, property(self._param_reader(name, prop)))
        self._datastore = flow._datastore
        flow._datastore = _ReadRecorder(self._datastore, self)
        sys.setprofile(self._profile)

    def _param_reader(self, name: str, prop: property) -> Callable[[Any], Any]:
        def read(instance: Any) -> Any:
            value = prop.fget(instance)
            self.parameters[name] = stable_digest(value)
            files = data_fingerprint(value)
            if files is not None:  # a dataset the step reads itself: its files are inputs too
                self.data[name] = files
            return value

        return read

    def outputs(self) -> list[str]:
        """The artifacts the step assigned: what a hit must restore. An artifact it only read
        is in the flow's attributes too (Metaflow caches loads there) and must not be taken
        from the earlier run: that would replace this run's value (e.g. a config whose
        unread sections differ) downstream. An input changed in place without assignment is
        not seen; steps assign what they produce."""
        return sorted(
            name
            for name, value in vars(self.flow).items()
            if not name.startswith("_")
            and name not in {"name", LEDGER}
            and not (name in self._loaded and self._loaded[name] is value)
        )

    def stop(self) -> dict[str, Any]:
        """Undo every switch (before Metaflow persists anything) and return the trace."""
        sys.setprofile(None)
        flow, cls = self.flow, type(self.flow)
        if isinstance(flow._datastore, _ReadRecorder):
            flow._datastore = self._datastore
        for name, prop in self._saved_props.items():
            setattr(cls, name, prop)
        configs = {}
        for name, value in self.configs.items():
            sections = _CONFIG_READS.pop(id(value), set())
            value.__class__ = type(value).__mro__[1]
            configs[name] = config_digests(value, sections)
        roots = _project_roots(flow)
        flow_file = Path(inspect.getfile(cls)).resolve()
        modules = {}
        for filename in self.files:
            name = _module_name(Path(filename).resolve(), roots, flow_file) if filename[:1] != "<" else None
            if name:
                modules[name] = file_sha(_module_path(name, roots))
        return {
            "artifacts": dict(sorted(self.artifacts.items())),
            "parameters": dict(sorted(self.parameters.items())),
            "config": configs,
            "modules": dict(sorted(modules.items())),
            "data": dict(sorted(self.data.items())),
        }


def trace_matches(trace: dict[str, Any], flow: Any) -> str | None:
    """None when the step would read the same things now; else what differs (for the log)."""
    datastore = flow._datastore
    objects = getattr(datastore, "_objects", {})
    for name, sha in trace["artifacts"].items():
        if objects.get(name) != sha:
            return f"artifact {name}"
    for name, digest in trace["parameters"].items():
        if stable_digest(getattr(flow, name, None)) != digest:
            return f"parameter {name}"
    for name, sections in trace["config"].items():
        if name not in datastore:
            return f"config {name}"
        now = config_digests(datastore[name], list(sections))
        changed = [s for s in sections if now.get(s) != sections[s]]
        if changed:
            return f"config {name}.{changed[0]}"
    for name, files in trace.get("data", {}).items():
        if data_fingerprint(getattr(flow, name, None)) != files:
            return f"data files of parameter {name}"
    roots = _project_roots(flow)
    for name, sha in trace["modules"].items():
        if name.partition("/")[0] not in roots or file_sha(_module_path(name, roots)) != sha:
            return f"module {name}"
    return None


# -- the index in the Metaflow datastore --------------------------------------------------------


# -- the decorator -----------------------------------------------------------------------------


def _instance_type() -> str:
    return os.environ.get("RECOPS_INSTANCE_TYPE", "").strip() or "local"


def _price_per_hour(flow: Any, instance_type: str) -> float | None:
    """The hourly price of the instance type, from the ``[cache]`` section of the run's typed
    config (its first ``recops.config.Config`` artifact, whatever its name), else the defaults."""
    from recops.config import Config

    datastore = flow._datastore
    prices = Config().cache
    config_type = f"<class '{Config.__module__}.{Config.__qualname__}'>"
    for name, info in datastore._info.items():
        if info.get("type") == config_type and _is_config(value := datastore[name]):
            prices = value.cache
            break
    return prices.price(instance_type)


def _step_source(flow: Any, step_name: str) -> str:
    function = getattr(type(flow), step_name)
    function = getattr(function, "__wrapped__", function)
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return function.__code__.co_code.hex()


class cached(UserStepDecorator):
    """Reuse this step's outputs from an earlier run when nothing it reads has changed.

    ``@cached`` above ``@step``; ``@cached(inputs=fn)`` adds facts outside the run to the key:
    ``fn(flow)`` returns something JSON-able (e.g. the champion version a warm start begins
    from). Join steps always run."""

    def init(self, *args: Any, **kwargs: Any) -> None:
        self.inputs = kwargs.get("inputs")

    def pre_step(self, step_name: str, flow: Any, inputs: Any = None) -> None:
        self._tracer, self._hit = None, None
        if inputs is not None or not enabled(flow, step_name):
            return None
        self._index = Index.of_flow(flow)
        external = self.inputs(flow) if self.inputs else None
        self._primary = short_sha(
            json.dumps(
                {
                    "flow": current.flow_name,
                    "step": step_name,
                    "source": _step_source(flow, step_name),
                    "environment": environment_hash(),
                    "python": f"{sys.version_info.major}.{sys.version_info.minor}",
                    "inputs": external,
                    "format": ENTRY_FORMAT,
                },
                sort_keys=True,
                default=str,
            ).encode()
        )
        self._hit = self._lookup(step_name, flow)
        if self._hit:
            self._reuse(step_name, flow, self._hit)
            self.skip_step = True
            return None
        self._started = time.monotonic()
        self._tracer = _Tracer(flow)
        self._tracer.start()
        return None

    def _lookup(self, step_name: str, flow: Any) -> dict[str, Any] | None:
        for entry in self._index.entries(step_name, self._primary):
            if trace_matches(entry["trace"], flow):
                continue
            original = finished_task(flow._datastore._parent, entry["pathspec"])
            if original is not None and all(name in original for name in entry["outputs"]):
                entry["datastore"] = original
                return entry
        return None

    def _reuse(self, step_name: str, flow: Any, entry: dict[str, Any]) -> None:
        """The outputs are taken by reference (content hash) from the earlier task's datastore:
        no download, and the same hashes downstream (re-pickling a checkpoint changes its bytes,
        so a copy through the Client would make every later step miss)."""
        original, inputs = entry["datastore"], flow._datastore
        for name in entry["outputs"]:
            inputs._objects[name] = original._objects[name]  # persist() carries these over
            if name in original._info:
                inputs._info[name] = original._info[name]
            vars(flow).pop(name, None)
        instance_type = entry.get("instance_type", "local")
        price = _price_per_hour(flow, instance_type)
        saved = {
            "hit": True,
            "cached_from": entry["pathspec"],
            "seconds_saved": round(entry["seconds"], 2),
            "instance_type": instance_type,
            "cost_saved": None if price is None else round(entry["seconds"] / 3600 * price, 6),
        }
        self._record(flow, step_name, saved)
        pathspec = f"{current.flow_name}/{current.run_id}/{step_name}/{current.task_id}"
        self._index.add_hit(
            {
                **saved,
                "pathspec": pathspec,
                "flow": current.flow_name,
                "step": step_name,
                "flow_file": _flow_file(),
                "time": datetime.now(UTC).isoformat(timespec="seconds"),
                "outputs": entry["outputs"],
            }
        )
        note = f"step cache: {step_name} reused {entry['pathspec']} (saved {entry['seconds']:.1f} s)"
        print(note)
        _card_note(flow, step_name, note)

    def _record(self, flow: Any, step_name: str, entry: dict[str, Any]) -> None:
        datastore = flow._datastore
        ledger = dict(datastore[LEDGER]) if LEDGER in datastore else {}
        ledger[step_name] = entry
        setattr(flow, LEDGER, ledger)

    def post_step(self, step_name: str, flow: Any, exception: Exception | None = None) -> Any:
        if self._hit:
            return exception, ({} if exception is None else None)  # {}: Metaflow calls the usual next
        if self._tracer is None:
            return (exception, None) if exception else (None, None)
        trace = self._tracer.stop()
        if exception:
            return exception, None
        seconds = time.monotonic() - self._started
        outputs = self._tracer.outputs()
        self._index.add_entry(
            step_name,
            self._primary,
            {
                "pathspec": f"{current.flow_name}/{current.run_id}/{step_name}/{current.task_id}",
                "trace": trace,
                "outputs": outputs,
                "seconds": round(seconds, 3),
                "instance_type": _instance_type(),
                "created": datetime.now(UTC).isoformat(timespec="microseconds"),
            },
        )
        self._record(flow, step_name, {"hit": False, "seconds": round(seconds, 2)})
        return None, None


def _flow_file() -> str:
    path = Path(sys.argv[0]).resolve()
    return path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else str(path)


def _card_note(flow: Any, step_name: str, note: str) -> None:
    """The note goes into each of the step's cards (they would otherwise be empty)."""
    from metaflow.cards import Markdown

    for deco in getattr(getattr(type(flow), step_name), "decorators", []):
        if deco.name == "card":
            card_id = deco.attributes.get("id")
            # a card is a convenience: never fail the step for it
            with contextlib.suppress(Exception):
                (current.card[card_id] if card_id else current.card).append(Markdown(f"**{note}**"))


# -- summaries ---------------------------------------------------------------------------------


def ledger_totals(ledger: dict[str, Any] | None) -> dict[str, Any]:
    """hits (step names), seconds_saved, cost_saved (None when no hit had a known price)."""
    hits = {step: e for step, e in (ledger or {}).items() if e.get("hit")}
    costs = [e["cost_saved"] for e in hits.values() if e.get("cost_saved") is not None]
    return {
        "hits": sorted(hits),
        "seconds_saved": round(sum(e["seconds_saved"] for e in hits.values()), 2),
        "cost_saved": round(sum(costs), 6) if costs else None,
    }


def ledger_line(ledger: dict[str, Any] | None) -> str:
    totals = ledger_totals(ledger)
    if not ledger:
        return "step cache: off or no cached steps"
    if not totals["hits"]:
        return f"step cache: no hits ({len(ledger)} cached steps ran)"
    cost = "" if totals["cost_saved"] is None else f", ${totals['cost_saved']:.4f}"
    return f"step cache: reused {', '.join(totals['hits'])}; saved {totals['seconds_saved']:.1f} s{cost}"
