"""Continuous training: the Prefect flow ``retrain``, one cycle of

    repair (health) -> load data -> detect change -> online check -> plan -> train -> deploy (reconcile)

Each step is a Prefect task calling the library (health, inputs, policy, training_run,
serving.reconcile); the flow only wires them, holds the cycle lock (one cycle at a time,
recops.continuous.lock), returns a :class:`CycleResult`, records it for `recops status`
(``<store>/monitoring/last_cycle.json``, :mod:`recops.store`) and writes a markdown artifact
(``retrain-summary``). A failed or crashed cycle is alerted by
:func:`recops.continuous.alerts.record_failure`.

What a crash at each step leaves, and who finishes it: before training, nothing; during
training, a failed Metaflow run that the next cycle on the same inputs resumes; between
register and gate, an ungated version; between the gate's tag and the alias move, a promoted
version that is not champion (both repaired by the next cycle's repair step); during deploy, a
built bento or a record not yet followed (the next reconcile reuses and confirms them).

Call :func:`recops.paths.use_local_prefect_home` before importing this module (the ``recops``
command does), so the embedded default keeps Prefect's state under ``RECOPS_HOME``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from recops.config import Config, load_config
from recops.continuous.alerts import record_failure, send_alert
from recops.continuous.cycle_result import CycleOutcome, CycleResult, record_cycle, summary_markdown
from recops.continuous.gc import collect
from recops.continuous.health import StuckState, repair_stuck
from recops.continuous.inputs import DataSnapshot, commit_manifest, gather_inputs
from recops.continuous.lock import CycleBusyError, cycle_lock
from recops.continuous.online_check import Degradation, check_online, publish_trending
from recops.continuous.policy import ChangeReport, RetrainPlan, change_report, plan_retrain
from recops.continuous.quarantine import Quarantined
from recops.continuous.report import refresh_report, report_template
from recops.continuous.training_run import CycleError, TrainedRun, run_training_flow, training_flow
from recops.data import DataValidationError
from recops.errors import ErrorsOnOneLine
from recops.registry.gate_rules import GateAction
from recops.serving.reconcile import Reconciliation, default_backend, deploy_shadow, reconcile
from recops.training.warm_start import continuable

ARTIFACT_KEY = "retrain-summary"
ONLINE_ARTIFACT_KEY = "online-report"
TRAIN_TASK_TIMEOUT_S = 7 * 3600  # past retrain.train_timeout_s (6 h), which ends the Metaflow run first

# A cycle that fails on the user's input (a RecopsError: a missing file, a bad config) is one
# line in the run's log, as `recops retrain` then prints it, not Prefect's ~60-line traceback;
# a bug keeps its traceback. In every process that runs the flow (the CLI, a served deployment).
ErrorsOnOneLine.install("prefect.flow_runs", "prefect.task_runs")


def _not_a_data_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry reading data (a download may fail), never a validation error (it would fail again)."""
    try:
        state.result()
    except DataValidationError:
        return False
    except Exception:
        return True
    return False


@task(
    name="load-data",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=_not_a_data_error,
    timeout_seconds=900,
    cache_policy=NO_CACHE,
)
def load_data(
    dataset: str, incoming: str | None, config: Config, config_path: str | None
) -> tuple[pd.DataFrame, DataSnapshot, list[Quarantined]]:
    """The last snapshot plus the incoming files not read before (``incoming``: a folder or
    store URI, default ``<store>/incoming``), validated and fingerprinted; a bad file is
    quarantined (and alerted) and the cycle goes on with the rest."""
    logger = get_run_logger()
    inputs = gather_inputs(dataset, incoming, config)
    for bad in inputs.quarantined:
        send_alert("quarantined", f"{bad.file}: {bad.reason}", config_path=config_path, moved_to=bad.moved_to)
    commit_manifest(inputs)  # the snapshot is written: these files are consumed
    data = inputs.snapshot
    logger.info(
        "data: %d events (%d new from %s); fingerprint %s",
        data.n_events,
        len(inputs.new_events),
        ", ".join(inputs.new_files) or "no new file",
        data.fingerprint,
    )
    if inputs.duplicates_dropped:
        logger.info("dropped %d exact duplicate events", inputs.duplicates_dropped)
    try:
        trending = publish_trending(inputs.events, config)
        logger.info(
            "trending: %d items over the newest %g h (%d events)",
            len(trending.items),
            trending.hours,
            trending.events,
        )
    except Exception as exc:  # cold sessions keep the previous lists
        logger.warning("trending lists not published: %s", exc)
    # a tuple: returned whole, Inputs (a dataclass holding DataFrames) reached the flow as a dict
    return inputs.events, inputs.snapshot, inputs.quarantined


