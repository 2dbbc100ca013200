"""Continuous training: the Prefect flow ``retrain``, one cycle of

    load data -> detect change (fingerprint, drift) -> decide -> train (Metaflow)
      -> gate (in the flow's register step) -> build bento (when promoted) -> deploy

Each step is a Prefect task calling the library; the flow only wires them and writes a markdown
artifact (``retrain-summary``) saying what happened and why. Data: the base ``dataset`` plus
every ``*.csv``/``*.parquet`` file in the incoming folder (``$RECOPS_HOME/incoming``), in name
order: that is where new events land. When there are incoming files the combined events are
written once to ``$RECOPS_HOME/snapshots/<fingerprint>.parquet`` and the training flow reads
that snapshot, so what was trained on can be read back.

A cycle trains only when something the model depends on changed (data fingerprint, code hash,
training-config hash), when drift or the champion's age says so, or when forced; a cycle whose
inputs were already trained (into the champion, or into a version the gate rejected) reuses
that result and trains nothing.

Call :func:`recops.paths.use_local_prefect_home` before importing this module (the ``recops``
command does), so the embedded default keeps Prefect's state under ``RECOPS_HOME``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from recops.config import Config, load_config
from recops.continuous.drift import DriftReport, drift_report
from recops.data import DataValidationError, load_events, read_raw_events, validate_events
from recops.data.interactions import fingerprint_events
from recops.paths import atomic_path, recops_home
from recops.training.lineage import TRAINING_FLOW, code_hash, config_hash

INCOMING_SUFFIXES = (".csv", ".parquet")
ARTIFACT_KEY = "retrain-summary"
TRAIN_TIMEOUT_S = 6 * 3600
EXCEPTION_LINE = re.compile(r"\b[A-Za-z_.]*(Error|Exception|Fault): ")
CONFIRM_ANSWERS = 8  # consecutive answers from the new model before a local deploy counts as done


class CycleError(RuntimeError):
    """A continuous-training cycle cannot go on; the message says which step and why."""


def incoming_dir() -> Path:
    return recops_home() / "incoming"


def snapshots_dir() -> Path:
    return recops_home() / "snapshots"


# --- data ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSnapshot:
    spec: str  # what the training flow reads: the base dataset, or a snapshot parquet:PATH
    fingerprint: str
    n_events: int
    sources: list[str]  # the base dataset and each incoming file, in order


def incoming_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.suffix in INCOMING_SUFFIXES and p.is_file())


def read_incoming(path: Path) -> pd.DataFrame:
    """One incoming file, validated; errors name the file (and the rows)."""
    spec = f"{path.suffix.lstrip('.')}:{path}"
    return validate_events(read_raw_events(spec), source=f"incoming file {path}")


def current_events(dataset: str, incoming: Path, config: Config) -> tuple[pd.DataFrame, list[str]]:
    """The base events plus every incoming file, validated, and the list of their sources."""
    frames, sources = [load_events(dataset, config.data)], [dataset]
    for path in incoming_files(incoming):
        frames.append(read_incoming(path))
        sources.append(str(path))
    events = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return events, sources


def snapshot(events: pd.DataFrame, fingerprint: str) -> Path:
    """Write the combined events once per fingerprint (atomically); return the file."""
    path = snapshots_dir() / f"{fingerprint.split(':')[-1][:16]}.parquet"
    if not path.is_file():
        with atomic_path(path) as tmp:
            events.rename(columns={"sequence_id": "session_id"}).to_parquet(tmp, index=False)
    return path


# --- what changed -------------------------------------------------------------------------------


@dataclass
class ChangeReport:
    fingerprint: str
    code_hash: str
    config_hash: str
    champion_version: int | None = None
    champion_fingerprint: str = ""
    champion_age_hours: float | None = None
    code_changed: bool = False
    config_changed: bool = False
    drift: DriftReport | None = None  # when the data changed and the champion has a profile
    drift_note: str = ""
    trained_as: dict[str, Any] | None = None  # a version already trained on exactly these inputs

    @property
    def data_changed(self) -> bool:
        return self.champion_version is not None and self.fingerprint != self.champion_fingerprint

    def to_dict(self) -> dict[str, Any]:
        drift = self.drift.to_dict() if self.drift else None
        return {**asdict(self), "drift": drift, "data_changed": self.data_changed}


def _age_hours(since: str) -> float | None:
    try:
        then = datetime.fromisoformat(since)
    except ValueError:
        return None
    return (datetime.now(UTC) - then).total_seconds() / 3600


def change_report(events: pd.DataFrame, fingerprint: str, config: Config, model: str) -> ChangeReport:
    """Compare the current data, code and config with the champion's (and with every version's)."""
    from recops import registry

    report = ChangeReport(fingerprint, code_hash(), config_hash(config, model))
    versions = registry.list_versions()
    same_inputs = [
        v
        for v in versions
        if v.tags.get("data_fingerprint") == fingerprint
        and v.tags.get("code_hash") == report.code_hash
        and v.tags.get("config_hash") == report.config_hash
    ]
    if same_inputs:
        latest = same_inputs[-1]
        report.trained_as = {
            "version": latest.version,
            "gate": latest.tags.get("gate_decision", "not gated"),
            "champion": latest.is_champion,
        }
    champion = next((v for v in versions if v.is_champion), None)
    if champion is None:
        return report
    report.champion_version = champion.version
    report.champion_fingerprint = champion.tags.get("data_fingerprint", "")
    report.champion_age_hours = _age_hours(champion.tags.get("champion_since", ""))
    report.code_changed = champion.tags.get("code_hash") != report.code_hash
    report.config_changed = champion.tags.get("config_hash") != report.config_hash
    profile = registry.load_data_profile(champion.version)
    if profile is None:
        report.drift_note = f"champion version {champion.version} has no data profile; drift not measured"
    elif report.data_changed:
        report.drift = drift_report(profile, events, config.drift)
    return report


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reasons: list[str] = field(default_factory=list)

    def text(self) -> str:
        return ("retrain: " if self.retrain else "skip: ") + "; ".join(self.reasons)


def decide(
    change: ChangeReport, config: Config, *, force: bool = False, on_new_data: bool | None = None
) -> Decision:
    """Whether this cycle trains, with every reason (the policy of ``[retrain]``)."""
    on_new_data = config.retrain.on_new_data if on_new_data is None else on_new_data
    if change.trained_as and not force:
        done = change.trained_as
        verdict = "it is the champion" if done["champion"] else f"gate: {done['gate']}"
        return Decision(
            False,
            [
                f"data, code and config unchanged since version {done['version']} was trained on them "
                f"({verdict}); nothing new to train"
            ],
        )
    reasons = []
    if force:
        reasons.append("forced")
    if change.champion_version is None:
        reasons.append("no champion yet")
    else:
        if change.drift is not None and change.drift.detected:
            reasons.append(change.drift.summary())
        elif change.data_changed and on_new_data:
            reasons.append(f"new data ({change.champion_fingerprint[:19]} -> {change.fingerprint[:19]})")
        if change.code_changed:
            reasons.append("code changed since the champion was trained")
        if change.config_changed:
            reasons.append("training config changed since the champion was trained")
        age, limit = change.champion_age_hours, config.retrain.max_champion_age_hours
        if age is not None and age > limit:
            reasons.append(f"champion is {age:.1f} h old (limit {limit:g} h)")
    if reasons:
        return Decision(True, reasons)
    why = [f"champion version {change.champion_version} is current"]
    if change.data_changed:
        detail = f" ({change.drift.summary()})" if change.drift else ""
        why.append(f"data changed but retrain.on_new_data is off and there is no drift{detail}")
    else:
        why.append("data, code and config unchanged")
    if change.champion_age_hours is not None:
        limit = config.retrain.max_champion_age_hours
        why.append(f"champion age {change.champion_age_hours:.1f} h < {limit:g} h")
    return Decision(False, why)


# --- tasks --------------------------------------------------------------------------------------


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


def use_local_metaflow() -> None:
    """Metaflow's local datastore under RECOPS_HOME (as `make` sets it) and a user name, unless
    set already: for the flow the Runner starts and for reading its run back in this process."""
    os.environ.setdefault("METAFLOW_DATASTORE_SYSROOT_LOCAL", str(recops_home()))
    os.environ.setdefault("USERNAME", os.environ.get("USER") or "recops")


async def run_training_flow(
    spec: str, model: str, config_path: str | None, log_line: Any, flow_file: Path = TRAINING_FLOW
) -> dict[str, Any]:
    """Run TrainRecommenderFlow through Metaflow's Runner, passing each log line to ``log_line``.

    Returns the run's pathspec, metrics, registered version and gate decision; raises
    CycleError with the tail of the flow's error output when the run fails.
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
        return {
            "pathspec": run.pathspec,
            "metrics": dict(data.metrics),
            "model_version": dict(data.model_version),
            "decision": dict(data.decision),
        }


