"""What a cached step read, recorded while it runs (recops.pipeline.cache): the artifacts it
loaded (Metaflow's content hashes), the parameters and config sections it read, the project
modules whose code ran and the data files its parameters name; and the check of such a trace
against a later run."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metaflow import current

from recops.pipeline.digest import data_fingerprint, file_sha, stable_digest

LEDGER = "step_cache"  # the run's ledger artifact (recops.pipeline.cache), never a step's output
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/recops
# the cache's own code: it runs around every step, and is not one of the step's inputs
OWN_MODULES = frozenset(
    Path(__file__).resolve().with_name(name)
    for name in ("cache.py", "cache_index.py", "cache_trace.py", "digest.py")
)
# pydantic methods that see every field of a config at once
WHOLE_CONFIG = frozenset(
    {"model_dump", "model_dump_json", "model_copy", "to_dict", "__getstate__", "__reduce_ex__",
     "__copy__", "__deepcopy__", "__eq__", "__iter__", "__repr__"}
)  # fmt: skip


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
