"""Running TrainRecommenderFlow (Metaflow) from a cycle, and what the run produced.

The flow registers its model and gates it in its ``register`` step; :class:`TrainedRun` is that
run read back with the Metaflow client: where it is, its test metrics, the registered version
and the gate's decision.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recops.errors import RecopsError
from recops.paths import recops_home
from recops.registry.gate_rules import GateDecision
from recops.training.lineage import TRAINING_FLOW

EXCEPTION_LINE = re.compile(r"\b[A-Za-z_.]*(Error|Exception|Fault): ")


class CycleError(RecopsError):
    """A continuous-training cycle cannot go on; the message says which step and why."""


@dataclass(frozen=True)
class TrainedRun:
    pathspec: str  # the Metaflow run, e.g. TrainRecommenderFlow/12
    metrics: dict[str, float]  # test metrics
    model_version: int  # registered version of session-recommender
    run_id: str  # its MLflow run
    gate: GateDecision


def use_local_metaflow() -> None:
    """Metaflow's local datastore under RECOPS_HOME (as `make` sets it) and a user name, unless
    set already: for the flow the Runner starts and for reading its run back in this process."""
    os.environ.setdefault("METAFLOW_DATASTORE_SYSROOT_LOCAL", str(recops_home()))
    os.environ.setdefault("USERNAME", os.environ.get("USER") or "recops")


async def run_training_flow(
    spec: str,
    model: str,
    config_path: str | None,
    log_line: Callable[[str], None],
    flow_file: Path = TRAINING_FLOW,
) -> TrainedRun:
    """Run TrainRecommenderFlow through Metaflow's Runner, passing each log line to ``log_line``.

    Raises CycleError with the tail of the flow's error output when the run fails.
    """
    use_local_metaflow()
    from metaflow import Runner

    top: dict[str, Any] = {"pylint": False}
    if config_path:
        top["config"] = [("config", str(Path(config_path).resolve()))]
    errors: list[str] = []  # exception lines of failed steps, then Metaflow's own summary

    async def pump(running: Any, stream: str) -> None:
        async for _, line in running.stream_log(stream):
            line = line.rstrip()
            if EXCEPTION_LINE.search(line) or (stream == "stderr" and "fail" in line.lower()):
                errors.append(line.strip())
            log_line(line)

    with Runner(str(flow_file), show_output=False, **top) as runner:
        try:
            running = await runner.async_run(dataset=spec, model=model)
        except RuntimeError as exc:  # the flow exited before starting a run (e.g. a bad config)
            raise CycleError(f"TrainRecommenderFlow did not start: {exc}") from exc
        await asyncio.gather(pump(running, "stdout"), pump(running, "stderr"), running.wait())
        run = running.run
        if running.status != "successful":
            last = "\n".join(dict.fromkeys(errors[-6:]))  # in order, each line once
            raise CycleError(f"TrainRecommenderFlow run {run.pathspec} failed ({running.status}):\n{last}")
        data = run.data
        return TrainedRun(
            pathspec=run.pathspec,
            metrics=dict(data.metrics),
            model_version=int(data.model_version["version"]),
            run_id=str(data.model_version["run_id"]),
            gate=GateDecision.from_dict(data.decision),
        )
