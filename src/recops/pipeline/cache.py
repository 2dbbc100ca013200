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

On a hit the step's outputs are copied from the earlier task through the Client API; the run's
``step_cache`` artifact (a ledger, one entry per cached step) records ``cached_from`` and the
seconds (and, for a known instance type, dollars) the original task took. Index entries and hit
records live in the flow's Metaflow datastore under ``_recops_step_cache/``; an entry is written
before the task's artifacts are, so a lookup uses it only once that task has finished
successfully (a crash in between leaves an entry that is never used).

Off: ``--no-cache`` on a flow that declares it, or ``RECOPS_CACHE=off``. Steps with side
effects (registration, the report's separate kernel) are simply not decorated.
"""

from __future__ import annotations

import collections.abc
import contextlib
import dataclasses
import hashlib
import inspect
import io
import json
import os
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from metaflow import current
from metaflow.user_decorators.user_step_decorator import UserStepDecorator

from recops.paths import REPO_ROOT

CACHE_DIR = "_recops_step_cache"
HITS = "_hits"
LEDGER = "step_cache"  # the run's ledger artifact
ENV = "RECOPS_CACHE"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/recops
# names in artifacts whose values measure time, not content: left out of audit digests
VOLATILE = re.compile(r"(^|_)(seconds|duration|elapsed|started|finished|created|timestamp|time)(_|$)")
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
    return not bool(getattr(flow, "no_cache", False))


# -- digests -----------------------------------------------------------------------------------


def stable_digest(value: Any) -> str:
    """A content digest that is equal for equal values, across processes: tensors and arrays by
    their bytes, frames by pandas' row hashes, dataclasses and objects by their fields; keys that
    name a duration or a time (``seconds``, ``created_at``...) are left out, so that what the
    audit compares is what a step computed, not when or how fast."""
    digest = hashlib.sha256()
    _feed(digest, value, depth=0)
    return digest.hexdigest()[:20]


def _feed(digest: Any, value: Any, depth: int) -> None:
    update = digest.update
    if depth > 50:
        raise ValueError("stable_digest: value nested more than 50 levels (a cycle?)")
    module = type(value).__module__
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, collections.abc.Mapping):
        update(b"{")
        for key in sorted(value, key=repr):
            if isinstance(key, str) and VOLATILE.search(key):
                continue
            _feed(digest, key, depth + 1)
            _feed(digest, value[key], depth + 1)
        update(b"}")
    elif isinstance(value, (list, tuple)):
        update(f"[{len(value)}".encode())
        for item in value:
            _feed(digest, item, depth + 1)
        update(b"]")
    elif isinstance(value, (set, frozenset)):
        _feed(digest, sorted(value, key=repr), depth + 1)
    elif module.startswith("torch") and hasattr(value, "detach"):
        tensor = value.detach().cpu().contiguous()
        update(f"tensor:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        update(tensor.view(-1).view(__import__("torch").uint8).numpy().tobytes() if tensor.numel() else b"")
    elif module.startswith("numpy") and hasattr(value, "dtype"):
        import numpy as np

        array = np.asarray(value)
        if array.dtype == object:
            _feed(digest, array.tolist(), depth + 1)
        else:
            update(f"array:{array.dtype}:{array.shape}".encode() + np.ascontiguousarray(array).tobytes())
    elif module.startswith("pandas"):
        import pandas as pd

        update(f"pandas:{type(value).__name__}:{getattr(value, 'shape', '')}".encode())
        if isinstance(value, pd.DataFrame):
            update(repr([(str(c), str(t)) for c, t in value.dtypes.items()]).encode())
        update(pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        update(f"dc:{type(value).__qualname__}".encode())
        _feed(digest, {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, depth + 1)
    elif hasattr(value, "model_dump"):  # pydantic
        update(f"pydantic:{type(value).__qualname__}".encode())
        _feed(digest, value.model_dump(), depth + 1)
    elif hasattr(value, "__dict__") and not callable(value):
        update(f"obj:{type(value).__qualname__}".encode())
        _feed(digest, vars(value), depth + 1)
    else:
        import pickle

        update(b"pickle:" + pickle.dumps(value, protocol=4))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:20]


def environment_hash() -> str:
    """The library versions: ``constraints.txt`` when the project has one, else every installed
    distribution's name and version (an installed package or a container without the repo)."""
    constraints = REPO_ROOT / "constraints.txt"
    if constraints.is_file():
        return "constraints:" + _sha(constraints.read_bytes())
    from importlib.metadata import distributions

    names = sorted(f"{d.metadata['Name']}=={d.version}" for d in distributions())
    return "installed:" + _sha("\n".join(names).encode())


# -- where project code lives ------------------------------------------------------------------


def _project_roots(flow: Any) -> dict[str, Path]:
    """Prefix -> folder of the code whose changes invalidate a step: the recops package and the
    folder of the flow file (helper modules next to a generated flow)."""
    flow_file = Path(inspect.getfile(type(flow))).resolve()
    return {"recops": PACKAGE_DIR, "flowdir": flow_file.parent}


def _module_name(path: Path, roots: dict[str, Path], flow_file: Path) -> str | None:
    if path == flow_file or path == Path(__file__).resolve():
        return None  # the step's own source is in the primary key; the cache is not the step
    for prefix, root in roots.items():
        if path.is_relative_to(root):
            return f"{prefix}/{path.relative_to(root).as_posix()}"
    return None


def _module_path(name: str, roots: dict[str, Path]) -> Path:
    prefix, _, rel = name.partition("/")
    return roots[prefix] / rel


_FILE_SHAS: dict[Path, str | None] = {}


def _file_sha(path: Path) -> str | None:
    if path not in _FILE_SHAS:
        if not path.is_file():
            _FILE_SHAS[path] = None
        else:
            with path.open("rb") as handle:
                _FILE_SHAS[path] = hashlib.file_digest(handle, "sha256").hexdigest()[:20]
    return _FILE_SHAS[path]


DATA_KINDS = ("csv", "parquet", "ml-100k")


def data_fingerprint(value: Any) -> str | None:
    """For a parameter naming files of events (``csv:PATH``, ``parquet:s3://bucket/x/*.parquet``,
    ``ml-100k:PATH``), a digest of those files: content for local files, ETag (else size and
    mtime) for remote ones. None for any other value. A step that loads a dataset itself is
    keyed on the data, not only on its name."""
    if not isinstance(value, str):
        return None
    kind, _, location = value.partition(":")
    if kind not in DATA_KINDS or not location or location == "recbole" or location == "auto":
        return None
    from recops.data.sources import matching_files

    digest = hashlib.sha256()
    for name, info in matching_files(location):
        if "://" in name:
            stamp = info.get("ETag") or info.get("etag") or f"{info.get('size')}:{info.get('LastModified')}"
        else:
            stamp = _file_sha(Path(name)) or "missing"
        digest.update(f"{name}\0{stamp}\0".encode())
    return digest.hexdigest()[:20]


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

    def loaded(self, name: str, value: Any) -> Any:
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
                modules[name] = _file_sha(_module_path(name, roots))
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
        if name.partition("/")[0] not in roots or _file_sha(_module_path(name, roots)) != sha:
            return f"module {name}"
    return None


# -- the index in the Metaflow datastore --------------------------------------------------------


class Index:
    """Entries and hit records of one flow, in its Metaflow datastore (local folder or S3)."""

    def __init__(self, storage: Any, flow_name: str) -> None:
        self.storage, self.flow_name = storage, flow_name

    @classmethod
    def of_flow(cls, flow: Any) -> Index:
        return cls(flow._datastore._storage_impl, current.flow_name)

    def _path(self, *parts: str) -> str:
        return self.storage.path_join(self.flow_name, CACHE_DIR, *parts)

    def _read(self, paths: list[str]) -> list[dict[str, Any]]:
        records = []
        if not paths:
            return records
        with self.storage.load_bytes(paths) as loaded:
            for _key, local, _meta in loaded:
                if local is None:
                    continue
                try:
                    records.append(json.loads(Path(local).read_text()))
                except (OSError, ValueError):
                    continue  # a torn write: ignored
        return records

    def _files(self, *parts: str) -> list[str]:
        return [r.path for r in self.storage.list_content([self._path(*parts)]) if r.is_file]

    def entries(self, step: str, primary: str) -> list[dict[str, Any]]:
        records = self._read(self._files(step, primary))
        return sorted(records, key=lambda r: r.get("created", ""), reverse=True)

    def _write(self, path: str, record: dict[str, Any]) -> None:
        data = json.dumps(record, sort_keys=True, indent=1).encode()
        self.storage.save_bytes(iter([(path, io.BytesIO(data))]), overwrite=True)

    def add_entry(self, step: str, primary: str, entry: dict[str, Any]) -> None:
        name = _sha(json.dumps(entry["trace"], sort_keys=True).encode()) + ".json"
        self._write(self._path(step, primary, name), entry)

    def add_hit(self, record: dict[str, Any]) -> None:
        name = record["pathspec"].replace("/", "__") + ".json"
        self._write(self._path(HITS, name), record)

    def hits(self) -> list[dict[str, Any]]:
        return self._read(self._files(HITS))


def storage_for_config() -> Any:
    """The datastore Metaflow's configuration names (METAFLOW_DEFAULT_DATASTORE), as a storage
    object: what ``recops cache report/audit`` read outside a flow."""
    from metaflow.metaflow_config import DEFAULT_DATASTORE
    from metaflow.plugins import DATASTORES

    impl = next(d for d in DATASTORES if d.TYPE == DEFAULT_DATASTORE)
    root = impl.get_datastore_root_from_config(lambda *a, **k: None)
    return impl(root)


def all_hits(storage: Any = None) -> list[dict[str, Any]]:
    """Every hit record of every flow in the datastore."""
    storage = storage or storage_for_config()
    flows = [r.path.rstrip("/").split("/")[-1] for r in storage.list_content([""]) if not r.is_file]
    return [hit for name in flows for hit in Index(storage, name).hits()]


# -- the decorator -----------------------------------------------------------------------------


def finished_task(flow_datastore: Any, pathspec: str) -> Any:
    """The datastore of a task that finished successfully, else None (never finished: it died
    after its index entry was written; or its run was deleted; or it failed)."""
    _flow, run_id, step, task_id = pathspec.split("/")
    found = flow_datastore.get_task_datastores(pathspecs=[f"{run_id}/{step}/{task_id}"])
    if not found or "_success" not in found[0] or not found[0]["_success"]:
        return None
    return found[0]


def _instance_type() -> str:
    return os.environ.get("RECOPS_INSTANCE_TYPE", "").strip() or "local"


def _price_per_hour(flow: Any, instance_type: str) -> float | None:
    from recops.config import Config

    datastore = flow._datastore
    prices = Config().cache
    if "settings" in datastore:  # the typed config of recops' flows
        value = datastore["settings"]
        if _is_config(value):
            prices = value.cache
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
        self._primary = _sha(
            json.dumps(
                {
                    "flow": current.flow_name,
                    "step": step_name,
                    "source": _step_source(flow, step_name),
                    "environment": environment_hash(),
                    "python": f"{sys.version_info.major}.{sys.version_info.minor}",
                    "inputs": external,
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
        outputs = sorted(n for n in vars(flow) if not n.startswith("_") and n not in {"name", LEDGER})
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
