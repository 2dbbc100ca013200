"""Prefect schedules: prefect.yaml, `recops schedule serve` and `recops schedule status`.

Against a real Prefect API, no mocks: one `recops schedule serve` subprocess for the module starts
its local Prefect server (with the scheduler service) and serves a stand-in for the retrain flow
every 10 s; the other deployments are created through the API or by `prefect deploy --all` from a
copy of the project's prefect.yaml. Status must list real runs, warn on a missed run, on paused
schedules and deployments, and exit 1 then; Ctrl-C must pause what was served and stop the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recops.cli.schedule import schedule_app
from recops.continuous.status import StatusReport, status
from recops.continuous.status_render import render_status
from recops.localproc import free_port, start_server, wait_until

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The parameters of recops.continuous.flow.retrain and recops.continuous.maturity_flow.maturity_report,
# and nothing that trains or reads the system.
STUB_FLOW = '''"""Stands in for the project's two flows: the same names and parameters, no work."""

from prefect import flow


@flow(name="retrain")
def retrain(
    dataset: str = "synthetic",
    force: bool = False,
    retrain_on_new_data: bool = True,
    config_path: str | None = None,
) -> str:
    return dataset


@flow(name="maturity-report")
def maturity_report(require_level: int | None = None) -> dict:
    return {}
