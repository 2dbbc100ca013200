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
(:mod:`recops.pipeline.cache_index`; digests: :mod:`recops.pipeline.digest`; the trace:
:mod:`recops.pipeline.cache_trace`); an entry is written
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from metaflow import current
from metaflow.user_decorators.user_step_decorator import UserStepDecorator

from recops.paths import REPO_ROOT
from recops.pipeline import NO_CACHE_ATTRIBUTE
from recops.pipeline.cache_index import Index, finished_task
from recops.pipeline.cache_trace import LEDGER, _is_config, _Tracer, trace_matches
from recops.pipeline.digest import environment_hash, short_sha

# in every primary key: 2 since entries list only the artifacts a step assigned (format 1 also
# listed those it read, and a hit put the earlier run's copies of them back)
ENTRY_FORMAT = 2
ENV = "RECOPS_CACHE"


def enabled(flow: Any = None, step_name: str = "") -> bool:
    """False with RECOPS_CACHE=off (or 0/false/no), the flow's ``--no-cache`` flag, or for the
    step RECOPS_INJECT_FAULT names (a fault injected into a step needs the step to run)."""
    if os.environ.get(ENV, "on").strip().lower() in {"off", "0", "false", "no"}:
        return False
    if step_name and os.environ.get("RECOPS_INJECT_FAULT") == step_name:
        return False
    return not bool(getattr(flow, NO_CACHE_ATTRIBUTE, False))


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