@task(name="train", timeout_seconds=TRAIN_TIMEOUT_S, cache_policy=NO_CACHE)
def train(data: DataSnapshot, model: str, config_path: str | None) -> dict[str, Any]:
    """TrainRecommenderFlow (Metaflow) on the snapshot; its log lines go into this task's log."""
    logger = get_run_logger()
    logger.info("TrainRecommenderFlow run --dataset %s --model %s", data.spec, model)
    log_line = lambda line: logger.info("%s", line)  # noqa: E731
    result = asyncio.run(run_training_flow(data.spec, model, config_path, log_line))
    logger.info("trained %s: test ndcg@10 %.4f", result["pathspec"], result["metrics"]["ndcg@10"])
    return result


@task(name="gate", cache_policy=NO_CACHE)
def report_gate(trained: dict[str, Any]) -> dict[str, Any]:
    """The gate ran in the flow's register step; log its decision and figures."""
    logger = get_run_logger()
    decision = trained["decision"]
    version = trained["model_version"]["version"]
    logger.info("gate %s version %s: %s", decision["action"], version, decision["reason"])
    return decision


@task(name="build-bento", retries=1, retry_delay_seconds=5, timeout_seconds=900, cache_policy=NO_CACHE)
def build_champion_bento() -> str:
    from recops.serving.runtime import build_bento

    tag = build_bento(alias="champion")
    get_run_logger().info("built bento %s", tag)
    return tag