@task(name="detect-change", retries=2, retry_delay_seconds=5, timeout_seconds=600, cache_policy=NO_CACHE)
def detect_change(events: pd.DataFrame, data: DataSnapshot, config: Config, model: str) -> ChangeReport:
    """Fingerprint, code and config against the champion's; drift of the new events."""
    logger = get_run_logger()
    change = change_report(events, data.fingerprint, config, model)
    if change.champion_version is None:
        logger.info("no champion yet")
    else:
        logger.info(
            "champion version %s: data %s, code %s, config %s",
            change.champion_version,
            "changed" if change.data_changed else "unchanged",
            "changed" if change.code_changed else "unchanged",
            "changed" if change.config_changed else "unchanged",
        )
    if change.drift:
        logger.info("drift: %s", change.drift.summary())
    if change.drift_note:
        logger.warning(change.drift_note)
    return change


@task(name="online-check", timeout_seconds=600, cache_policy=NO_CACHE)
def online_check(config: Config) -> Degradation | None:
    """Served lists of the last window against what shoppers did next (recops.continuous.online):
    figures to the registry and the ``online-report`` artifact, the champion's verdict to the
    plan. A failure is logged, not raised: the offline triggers still decide."""
    logger = get_run_logger()
    try:
        checked = check_online(config)
    except Exception as exc:
        logger.warning("online check failed (the offline triggers still decide): %s", exc)
        return None
    create_markdown_artifact(
        key=ONLINE_ARTIFACT_KEY,
        markdown=checked.report.markdown(config.online.min_pairs),
        description="recops online report: served lists against what shoppers did next",
    )
    if checked.recorded:
        logger.info("online figures recorded for version(s) %s", ", ".join(checked.recorded))
    for decision in checked.shadow_decisions:
        logger.info("shadow version %s: %s (%s)", decision.version, decision.action, decision.reason)
    if checked.degradation is not None:
        logger.info("%s", checked.degradation.summary())
        if checked.baseline_set:
            logger.info("online baseline of champion version %s set", checked.degradation.version)
    return checked.degradation


@task(name="repair", retries=1, retry_delay_seconds=5, timeout_seconds=1800, cache_policy=NO_CACHE)
def repair_registry(config: Config, config_path: str | None) -> list[StuckState]:
    """Find and repair what a crash left in the registry (recops.continuous.health); alert on each."""
    logger = get_run_logger()
    states = repair_stuck(config.gate)
    for state in states:
        what = state.repaired or "NOT repaired; see `recops status`"
        send_alert("stuck", f"{state.detail}: {what}", config_path=config_path, version=state.version)
        logger.warning("%s version %s: %s", state.kind, state.version, what)
    return states


@task(name="train", timeout_seconds=TRAIN_TASK_TIMEOUT_S, cache_policy=NO_CACHE)
def train(
    data: DataSnapshot, model: str, config_path: str | None, config: Config, inputs: dict
) -> TrainedRun:
    """TrainRecommenderFlow (Metaflow) on the snapshot, or with retrain.tune TuneRecommenderFlow
    (a search over the config's tune.models); its log lines go into this task's log. The flow's
    register step registers the model and runs the gate. A failed run on the same inputs is
    resumed rather than trained again."""
    logger = get_run_logger()
    flow_file = training_flow(config.retrain.tune)
    flow_model = "" if config.retrain.tune else model  # "": the search's families, tune.models
    logger.info("%s run --dataset %s --model %s", flow_file.name, data.spec, flow_model or "(tune.models)")
    run = run_training_flow(
        data.spec,
        flow_model,
        config_path,
        lambda line: logger.info("%s", line),
        flow_file,
        timeout_s=config.retrain.train_timeout_s,
        inputs=inputs,
        warm_start=config.retrain.warm_start and continuable(model),
        report_template=report_template(config),  # the default notebook unless configured
    )
    trained = asyncio.run(run)
    logger.info("trained %s: test ndcg@10 %.4f", trained.pathspec, trained.metrics["ndcg@10"])
    gate = trained.gate
    logger.info("gate %s version %s: %s", gate.action.value, trained.model_version, gate.reason)
    return trained


@task(name="report", timeout_seconds=1800, cache_policy=NO_CACHE)
def refresh_report_task(version: int, config: Config) -> int | None:
    """Only the report notebook changed: re-render the report of the version this cycle keeps
    (recops.continuous.report) rather than train. A failure is logged, not raised: the report
    is no input of serving, and the version's old tag makes the next cycle try again."""
    logger = get_run_logger()
    try:
        pathspec = refresh_report(version, report_template(config))
    except Exception as exc:
        logger.warning("report of version %s not re-rendered (next cycle tries again): %s", version, exc)
        return None
    logger.info("the report notebook changed: re-rendered version %s's report from %s", version, pathspec)
    return version


