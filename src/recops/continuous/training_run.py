"""Running TrainRecommenderFlow (Metaflow) from a cycle, and what the run produced.

The flow registers its model and gates it in its ``register`` step; :class:`TrainedRun` is that
run read back with the Metaflow client: where it is, its test metrics, the registered version
and the gate's decision. With ``retrain.tune`` the cycle runs TuneRecommenderFlow instead (a
search whose best trial is registered and gated the same way, :func:`training_flow`); both
leave the same artifacts, so everything here reads either.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recops.errors import RecopsError
from recops.paths import REPO_ROOT
from recops.registry.gate_rules import GateDecision
from recops.store import open_store
from recops.training.lineage import TRAINING_FLOW

EXCEPTION_LINE = re.compile(r"\b[A-Za-z_.]*(Error|Exception|Fault): ")
TUNING_FLOW = REPO_ROOT / "flows" / "tune_recommender.py"


def training_flow(tune: bool) -> Path:
    """The flow a cycle runs: one training, or with ``retrain.tune`` the search of ``[tune]``."""
    return TUNING_FLOW if tune else TRAINING_FLOW


class CycleError(RecopsError):
    """A continuous-training cycle cannot go on; the message says which step and why."""


@dataclass(frozen=True)
class TrainedRun:
    pathspec: str  # the Metaflow run, e.g. TrainRecommenderFlow/12
    metrics: dict[str, float]  # test metrics
    model_version: int  # registered version of session-recommender
    run_id: str  # its MLflow run
    gate: GateDecision
    # what the step cache reused (recops.pipeline.cache.ledger_totals): hits, seconds_saved, cost_saved
    step_cache: dict[str, Any] = field(default_factory=dict)


def _step_cache(data: Any) -> dict[str, Any]:
    """What the run's step cache saved (empty: the cache was off)."""
    from recops.pipeline.cache import LEDGER, ledger_totals

    return ledger_totals(getattr(data, LEDGER)) if LEDGER in data else {}


FAILED_RUN_KEY = "monitoring/failed_training_run.json"  # in the store (recops.store)


def record_failed_run(pathspec: str, inputs: dict[str, str]) -> None:
    """Remember a failed run and the inputs it trained on, so the next cycle on the same inputs
    resumes it (Metaflow clones the steps that succeeded) instead of training again. The record
    is in the store, so the next cycle finds it on another machine (a new Fargate task) too;
    one whole object, replaced: a crash leaves the old record or the new one."""
    open_store().write_text(FAILED_RUN_KEY, json.dumps({"pathspec": pathspec, "inputs": inputs}))


def resumable_run(inputs: dict[str, str]) -> str | None:
    """The run id of a failed run on exactly these inputs, if one is recorded."""
    try:
        record = json.loads(open_store().read_text(FAILED_RUN_KEY))
    except (OSError, ValueError):
        return None
    if record.get("inputs") != inputs:
        return None
    return str(record["pathspec"]).split("/")[-1]


async def run_training_flow(
    spec: str,
    model: str,
    config_path: str | None,
    log_line: Callable[[str], None],
    flow_file: Path = TRAINING_FLOW,
    *,
    timeout_s: float | None = None,
    inputs: dict[str, str] | None = None,
    warm_start: bool = False,
    report_template: Path | None = None,
) -> TrainedRun:
    """Run ``flow_file`` (TrainRecommenderFlow, or TuneRecommenderFlow: :func:`training_flow`)
    through Metaflow's Runner, passing each log line to ``log_line``. An empty ``model`` leaves
    the flow's own default (TuneRecommenderFlow: the config's tune.models). ``warm_start``
    starts TrainRecommenderFlow from the champion's weights (``--warm_start champion``);
    ``report_template`` is its ``--report_template`` (None: the flow's default).

    With ``inputs`` (data fingerprint, code and config hashes, model) a failed run is recorded,
    and a later call on the same inputs resumes it rather than training again. A run still
    going after ``timeout_s`` is ended, and so is one whose caller is cancelled (the Prefect
    task timing out or being cancelled): Metaflow's kill ends the run and its step processes.
    Raises CycleError with the tail of the flow's error output when the run fails.

    Where the steps run is Metaflow's configuration: with an S3 datastore and a Batch job queue
    (Terraform's ``client_environment``) the run goes ``--with batch``, the train step on the
    GPU queue (:mod:`recops.pipeline.batch`), and this process only waits; otherwise locally.
    """
    from metaflow import Runner

    from recops.pipeline.batch import remote_options

    top: dict[str, Any] = {"pylint": False, **remote_options()}  # --with batch when on AWS
    if config_path:
        top["config"] = [("config", str(Path(config_path).resolve()))]
    errors: list[str] = []  # exception lines of failed steps, then Metaflow's own summary

    async def pump(running: Any, stream: str) -> None:
        async for _, line in running.stream_log(stream):
            line = line.rstrip()
            if EXCEPTION_LINE.search(line) or (stream == "stderr" and "fail" in line.lower()):
                errors.append(line.strip())
            log_line(line)

    origin = resumable_run(inputs) if inputs else None
    if origin:
        top.pop("config", None)  # a resumed run keeps its own config (Metaflow refuses a new one)
    with Runner(str(flow_file), show_output=False, **top) as runner:
        try:
            if origin:
                log_line(f"resuming failed run {origin} on the same inputs (its finished steps are reused)")
                running = await runner.async_resume(origin_run_id=origin)
            else:
                options = {"model": model} if model else {}
                if warm_start and flow_file == TRAINING_FLOW:
                    options["warm_start"] = "champion"
                if report_template is not None and flow_file == TRAINING_FLOW:
                    options["report_template"] = str(report_template)
                running = await runner.async_run(dataset=spec, **options)
        except RuntimeError as exc:  # the flow exited before starting a run (e.g. a bad config)
            raise CycleError(f"{flow_file.name} did not start: {exc}") from exc
        try:
            await asyncio.gather(
                pump(running, "stdout"), pump(running, "stderr"), running.wait(timeout=timeout_s)
            )
        except BaseException:  # cancelled (Prefect's timeout or cancel) or a bug here: end the run
            running.kill()
            raise
        run = running.run
        if running.status != "successful":
            if inputs:
                record_failed_run(run.pathspec, inputs)
            timed_out = running.status == "timeout"
            why = f"was ended after {timeout_s:.0f} s" if timed_out else f"failed ({running.status})"
            last = "\n".join(dict.fromkeys(errors[-6:]))  # in order, each line once
            raise CycleError(f"{run.pathspec.split('/')[0]} run {run.pathspec} {why}:\n{last}")
        open_store().delete(FAILED_RUN_KEY)
        data = run.data
        return TrainedRun(
            pathspec=run.pathspec,
            metrics=dict(data.metrics),
            model_version=int(data.model_version["version"]),
            run_id=str(data.model_version["run_id"]),
            gate=GateDecision.from_dict(data.decision),
            step_cache=_step_cache(data),
        )