def wait_for_model(url: str, version: str, timeout: float, session: list[Any]) -> int:
    """Ask ``url`` until CONFIRM_ANSWERS answers in a row come from model ``version``; the number
    of requests that took. Raises CycleError after ``timeout`` seconds."""
    import httpx

    deadline, asked, in_a_row = time.monotonic() + timeout, 0, 0
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline:
            asked += 1
            try:
                answer = client.post(f"{url}/recommend", json={"session": session, "k": 1}).json()
                in_a_row = in_a_row + 1 if str(answer["model"]["version"]) == version else 0
            except (httpx.HTTPError, ValueError, KeyError):
                in_a_row = 0
            if in_a_row >= CONFIRM_ANSWERS:
                return asked
            time.sleep(0.05)
    raise CycleError(f"the server at {url} did not switch to model version {version} within {timeout:.0f}s")


@task(name="deploy", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def deploy(bento_tag: str, timeout: float) -> dict[str, Any]:
    """Locally: record the bento as deployed; a running `recops serve` swaps to it (no restart).

    In the cloud the same bento goes out as an image: `bentoml containerize`, push to the
    ECR repository, `terraform apply -var bento_image_tag=...` (see infra/terraform)."""
    from recops.serving.runtime import read_deployment, running_server, write_deployment

    logger = get_run_logger()
    previous = (read_deployment() or {}).get("bento_tag")
    record = write_deployment(bento_tag)
    version = record["labels"].get("model_version", "")
    result = {"bento_tag": bento_tag, "previous_bento": previous, "server": None}
    url = running_server()
    if url is None:
        logger.info("deployed %s; no local server is running (`recops serve` will answer with it)", bento_tag)
        return result
    from recops.serving.recommender import Recommender

    item = Recommender.from_path(record["checkpoint"]).vocab.items[0]
    asked = wait_for_model(url, version, timeout, [item])
    logger.info("%s now answers with model version %s (%d requests to confirm)", url, version, asked)
    return {**result, "server": url}


# --- monitoring ---------------------------------------------------------------------------------


def failures_file() -> Path:
    return recops_home() / "monitoring" / "failures.jsonl"


def record_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect on_failure hook: append the failure to failures.jsonl and POST it to the webhook
    (``[retrain] webhook_url`` or ``$RECOPS_WEBHOOK_URL``), if one is set. Never raises."""
    import httpx

    message = {
        "flow": getattr(flow, "name", "retrain"),
        "flow_run": getattr(flow_run, "name", ""),
        "flow_run_id": str(getattr(flow_run, "id", "")),
        "state": getattr(state, "name", "Failed"),
        "message": str(getattr(state, "message", "")),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path = failures_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(message) + "\n")
    url = os.environ.get("RECOPS_WEBHOOK_URL") or _config_webhook(flow_run)
    if url:
        try:
            body = {"text": f"recops retrain failed: {message['message']}", **message}
            httpx.post(url, json=body, timeout=10)
        except httpx.HTTPError as exc:
            print(f"recops: could not post the failure to {url}: {exc}")


def _config_webhook(flow_run: Any) -> str:
    try:
        path = (getattr(flow_run, "parameters", None) or {}).get("config_path")
        return load_config(path).retrain.webhook_url
    except Exception:
        return ""


# --- the flow -----------------------------------------------------------------------------------


def summary_markdown(result: dict[str, Any]) -> str:
    change, lines = result.get("change") or {}, [f"# recops retrain: {result['action']}", ""]
    lines += [f"**Decision:** {result['decision']}", ""]
    lines += ["| | |", "|---|---|"]
    data = result["data"]
    lines.append(f"| data | {data['n_events']} events from {', '.join(data['sources'])} |")
    lines.append(f"| fingerprint | `{result['data']['fingerprint']}` |")
    lines.append(f"| champion before | {result.get('champion_before') or 'none'} |")
    drift = change.get("drift")
    if drift:
        lines.append(
            f"| drift | popularity JS {drift['popularity_js']:.3f}, unseen {drift['unseen_share']:.1%}, "
            f"length JS {drift['length_js']:.3f} over {drift['new_events']} {drift['window']} events; "
            f"{'detected: ' + ', '.join(drift['drifted']) if drift['detected'] else 'none detected'} |"
        )
    trained = result.get("trained")
    if trained:
        metrics = trained["metrics"]
        lines.append(f"| Metaflow run | `{trained['pathspec']}` |")
        lines.append(
            f"| test metrics | NDCG@10 {metrics['ndcg@10']:.4f}, HR@10 {metrics['hr@10']:.4f}, "
            f"MRR@10 {metrics['mrr@10']:.4f} |"
        )
        lines.append(f"| registered | version {trained['model_version']['version']} |")
        lines.append(f"| gate | {trained['decision']['action']}: {trained['decision']['reason']} |")
    if result.get("bento_tag"):
        lines.append(f"| bento | `{result['bento_tag']}` |")
    if result.get("deployed"):
        where = result["deployed"].get("server") or "recorded (no local server running)"
        lines.append(f"| deployed | {where} |")
    return "\n".join(lines) + "\n"


@flow(name="retrain", on_failure=[record_failure], log_prints=True)
def retrain(
    dataset: str = "synthetic",
    force: bool = False,
    retrain_on_new_data: bool | None = None,
    config_path: str | None = None,
    incoming: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """One continuous-training cycle: retrain when the data, code or config changed, the data
    drifted or the champion is too old (or when forced); gate; build and deploy a new champion."""
    logger = get_run_logger()
    config = load_config(config_path)
    model = model or config.retrain.model
    config.model_config(model)
    events, data = load_data(dataset, incoming or str(incoming_dir()), config)
    change = detect_change(events, data, config, model)
    decision = decide(change, config, force=force, on_new_data=retrain_on_new_data)
    logger.info(decision.text())
    result: dict[str, Any] = {
        "action": "retrained" if decision.retrain else "skipped",
        "decision": decision.text(),
        "data": asdict(data),
        "change": change.to_dict(),
        "champion_before": change.champion_version,
    }
    if decision.retrain:
        trained = train(data, model, config_path)
        gate = report_gate(trained)
        result["trained"] = trained
        result["action"] = f"retrained, {gate['action']}"
        if gate["action"] == "promoted":
            result["bento_tag"] = build_champion_bento()
            result["deployed"] = deploy(result["bento_tag"], config.retrain.deploy_timeout_s)
    create_markdown_artifact(
        key=ARTIFACT_KEY, markdown=summary_markdown(result), description="recops continuous-training cycle"
    )
    return result
