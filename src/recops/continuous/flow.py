"""Continuous training: the Prefect flow ``retrain``, one cycle of

    load data -> detect change (fingerprint, drift) -> plan -> train (Metaflow)
      -> gate (in the flow's register step) -> build bento (when promoted) -> deploy

Each step is a Prefect task calling the library (inputs, policy, training_run, serving); the
flow only wires them, returns a :class:`CycleResult` and writes a markdown artifact
(``retrain-summary``) saying what happened and why. A failed cycle is recorded and alerted by
:func:`recops.continuous.alerts.record_failure`.

Call :func:`recops.paths.use_local_prefect_home` before importing this module (the ``recops``
command does), so the embedded default keeps Prefect's state under ``RECOPS_HOME``.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from recops.config import Config, load_config
from recops.continuous.alerts import record_failure
from recops.continuous.inputs import DataSnapshot, current_events, incoming_dir, snapshot
from recops.continuous.policy import ChangeReport, RetrainPlan, change_report, plan_retrain
from recops.continuous.training_run import TrainedRun, run_training_flow
from recops.data import DataValidationError
from recops.data.interactions import fingerprint_events
from recops.registry.gate_rules import GateAction
from recops.serving.deployment import LocalDeployment

ARTIFACT_KEY = "retrain-summary"
TRAIN_TIMEOUT_S = 6 * 3600


class CycleOutcome(StrEnum):
    SKIPPED = "skipped"
    PROMOTED = "retrained, promoted"
    REJECTED = "retrained, rejected"


@dataclass(frozen=True)
class CycleResult:
    """What one cycle did: its inputs, the change it saw, its plan, and what training, the gate
    and the deploy produced (None for the steps it did not reach)."""

    outcome: CycleOutcome
    plan: RetrainPlan
    data: DataSnapshot
    change: ChangeReport
    trained: TrainedRun | None = None
    bento_tag: str | None = None
    deployed: LocalDeployment | None = None

    @property
    def champion_before(self) -> int | None:
        return self.change.champion_version

    def to_dict(self) -> dict[str, Any]:
        """Plain types, for ``recops retrain --json``."""
        trained = None
        if self.trained is not None:
            trained = {**asdict(self.trained), "gate": self.trained.gate.to_dict()}
        return {
            "outcome": self.outcome.value,
            "plan": self.plan.text(),
            "data": asdict(self.data),
            "change": self.change.to_dict(),
            "champion_before": self.champion_before,
            "trained": trained,
            "bento_tag": self.bento_tag,
            "deployed": asdict(self.deployed) if self.deployed else None,
        }


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
def load_data(dataset: str, incoming: str, config: Config) -> tuple[pd.DataFrame, DataSnapshot]:
    """Base dataset + incoming files, validated and fingerprinted; a snapshot when files were added."""
    logger = get_run_logger()
    events, sources = current_events(dataset, Path(incoming), config)
    fingerprint = fingerprint_events(events)
    spec = dataset if len(sources) == 1 else f"parquet:{snapshot(events, fingerprint)}"
    logger.info("data: %d events from %s; fingerprint %s", len(events), ", ".join(sources), fingerprint)
    return events, DataSnapshot(spec, fingerprint, len(events), sources)


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


@task(name="train", timeout_seconds=TRAIN_TIMEOUT_S, cache_policy=NO_CACHE)
def train(data: DataSnapshot, model: str, config_path: str | None) -> TrainedRun:
    """TrainRecommenderFlow (Metaflow) on the snapshot; its log lines go into this task's log.
    The flow's register step registers the model and runs the gate."""
    logger = get_run_logger()
    logger.info("TrainRecommenderFlow run --dataset %s --model %s", data.spec, model)
    trained = asyncio.run(
        run_training_flow(data.spec, model, config_path, lambda line: logger.info("%s", line))
    )
    logger.info("trained %s: test ndcg@10 %.4f", trained.pathspec, trained.metrics["ndcg@10"])
    gate = trained.gate
    logger.info("gate %s version %s: %s", gate.action.value, trained.model_version, gate.reason)
    return trained