@task(name="deploy", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def deploy(timeout: float, expected_version: int | None) -> Reconciliation:
    """Reconcile serving with the registry: build the champion's bento if missing, deploy it,
    wait until every running service answers with it (a running `recops serve` swaps live)."""
    logger = get_run_logger()
    result = reconcile(timeout=timeout, expected_version=expected_version)
    for action in result.actions:
        logger.info("%s", action)
    for service in result.services:
        logger.info(
            "%s answers with model version %s %s", service.target, service.model_version, service.detail
        )
    if result.desired_version is not None and not result.services:
        logger.info("no local server is running (`recops serve` will answer with %s)", result.bento_tag)
    if not result.in_sync:
        raise CycleError(f"serving does not answer with champion version {result.desired_version}: {result}")
    return result


@task(name="shadow", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def shadow(version: int) -> str | None:
    """Score the challenger in shadow beside the champion (gate.require_shadow): its bento goes
    into the deployment record's shadow slot, which running servers follow."""
    bento = deploy_shadow(version)
    get_run_logger().info("version %s scored in shadow (%s); the online check decides", version, bento)
    return bento


@task(name="gc", cache_policy=NO_CACHE)
def prune(keep: int, config: Config) -> None:
    """Bounded cost: keep the newest ``keep`` versions, bentos, models and snapshots (and what
    the champion and previous champion need)."""
    get_run_logger().info("gc: %s", collect(keep, config).summary())


@flow(name="retrain", on_failure=[record_failure], on_crashed=[record_failure], log_prints=True)
def retrain(
    dataset: str = "synthetic",
    force: bool = False,
    retrain_on_new_data: bool | None = None,
    config_path: str | None = None,
    incoming: str | None = None,
    model: str | None = None,
) -> CycleResult:
    """One continuous-training cycle, under the cycle lock: repair what a crash left, retrain
    when the data, code or config changed, the data drifted or the champion is too old (or when
    forced), gate, and reconcile serving with the champion (skipped cycles too)."""
    logger = get_run_logger()
    config = load_config(config_path)
    model = model or config.retrain.model
    config.model_section(model)
    if config.gate.require_shadow and (backend := default_backend().name) != "local":
        raise CycleError(
            f"gate.require_shadow needs the local deploy backend (a shadow slot); the {backend} backend "
            "runs one image per service: turn gate.require_shadow off for it"
        )
    run_id = str(flow_run.id or "")
    try:
        with cycle_lock(f"retrain flow run {run_id}", config.retrain.lock_wait_s):
            result = _cycle(dataset, force, retrain_on_new_data, config_path, incoming, model, config)
    except CycleBusyError as exc:
        logger.warning("skipped: %s", exc)
        result = CycleResult(CycleOutcome.BUSY, RetrainPlan(False, [str(exc)]))
    record_cycle(result, run_id, config)
    create_markdown_artifact(
        key=ARTIFACT_KEY, markdown=summary_markdown(result), description="recops continuous-training cycle"
    )
    return result


def _cycle(
    dataset: str,
    force: bool,
    retrain_on_new_data: bool | None,
    config_path: str | None,
    incoming: str | None,
    model: str,
    config: Config,
) -> CycleResult:
    logger = get_run_logger()
    repairs = repair_registry(config, config_path)
    events, data, quarantined = load_data(dataset, incoming or None, config, config_path)
    change = detect_change(events, data, config, model)
    change.online = online_check(config)
    plan = plan_retrain(change, config, force=force, on_new_data=retrain_on_new_data)
    logger.info(plan.text())
    outcome, trained = CycleOutcome.SKIPPED, None
    if plan.retrain:
        inputs = {
            "fingerprint": data.fingerprint,
            "code": change.code_hash,
            "config": change.config_hash,
            "model": model,
            "flow": training_flow(config.retrain.tune).name,  # a failed search resumes as a search
        }
        trained = train(data, model, config_path, config, inputs)
        outcome = {
            GateAction.PROMOTED: CycleOutcome.PROMOTED,
            GateAction.SHADOW: CycleOutcome.SHADOW,
        }.get(trained.gate.action, CycleOutcome.REJECTED)
    refreshed = None
    if not plan.retrain and change.report_stale is not None:
        refreshed = refresh_report_task(change.report_stale, config)
    expected = trained.model_version if outcome is CycleOutcome.PROMOTED else None
    deployed = deploy(config.retrain.deploy_timeout_s, expected)
    if outcome is CycleOutcome.SHADOW:
        shadow(trained.model_version)  # type: ignore[union-attr]
    prune(config.retrain.keep, config)
    return CycleResult(
        outcome, plan, data, change, trained, deployed.bento_tag, deployed, repairs, quarantined, refreshed
    )