'''
ENTRYPOINTS = {
    "src/recops/continuous/flow.py:retrain": "stub_flow.py:retrain",
    "src/recops/continuous/maturity_flow.py:maturity_report": "stub_flow.py:maturity_report",
}


def _stubbed_prefect_yaml() -> str:
    """The project's prefect.yaml with each entrypoint pointing at its stand-in."""
    text = (REPO / "prefect.yaml").read_text()
    for entrypoint, stub in ENTRYPOINTS.items():
        assert f"entrypoint: {entrypoint}" in text, entrypoint
        text = text.replace(f"entrypoint: {entrypoint}", f"entrypoint: {stub}")
    assert "entrypoint: src/" not in text, "a deployment of prefect.yaml has no stand-in here"
    return text


SERVED_YAML = """deployments:
  - name: tick-10s
    entrypoint: stub_flow.py:retrain
    parameters: {dataset: tiny, retrain_on_new_data: false}
    schedules:
      - interval: 10
        slug: every-10s
"""


# --- One served project for the module ----------------------------------------------------------


@dataclass
class Served:
    api_url: str
    project: Path
    home: Path
    process: subprocess.Popen[bytes]
    log: Path


def _wait(condition, timeout: float, what: str, log: Path | None = None):
    try:
        return wait_until(condition, timeout, interval=0.5, what=what)
    except TimeoutError as exc:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:]) if log and log.exists() else ""
        raise AssertionError(f"{exc}\n{tail}") from None


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    """`recops schedule serve` of a 10-second stand-in deployment, with its own local server."""
    project = tmp_path_factory.mktemp("project")
    home = tmp_path_factory.mktemp("recops-home")
    (project / "stub_flow.py").write_text(STUB_FLOW)
    (project / "serve.yaml").write_text(SERVED_YAML)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(RECOPS_HOME=str(home), PREFECT_RUNNER_POLL_FREQUENCY="1")
    log = project / "serve.log"
    command = [sys.executable, "-c", "from recops.cli.schedule import schedule_app; schedule_app()"]
    command += ["serve", "--prefect-yaml", "serve.yaml", "--port", str(free_port())]
    # Ctrl-C is how a person stops it; SIGKILL for what is left of its process group after 60 s
    stop = ((signal.SIGINT, 60.0), (signal.SIGKILL, 5.0))
    server = start_server(
        "recops schedule serve", command, env=env, cwd=project, log_path=log, stop_steps=stop
    )
    process = server.process
    try:
        state = home / "prefect" / "local-server.json"
        api_url = _wait(
            lambda: json.loads(state.read_text())["api_url"] if state.exists() else None,
            120,
            "the server",
            log,
        )
        with pytest.MonkeyPatch.context() as patch:
            # This process talks to the same server; its own Prefect state stays in the temporary home.
            patch.setenv("PREFECT_HOME", str(home / "test-client"))
            patch.setenv("PREFECT_API_URL", api_url)
            from prefect.settings import PREFECT_API_URL, temporary_settings

            with temporary_settings(updates={PREFECT_API_URL: api_url}):
                served = Served(api_url, project, home, process, log)
                _wait(lambda: _deployment("tick-10s"), 60, "serve to register its deployment", log)
                yield served
    finally:
        server.stop()


def _client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def _deployment(name: str):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    with _client() as client:
        found = client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name]))
        )
    return found[0] if found else None


def _create_deployment(name: str, schedule, *, active: bool = True, paused: bool = False):
    """A deployment of a flow called `stand-in` with one schedule, made through the API."""
    from prefect.client.schemas.actions import DeploymentScheduleCreate

    with _client() as client:
        flow_id = client.create_flow_from_name("stand-in")
        return client.create_deployment(
            flow_id=flow_id,
            name=name,
            schedules=[DeploymentScheduleCreate(schedule=schedule, active=active)],
            paused=paused,
        )


def _status_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(schedule_app, ["status", *args])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, result.stdout


def _kinds(report: StatusReport, deployment: str) -> set[str]:
    return {f.kind for f in report.findings if f.deployment and f.deployment.endswith(f"/{deployment}")}


# --- prefect deploy reads prefect.yaml ----------------------------------------------------------


def test_prefect_deploy_registers_every_deployment_of_prefect_yaml(served):
    """The real `prefect deploy --all` on the project's file: schedules, parameters, pool, pull step."""
    from prefect.client.schemas.actions import WorkPoolCreate

    copy = served.project / "deployed"
    copy.mkdir()
    (copy / "stub_flow.py").write_text(STUB_FLOW)
    (copy / "prefect.yaml").write_text(_stubbed_prefect_yaml())
    with _client() as client:
        client.create_work_pool(WorkPoolCreate(name="recops-process", type="process"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=served.api_url, PREFECT_HOME=str(served.home / "deployer"))
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    for name, cron, parameters in [
        ("nightly-retrain", "0 2 * * *", {"dataset": "synthetic"}),
        ("hourly-drift-check", "0 * * * *", {"dataset": "synthetic", "retrain_on_new_data": False}),
        ("weekly-maturity-report", "30 6 * * 1", {}),
    ]:
        deployment = _deployment(name)
        assert deployment is not None, name
        assert deployment.work_pool_name == "recops-process"
        assert deployment.parameters == parameters
        [schedule] = deployment.schedules
        assert (schedule.schedule.cron, schedule.schedule.timezone, schedule.active) == (cron, "UTC", True)
        step = deployment.pull_steps[0]["prefect.deployments.steps.set_working_directory"]
        assert Path(step["directory"]) == copy.resolve()  # the build step's `pwd`, resolved at deploy time

    names = ["nightly-retrain", "hourly-drift-check", "weekly-maturity-report"]
    report = status(prefect_yaml=copy / "prefect.yaml", names=names)
    assert [d.name for d in report.deployments] == [
        "maturity-report/weekly-maturity-report",
        "retrain/hourly-drift-check",
        "retrain/nightly-retrain",
    ]
    assert "not_deployed" not in {f.kind for f in report.findings}
    assert [s.description for s in report.deployments[0].schedules] == ["cron 30 6 * * 1 (UTC)"]
    assert [s.description for s in report.deployments[2].schedules] == ["cron 0 2 * * * (UTC)"]


def test_schedule_deploy_registers_the_deployments_without_serving_them(served):
    """`recops schedule deploy` (the end of `make demo`): the schedules on record, nothing paused."""
    copy = served.project / "registered"
    copy.mkdir()
    (copy / "stub_flow.py").write_text(STUB_FLOW)
    text = _stubbed_prefect_yaml()
    for name, renamed in [
        ("nightly-retrain", "registered-nightly"),
        ("hourly-drift-check", "registered-hourly"),
        ("weekly-maturity-report", "registered-weekly"),
    ]:
        text = text.replace(f"name: {name}", f"name: {renamed}")
    (copy / "prefect.yaml").write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=served.api_url, PREFECT_HOME=str(served.home / "registrar"))
    command = [sys.executable, "-c", "from recops.cli.schedule import schedule_app; schedule_app()", "deploy"]
    done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("registered ") == 3, done.stdout
    for name, cron in [
        ("registered-nightly", "0 2 * * *"),
        ("registered-hourly", "0 * * * *"),
        ("registered-weekly", "30 6 * * 1"),
    ]:
        deployment = _deployment(name)
        assert deployment is not None and not deployment.paused, name
        [schedule] = deployment.schedules
        assert (schedule.schedule.cron, schedule.active) == (cron, True)


# --- status warns -------------------------------------------------------------------------------


def test_a_scheduled_run_that_never_happened_is_a_warning_and_exit_code_1(served):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
    from prefect.client.schemas.schedules import IntervalSchedule

    due = datetime.now(UTC) + timedelta(seconds=3)  # the schedule exists before its first due time
    deployment_id = _create_deployment(
        "missed", IntervalSchedule(interval=timedelta(days=1), anchor_date=due)
    )
    _wait(lambda: datetime.now(UTC) > due + timedelta(seconds=1.5) or None, 30, "the due time to pass")
    # Whatever the scheduler created for that time goes: as if it had stopped creating runs.
    with _client() as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]))
        )
        for run in runs:
            if run.expected_start_time <= datetime.now(UTC):
                client.delete_flow_run(run.id)

    report = status(names=["missed"], grace=timedelta(0))
    assert "missed" in _kinds(report, "missed")
    assert "late" not in _kinds(report, "missed")
    [missed] = [f for f in report.findings if f.kind == "missed"]
    assert due.strftime("%Y-%m-%d %H:%M:%S") in missed.message
    assert "prefect deployment run 'stand-in/missed'" in missed.hint

    code, out = _status_cli("--deployment", "missed", "--grace-minutes", "0")
    assert code == 1
    assert "WARNING stand-in/missed: no run exists for" in out

    # With the default grace the same deployment is not yet overdue.
    assert "missed" not in _kinds(status(names=["missed"]), "missed")


def test_paused_schedules_and_paused_deployments_are_reported(served):
    from prefect.client.schemas.schedules import CronSchedule

    _create_deployment("schedule-off", CronSchedule(cron="0 2 * * *", timezone="UTC"), active=False)
    _create_deployment("deployment-off", CronSchedule(cron="0 3 * * *", timezone="UTC"), paused=True)

    report = status(names=["schedule-off", "deployment-off"])
    assert "schedule_inactive" in _kinds(report, "schedule-off")
    assert "paused" in _kinds(report, "deployment-off")
    text = render_status(report)
    assert "schedule cron 0 2 * * * (UTC): INACTIVE" in text
    assert "stand-in/deployment-off  [PAUSED" in text

    code, out = _status_cli("--json", "-n", "schedule-off", "-n", "deployment-off")
    assert code == 1
    payload = json.loads(out)
    assert payload["healthy"] is False
    assert {(f["deployment"], f["kind"]) for f in payload["findings"] if f["severity"] == "warning"} >= {
        ("stand-in/schedule-off", "schedule_inactive"),
        ("stand-in/deployment-off", "paused"),
    }


def test_a_deployment_of_prefect_yaml_unknown_to_the_api_is_a_warning(served, tmp_path):
    path = tmp_path / "prefect.yaml"
    path.write_text("deployments:\n  - {name: never-deployed, entrypoint: f.py:x}\n")
    report = status(prefect_yaml=path, names=["never-deployed"])
    assert [(f.kind, f.deployment) for f in report.warnings] == [("not_deployed", "never-deployed")]


# --- serve runs the schedule; status lists the runs ---------------------------------------------


def test_status_lists_the_completed_runs_of_the_served_deployment(served):
    def completed() -> StatusReport | None:
        report = status(names=["tick-10s"], runs=3)
        runs = report.deployments[0].runs if report.deployments else ()
        return report if any(run.state_type == "COMPLETED" for run in runs) else None

    report = _wait(completed, 90, "a completed scheduled run", served.log)
    [deployment] = report.deployments
    assert deployment.name == "retrain/tick-10s"
    assert not deployment.paused and deployment.work_pool is None
    assert deployment.schedules[0].description == "every 10s (UTC)"
    assert deployment.next_run is not None and deployment.next_run.expected_start > report.checked_at
    run = next(run for run in deployment.runs if run.state_type == "COMPLETED")
    assert run.auto_scheduled and run.run_count == 1
    assert run.parameters["dataset"] == "tiny" and run.parameters["retrain_on_new_data"] is False
    assert run.start is not None and run.duration_s is not None and run.duration_s >= 0

    code, out = _status_cli("-n", "tick-10s", "--runs", "3")
    assert code == 0, out
    assert "retrain/tick-10s  [active" in out
    assert "Completed" in out and "dataset=tiny" in out
    assert out.rstrip().endswith("healthy")


def test_ctrl_c_pauses_the_served_deployment_and_stops_the_local_server(served):
    served.process.send_signal(signal.SIGINT)
    assert served.process.wait(timeout=90) == 0, served.log.read_text()[-3000:]
    assert not (served.home / "prefect" / "local-server.json").exists()
    host, port = served.api_url.removeprefix("http://").split("/")[0].split(":")
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=5).close()
    # The server is gone, so read its database: the runner paused the deployment before it stopped.
    with contextlib.closing(sqlite3.connect(served.home / "prefect" / "prefect.db")) as db:
        [(paused,)] = db.execute("SELECT paused FROM deployment WHERE name = 'tick-10s'").fetchall()
    assert paused == 1