@task(name="build-bento", retries=1, retry_delay_seconds=5, timeout_seconds=900, cache_policy=NO_CACHE)
def build_champion_bento() -> str:
    from recops.serving.build import build_bento

    tag = build_bento(alias="champion")
    get_run_logger().info("built bento %s", tag)
    return tag


@task(name="deploy", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def deploy(bento_tag: str, timeout: float) -> LocalDeployment:
    """Locally: record the bento as deployed; a running `recops serve` swaps to it (no restart)."""
    from recops.serving.deployment import deploy_locally

    logger = get_run_logger()
    done = deploy_locally(bento_tag, timeout)
    if done.server is None:
        logger.info("deployed %s; no local server is running (`recops serve` will answer with it)", bento_tag)
    else:
        logger.info(
            "%s now answers with model version %s (%d requests to confirm)",
            done.server,
            done.model_version,
            done.requests_to_confirm,
        )
    return done


def summary_markdown(result: CycleResult) -> str:
    lines = [f"# recops retrain: {result.outcome.value}", "", f"**Decision:** {result.plan.text()}", ""]
    lines += ["| | |", "|---|---|"]
    data = result.data
    lines.append(f"| data | {data.n_events} events from {', '.join(data.sources)} |")
    lines.append(f"| fingerprint | `{data.fingerprint}` |")
    lines.append(f"| champion before | {result.champion_before or 'none'} |")
    drift = result.change.drift
    if drift:
        verdict = "detected: " + ", ".join(drift.drifted) if drift.detected else "none detected"
        lines.append(
            f"| drift | popularity JS {drift.popularity_js:.3f}, unseen {drift.unseen_share:.1%}, "
            f"length JS {drift.length_js:.3f} over {drift.new_events} {drift.window} events; {verdict} |"
        )
    trained = result.trained
    if trained:
        metrics = trained.metrics
        lines.append(f"| Metaflow run | `{trained.pathspec}` |")
        lines.append(
            f"| test metrics | NDCG@10 {metrics['ndcg@10']:.4f}, HR@10 {metrics['hr@10']:.4f}, "
            f"MRR@10 {metrics['mrr@10']:.4f} |"
        )
        lines.append(f"| registered | version {trained.model_version} |")
        lines.append(f"| gate | {trained.gate.action.value}: {trained.gate.reason} |")
    if result.bento_tag:
        lines.append(f"| bento | `{result.bento_tag}` |")
    if result.deployed:
        lines.append(f"| deployed | {result.deployed.server or 'recorded (no local server running)'} |")
    return "\n".join(lines) + "\n"


@flow(name="retrain", on_failure=[record_failure], log_prints=True)
def retrain(
    dataset: str = "synthetic",
    force: bool = False,
    retrain_on_new_data: bool | None = None,
    config_path: str | None = None,
    incoming: str | None = None,
    model: str | None = None,
) -> CycleResult:
    """One continuous-training cycle: retrain when the data, code or config changed, the data
    drifted or the champion is too old (or when forced); gate; build and deploy a new champion."""
    logger = get_run_logger()
    config = load_config(config_path)
    model = model or config.retrain.model
    config.model_section(model)
    events, data = load_data(dataset, incoming or str(incoming_dir()), config)
    change = detect_change(events, data, config, model)
    plan = plan_retrain(change, config, force=force, on_new_data=retrain_on_new_data)
    logger.info(plan.text())
    result = CycleResult(CycleOutcome.SKIPPED, plan, data, change)
    if plan.retrain:
        trained = train(data, model, config_path)
        if trained.gate.action is GateAction.PROMOTED:
            tag = build_champion_bento()
            deployed = deploy(tag, config.retrain.deploy_timeout_s)
            result = CycleResult(CycleOutcome.PROMOTED, plan, data, change, trained, tag, deployed)
        else:
            result = CycleResult(CycleOutcome.REJECTED, plan, data, change, trained)
    create_markdown_artifact(
        key=ARTIFACT_KEY, markdown=summary_markdown(result), description="recops continuous-training cycle"
    )
    return result
