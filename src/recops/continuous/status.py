"""Prefect schedules of the retraining flow: read prefect.yaml, serve its deployments, check they run.

``prefect.yaml`` is the one description of the deployments: ``prefect deploy --all`` registers it
with a server and a work pool, :func:`serve` runs the same deployments from this checkout, and
:func:`status` compares what the Prefect API recorded with what the schedules promised.

Why :func:`status` exists: a schedule can stop without an error anywhere. Nothing fires on a
temporary (ephemeral) API, a paused deployment or an inactive schedule creates no runs, runs that
no worker picks up wait in ``Late``, and Prefect users report schedulers that silently stopped
creating runs (PrefectHQ/prefect#11790, #17764). Each of these becomes a WARNING with what to do.

Prefect reads its settings when first imported, so every function here calls
:func:`recops.paths.use_local_prefect_home` before importing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recops.localproc import free_port, port_error, stop_group
from recops.paths import atomic_path, prefect_home, use_local_prefect_home

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun
    from prefect.client.schemas.responses import DeploymentResponse
    from prefect.deployments.runner import RunnerDeployment

DEFAULT_PREFECT_YAML = "prefect.yaml"
DEFAULT_GRACE = timedelta(minutes=10)
DEFAULT_PORT = 4200  # Prefect's own default, so `prefect` commands and bookmarks work unchanged
SERVER_STATE_FILE = "local-server.json"
SERVER_LOG_FILE = "server.log"
SERVER_START_TIMEOUT_S = 120.0  # first start runs the database migrations: ~20 s on 2 busy cores

WARNING = "warning"
NOTE = "note"
TEMPORARY_API = "temporary API over the stored history; no Prefect server is running"


class ScheduleError(ValueError):
    """prefect.yaml or the Prefect API is not usable as asked; the message says why and what to do."""


# --- prefect.yaml -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleSpec:
    """One schedule of a deployment as written in prefect.yaml (exactly one of cron/interval/rrule)."""

    cron: str | None = None
    interval_seconds: float | None = None
    rrule: str | None = None
    timezone: str | None = None
    active: bool = True
    parameters: dict[str, Any] = field(default_factory=dict)
    slug: str | None = None

    def describe(self) -> str:
        if self.cron is not None:
            what = f"cron {self.cron}"
        elif self.interval_seconds is not None:
            what = f"every {_format_duration(self.interval_seconds)}"
        else:
            what = f"rrule {self.rrule}"
        return f"{what} ({self.timezone or 'UTC'})"


@dataclass(frozen=True)
class DeploymentSpec:
    """A deployment of prefect.yaml: what :func:`serve` serves and :func:`status` expects."""

    name: str
    entrypoint: str  # path/to/file.py:function, relative to project_dir
    project_dir: Path  # the folder of prefect.yaml: Prefect resolves entrypoints from there
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: tuple[ScheduleSpec, ...] = ()
    work_pool: str | None = None
    tags: tuple[str, ...] = ()
    description: str | None = None

    @property
    def entrypoint_path(self) -> str:
        """The entrypoint with an absolute file path, loadable from any working directory."""
        file, function = self.entrypoint.rsplit(":", 1)
        return f"{(self.project_dir / file).resolve()}:{function}"


def load_deployments(path: str | Path = DEFAULT_PREFECT_YAML) -> list[DeploymentSpec]:
    """Parse the deployments of a prefect.yaml (name, entrypoint, parameters, schedules, work pool).

    Reads the keys that `prefect deploy` reads, with the same meaning, so that serving locally and
    deploying to a work pool cannot disagree; errors name the deployment and the key.
    """
    import yaml  # a dependency of prefect

    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ScheduleError(f"{path}: no such file (the project's prefect.yaml is at the repo root)") from exc
    except yaml.YAMLError as exc:
        raise ScheduleError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("deployments"), list):
        raise ScheduleError(f"{path}: expected a mapping with a `deployments:` list")
    specs = [_deployment_spec(raw, index, path) for index, raw in enumerate(document["deployments"])]
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ScheduleError(f"{path}: deployment names must be unique; repeated: {', '.join(duplicates)}")
    return specs


def _deployment_spec(raw: Any, index: int, path: Path) -> DeploymentSpec:
    where = f"{path}: deployments[{index}]"
    if not isinstance(raw, dict):
        raise ScheduleError(f"{where} must be a mapping")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ScheduleError(f"{where} needs a `name`")
    where = f"{path}: deployment {name!r}"
    entrypoint = raw.get("entrypoint")
    if not isinstance(entrypoint, str) or ":" not in entrypoint:
        raise ScheduleError(f"{where}: `entrypoint` must be path/to/file.py:flow_function")
    parameters = raw.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ScheduleError(f"{where}: `parameters` must be a mapping")
    if "schedule" in raw:
        raise ScheduleError(f"{where}: use `schedules:` (a list); Prefect 3 dropped `schedule:`")
    raw_schedules = raw.get("schedules") or []
    if not isinstance(raw_schedules, list):
        raise ScheduleError(f"{where}: `schedules` must be a list")
    work_pool = raw.get("work_pool") or {}
    if not isinstance(work_pool, dict):
        raise ScheduleError(f"{where}: `work_pool` must be a mapping with a `name`")
    tags = raw.get("tags") or []
    if isinstance(tags, str):
        tags = [tags]
    return DeploymentSpec(
        name=name,
        entrypoint=entrypoint,
        project_dir=path.resolve().parent,
        parameters=dict(parameters),
        schedules=tuple(_schedule_spec(s, f"{where}: schedules[{i}]") for i, s in enumerate(raw_schedules)),
        work_pool=work_pool.get("name"),
        tags=tuple(str(tag) for tag in tags),
        description=raw.get("description"),
    )


def _schedule_spec(raw: Any, where: str) -> ScheduleSpec:
    if not isinstance(raw, dict):
        raise ScheduleError(f"{where} must be a mapping")
    kinds = [key for key in ("cron", "interval", "rrule") if raw.get(key) is not None]
    if len(kinds) != 1:
        raise ScheduleError(f"{where}: give exactly one of cron, interval (seconds) or rrule")
    interval = raw.get("interval")
    if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int | float)):
        raise ScheduleError(f"{where}: `interval` is a number of seconds, not {interval!r}")
    if interval is not None and interval <= 0:
        raise ScheduleError(f"{where}: `interval` must be positive")
    active = raw.get("active", True)
    if not isinstance(active, bool):
        raise ScheduleError(f"{where}: `active` must be true or false")
    parameters = raw.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ScheduleError(f"{where}: `parameters` must be a mapping")
    return ScheduleSpec(
        cron=raw.get("cron"),
        interval_seconds=None if interval is None else float(interval),
        rrule=raw.get("rrule"),
        timezone=raw.get("timezone"),
        active=active,
        parameters=dict(parameters),
        slug=raw.get("slug"),
    )


def _select(specs: list[DeploymentSpec], names: Sequence[str] | None) -> list[DeploymentSpec]:
    if not names:
        return specs
    known = {spec.name for spec in specs}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ScheduleError(
            f"no deployment named {', '.join(unknown)} in prefect.yaml (it has {', '.join(sorted(known))})"
        )
    return [spec for spec in specs if spec.name in names]


# --- A local Prefect server -------------------------------------------------------------------


@dataclass(frozen=True)
class LocalServer:
    api_url: str
    ui_url: str
    pid: int
    log_path: Path


def _server_state_path() -> Path:
    return prefect_home() / SERVER_STATE_FILE


def _healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def running_local_server() -> str | None:
    """The API URL of the server that `recops schedule serve` started, when it is up."""
    try:
        state = json.loads(_server_state_path().read_text())
    except (FileNotFoundError, ValueError):
        return None
    api_url = state.get("api_url")
    return api_url if isinstance(api_url, str) and _healthy(api_url) else None


@contextlib.contextmanager
def local_server(port: int | None = None, timeout: float = SERVER_START_TIMEOUT_S) -> Iterator[LocalServer]:
    """Run `prefect server start` on 127.0.0.1 for the duration of the block.

    Why a server and not Prefect's temporary API: the temporary API runs without the scheduler
    service, so deployments served against it never get their scheduled runs (Prefect itself
    warns "Cannot schedule flows on an ephemeral server"). The database is the default one under
    PREFECT_HOME (``$RECOPS_HOME/prefect/prefect.db``), so run history outlives the server and
    `recops schedule status` reads it later. The server runs in its own session, so Ctrl-C reaches
    only the caller, which can still pause its deployments through the API before the server stops.
    """
    use_local_prefect_home()
    if (existing := running_local_server()) is not None:
        raise ScheduleError(
            f"a local Prefect server of recops is already running at {existing} (see "
            f"{_server_state_path()}); stop that `recops schedule serve` first, or serve against it with "
            f"PREFECT_API_URL={existing}"
        )
    if port is None:
        port = DEFAULT_PORT if port_error(DEFAULT_PORT) is None else free_port()
    elif port_error(port) is not None:
        raise ScheduleError(f"port {port} on 127.0.0.1 is in use; choose another with --port")
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / SERVER_LOG_FILE
    api_url = f"http://127.0.0.1:{port}/api"
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(api_url, timeout=1.0):
            if process.poll() is not None:
                raise ScheduleError(
                    f"`prefect server start` exited with code {process.returncode}; "
                    f"its log ends with:\n{_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise ScheduleError(
                    f"the Prefect server on port {port} was not healthy after {timeout:.0f} s; see {log_path}"
                )
            time.sleep(0.25)
        state = {"api_url": api_url, "server_pid": process.pid, "owner_pid": os.getpid()}
        with atomic_path(_server_state_path()) as temporary:
            temporary.write_text(json.dumps(state))
        yield LocalServer(
            api_url=api_url, ui_url=api_url.removesuffix("/api"), pid=process.pid, log_path=log_path
        )
    finally:
        _server_state_path().unlink(missing_ok=True)
        # SIGINT first: a clean uvicorn shutdown of the server's own process group
        stop_group(process, ((signal.SIGINT, 20.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)))


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


@contextlib.contextmanager
def _prefect_api(api_url: str) -> Iterator[None]:
    """Point this process, and the flow-run processes it starts, at ``api_url``."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            yield
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous


# --- serve ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """Make SIGTERM (a supervisor, `kill`) unwind through ``finally``, so the local server stops too.

    Python's default would end the process on the spot and leave the server running in its own
    session. Prefect's runner installs its own graceful handler while it runs.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def exit_now(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def runner_deployments(specs: Sequence[DeploymentSpec]) -> list[RunnerDeployment]:
    """The deployments of ``specs`` as Prefect builds them for `serve`, flows loaded by Prefect."""
    use_local_prefect_home()
    from prefect.flows import load_flow_from_entrypoint

    deployments = []
    for spec in specs:
        try:
            flow = load_flow_from_entrypoint(spec.entrypoint_path, use_placeholder_flow=False)
        except Exception as exc:  # ScriptError, MissingFlowError, or the module's own import error
            raise ScheduleError(f"deployment {spec.name!r}: cannot load {spec.entrypoint}: {exc}") from exc
        deployments.append(
            flow.to_deployment(
                name=spec.name,
                schedules=[_prefect_schedule(s) for s in spec.schedules],
                parameters=spec.parameters,
                description=spec.description,
                tags=list(spec.tags),
            )
        )
    return deployments


def _prefect_schedule(spec: ScheduleSpec) -> Any:
    from prefect.schedules import Cron, Interval, RRule

    common = {
        "timezone": spec.timezone,
        "active": spec.active,
        "parameters": spec.parameters,
        "slug": spec.slug,
    }
    if spec.cron is not None:
        return Cron(spec.cron, **common)
    if spec.interval_seconds is not None:
        return Interval(timedelta(seconds=spec.interval_seconds), **common)
    return RRule(spec.rrule, **common)


def serve(
    prefect_yaml: str | Path = DEFAULT_PREFECT_YAML,
    *,
    names: Sequence[str] | None = None,
    port: int | None = None,
    limit: int | None = 1,
    echo: Callable[[str], None] = print,
) -> None:
    """Serve the deployments of prefect.yaml from this process until Ctrl-C.

    With ``PREFECT_API_URL`` set (a shared server or Prefect Cloud) the deployments register
    there. Without it, a local server is started for the duration (see :func:`local_server`): on
    Prefect's temporary API the schedules would never fire. On Ctrl-C Prefect pauses the served
    deployments, so `recops schedule status` reports them as paused rather than silently idle.
    ``limit`` caps flow runs at once: on one machine two trainings would only slow each other.
    """
    use_local_prefect_home()
    specs = _select(load_deployments(prefect_yaml), names)
    deployments = runner_deployments(specs)  # fail on a broken entrypoint before starting anything
    import prefect
    from prefect.settings import get_current_settings

    with contextlib.ExitStack() as stack:
        stack.enter_context(_sigterm_exits())
        configured = get_current_settings().api.url
        if configured:
            echo(f"Prefect API: {configured} (PREFECT_API_URL)")
            if ui_url := get_current_settings().ui_url:
                echo(f"Prefect UI:  {ui_url}")
        else:
            echo("PREFECT_API_URL is not set: starting a local Prefect server (its scheduler fires runs)...")
            server = stack.enter_context(local_server(port))
            stack.enter_context(_prefect_api(server.api_url))
            echo(f"Prefect API: {server.api_url} (local server, pid {server.pid}, log {server.log_path})")
            echo(f"Prefect UI:  {server.ui_url}")
        for spec in specs:
            when = ", ".join(s.describe() for s in spec.schedules) or "no schedule"
            echo(f"serving {spec.name}: {when}; parameters {json.dumps(spec.parameters)}")
        echo("Ctrl-C stops serving and pauses these deployments.")
        prefect.serve(*deployments, limit=limit)


# --- status -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    """One flow run of a deployment, as status shows it."""

    id: str
    name: str
    state: str  # the state's name: Completed, Failed, Late, Retrying, ...
    state_type: str  # COMPLETED, FAILED, SCHEDULED, ...
    expected_start: datetime | None
    start: datetime | None
    end: datetime | None
    duration_s: float | None
    run_count: int  # attempts so far: more than 1 means Prefect retried it
    parameters: dict[str, Any]
    auto_scheduled: bool


@dataclass(frozen=True)
class ScheduleInfo:
    id: str
    description: str
    active: bool
    in_force_since: datetime | None  # runs are expected from here on
    last_expected: datetime | None  # most recent fire time before now - grace, since in_force_since


@dataclass(frozen=True)
class Finding:
    """Something status noticed: a ``warning`` (exit code 1) or a ``note``, with what to do."""

    severity: str
    kind: str  # not_deployed, paused, schedule_inactive, missed, late, no_upcoming, failed, ...
    deployment: str | None
    message: str
    hint: str


@dataclass(frozen=True)
class DeploymentStatus:
    name: str  # flow/deployment
    id: str
    paused: bool
    readiness: str | None  # READY when a runner or worker polled for its runs recently
    work_pool: str | None
    schedules: tuple[ScheduleInfo, ...]
    runs: tuple[RunInfo, ...]  # most recent first, expected to start before now
    next_run: RunInfo | None


@dataclass(frozen=True)
class StatusReport:
    api_url: str
    api_source: str  # where the API URL came from
    checked_at: datetime
    grace_s: float
    deployments: tuple[DeploymentStatus, ...]
    findings: tuple[Finding, ...]

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == WARNING)

    @property
    def healthy(self) -> bool:
        return not self.warnings

    def to_dict(self) -> dict[str, Any]:
        return {**_jsonable(dataclasses.asdict(self)), "healthy": self.healthy}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def status(
    *,
    api_url: str | None = None,
    prefect_yaml: str | Path | None = None,
    names: Sequence[str] | None = None,
    runs: int = 5,
    grace: timedelta = DEFAULT_GRACE,
    now: datetime | None = None,
) -> StatusReport:
    """Recent runs of each deployment and a WARNING for each schedule that is not producing runs.

    The API is ``api_url``, else ``PREFECT_API_URL``, else the local server of a running
    `recops schedule serve`, else Prefect's temporary API over the same database (it reads the
    history but fires nothing, which is itself a warning for active schedules). Deployments are
    all those the API knows (or those named in ``names``, as ``deployment`` or ``flow/deployment``);
    a deployment of ``prefect_yaml`` (among ``names``, when given) that the API does not know is a
    warning. ``grace`` is how late a run may start before it counts as missed or late.
    """
    if runs < 1:
        raise ScheduleError("runs must be at least 1")
    use_local_prefect_home()
    expected = [spec.name for spec in load_deployments(prefect_yaml)] if prefect_yaml is not None else []
    if names:
        expected = [name for name in expected if name in names]
    now = now or datetime.now(UTC)
    from prefect.settings import get_current_settings

    if api_url:
        source = "given"
    elif configured := get_current_settings().api.url:
        api_url, source = configured, "PREFECT_API_URL"
    elif local := running_local_server():
        api_url, source = local, "local server of `recops schedule serve`"
    else:
        source = TEMPORARY_API
    with _prefect_api(api_url) if api_url else contextlib.nullcontext():
        return asyncio.run(_status(source, expected, names, runs, grace, now))


async def _status(
    source: str,
    expected: list[str],
    names: Sequence[str] | None,
    n_runs: int,
    grace: timedelta,
    now: datetime,
) -> StatusReport:
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterId

    findings: list[Finding] = []
    try:
        async with get_client() as client:
            api_url = str(client.api_url).rstrip("/")
            deployments = await client.read_deployments(limit=200)
            flow_ids = list({d.flow_id for d in deployments})
            flows = await client.read_flows(flow_filter=FlowFilter(id=FlowFilterId(any_=flow_ids)))
            flow_names = {flow.id: flow.name for flow in flows}
            selected = [
                (f"{flow_names.get(d.flow_id, '?')}/{d.name}", d)
                for d in deployments
                if not names or d.name in names or f"{flow_names.get(d.flow_id, '?')}/{d.name}" in names
            ]
            selected.sort(key=lambda pair: pair[0])
            known = {d.name for _, d in selected} | {full for full, _ in selected}
            for name in expected:
                if name not in known:
                    findings.append(
                        _not_deployed(name, "named in prefect.yaml but unknown to this Prefect API")
                    )
            for name in names or []:
                if name not in known and name not in expected:
                    findings.append(_not_deployed(name, "no deployment of this name in this Prefect API"))
            results = []
            for full_name, deployment in selected:
                result, found = await _deployment_status(client, full_name, deployment, n_runs, grace, now)
                results.append(result)
                findings.extend(found)
    except httpx.HTTPError as exc:  # connection refused, timeouts, 5xx: say which API
        raise ScheduleError(f"the Prefect API at {_api_url_setting()} failed: {exc}") from exc
    if source == TEMPORARY_API and any(not d.paused and any(s.active for s in d.schedules) for d in results):
        findings.insert(0, _no_scheduler())
    return StatusReport(
        api_url=api_url,
        api_source=source,
        checked_at=now,
        grace_s=grace.total_seconds(),
        deployments=tuple(results),
        findings=tuple(findings),
    )


async def _deployment_status(
    client: PrefectClient,
    name: str,
    deployment: DeploymentResponse,
    n_runs: int,
    grace: timedelta,
    now: datetime,
) -> tuple[DeploymentStatus, list[Finding]]:
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    async def runs(limit: int, sort: FlowRunSort, states: list[StateType] | None = None, **when: datetime):
        return await client.read_flow_runs(
            flow_run_filter=_run_filter(deployment.id, states, **when), sort=sort, limit=limit
        )

    cutoff = now - grace
    recent = await runs(n_runs, FlowRunSort.EXPECTED_START_TIME_DESC, before_=now)
    upcoming = await runs(1, FlowRunSort.EXPECTED_START_TIME_ASC, [StateType.SCHEDULED], after_=now)
    late = await runs(
        100, FlowRunSort.EXPECTED_START_TIME_ASC, [StateType.SCHEDULED, StateType.PENDING], before_=cutoff
    )
    finished = await runs(
        1,
        FlowRunSort.START_TIME_DESC,
        [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED],
    )
    pool = deployment.work_pool_name
    runner = (
        f"a worker of pool {pool!r} (prefect worker start --pool {pool})"
        if pool
        else "`recops schedule serve` (or the process that served it)"
    )

    findings: list[Finding] = []
    schedules = []
    active = [s for s in deployment.schedules if s.active]
    for schedule in deployment.schedules:
        since = max((t for t in (deployment.created, schedule.created) if t is not None), default=None)
        last_expected = await _last_fire_time(schedule.schedule, since, cutoff) if since is not None else None
        info = ScheduleInfo(
            id=str(schedule.id),
            description=_describe(schedule.schedule),
            active=schedule.active,
            in_force_since=_utc(since),
            last_expected=last_expected,
        )
        schedules.append(info)
        if not schedule.active:
            findings.append(
                Finding(
                    WARNING,
                    "schedule_inactive",
                    name,
                    f"schedule {info.description} is paused (inactive): it creates no runs",
                    f"`prefect deployment schedule resume '{name}' {schedule.id}`, or in the Prefect UI",
                )
            )
        elif not deployment.paused and last_expected is not None:
            after = last_expected - timedelta(seconds=1)
            if not await runs(1, FlowRunSort.EXPECTED_START_TIME_DESC, after_=after, before_=now):
                findings.append(_missed(name, info, last_expected))

    if deployment.paused:
        findings.append(
            Finding(
                WARNING,
                "paused",
                name,
                "deployment is paused: none of its schedules creates runs"
                + (" (`recops schedule serve` pauses what it served when it stops)" if not pool else ""),
                "restart `recops schedule serve` (it resumes what it serves)"
                if not pool
                else "resume it in the Prefect UI, or run `prefect deploy --all` again (it deploys unpaused)",
            )
        )
    elif active:
        if late:
            first = late[0]
            findings.append(
                Finding(
                    WARNING,
                    "late",
                    name,
                    f"{len(late)}{'+' if len(late) == 100 else ''} run(s) due before "
                    f"{_format_time(cutoff)} have not started, the oldest {first.name} due "
                    f"{_format_time(_utc(first.expected_start_time))} ({first.state_name})",
                    f"nothing is executing this deployment's runs: start {runner}",
                )
            )
        if not upcoming:
            findings.append(
                Finding(
                    WARNING,
                    "no_upcoming",
                    name,
                    "no future run is scheduled although a schedule is active: the API's scheduler "
                    "service is not creating runs",
                    "use a Prefect server with its scheduler (`prefect server start`, or `recops schedule "
                    "serve` without PREFECT_API_URL); a deployment changed in the last seconds may simply "
                    "not be scheduled yet",
                )
            )
        readiness = deployment.status.value if deployment.status is not None else None
        if readiness == "NOT_READY":
            findings.append(
                Finding(
                    NOTE,
                    "not_ready",
                    name,
                    "no runner or worker has polled for this deployment's runs lately",
                    f"scheduled runs will wait until {runner} runs",
                )
            )
    if finished and finished[0].state_type in (StateType.FAILED, StateType.CRASHED):
        last = finished[0]
        findings.append(
            Finding(
                WARNING,
                "failed",
                name,
                f"the last finished run {last.name} ended {last.state_name} "
                f"({_format_time(_utc(last.end_time or last.start_time))})",
                f"see its logs: `prefect flow-run logs {last.id}`",
            )
        )
    result = DeploymentStatus(
        name=name,
        id=str(deployment.id),
        paused=deployment.paused,
        readiness=deployment.status.value if deployment.status is not None else None,
        work_pool=pool,
        schedules=tuple(schedules),
        runs=tuple(_run_info(run, now) for run in recent),
        next_run=_run_info(upcoming[0], now) if upcoming else None,
    )
    return result, findings


def _api_url_setting() -> str:
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or "(temporary server)"


def _run_filter(deployment_id: Any, states: list[Any] | None = None, **when: datetime) -> Any:
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )

    criteria: dict[str, Any] = {"deployment_id": FlowRunFilterDeploymentId(any_=[deployment_id])}
    if states is not None:
        criteria["state"] = FlowRunFilterState(type=FlowRunFilterStateType(any_=states))
    if when:
        criteria["expected_start_time"] = FlowRunFilterExpectedStartTime(**when)
    return FlowRunFilter(**criteria)


async def _last_fire_time(schedule: Any, since: datetime, until: datetime) -> datetime | None:
    """The latest time in [since, until] at which ``schedule`` fires, by the server's own rules.

    The server's schedule classes compute the times the scheduler uses (time zones, DST, day_or),
    but only forwards and at most 1,000 at a time, so the window grows until it holds one.
    """
    from prefect.server.schemas import schedules as server_schedules

    server_class = getattr(server_schedules, type(schedule).__name__, None)
    if server_class is None:  # NoSchedule, or a type this Prefect does not know
        return None
    server_schedule = server_class.model_validate(schedule.model_dump())
    since, until = _utc(since), _utc(until)
    if since is None or until is None or since > until:
        return None
    for window in (timedelta(minutes=1), timedelta(hours=1), timedelta(days=1), timedelta(days=35),
                   timedelta(days=400), timedelta(days=3700)):  # fmt: skip
        start = max(since, until - window)
        dates = await server_schedule.get_dates(n=1000, start=start, end=until)
        if dates:
            return _utc(dates[-1])
        if start == since:
            return None
    return None


def _describe(schedule: Any) -> str:
    timezone = getattr(schedule, "timezone", None) or "UTC"
    if cron := getattr(schedule, "cron", None):
        return f"cron {cron} ({timezone})"
    if (interval := getattr(schedule, "interval", None)) is not None:
        return f"every {_format_duration(interval.total_seconds())} ({timezone})"
    if rrule := getattr(schedule, "rrule", None):
        return f"rrule {rrule} ({timezone})"
    return type(schedule).__name__


def _run_info(run: FlowRun, now: datetime) -> RunInfo:
    start, end = _utc(run.start_time), _utc(run.end_time)
    duration = ((end or now) - start).total_seconds() if start is not None else None
    return RunInfo(
        id=str(run.id),
        name=run.name,
        state=run.state_name or "?",
        state_type=run.state_type.value if run.state_type is not None else "?",
        expected_start=_utc(run.expected_start_time),
        start=start,
        end=end,
        duration_s=duration,
        run_count=run.run_count,
        parameters=dict(run.parameters),
        auto_scheduled=bool(run.auto_scheduled),
    )


def _utc(value: datetime | None) -> datetime | None:
    """A plain ``datetime`` in UTC (Prefect hands out its own DateTime subclasses)."""
    if value is None:
        return None
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)


def _not_deployed(name: str, what: str) -> Finding:
    return Finding(
        WARNING,
        "not_deployed",
        name,
        f"{what}: it has never been served or deployed here",
        "`recops schedule serve`, or `prefect deploy --all` with a worker for its pool",
    )


def _no_scheduler() -> Finding:
    return Finding(
        WARNING,
        "no_scheduler",
        None,
        "no Prefect server is running (PREFECT_API_URL unset, no `recops schedule serve`): this read "
        "the stored history through a temporary API, and nothing fires the active schedules",
        "start `recops schedule serve`, or set PREFECT_API_URL to a Prefect server or Cloud",
    )


def _missed(name: str, schedule: ScheduleInfo, due: datetime) -> Finding:
    return Finding(
        WARNING,
        "missed",
        name,
        f"no run exists for {_format_time(due)} ({schedule.description}) nor since: the scheduler "
        "did not create it (server down, scheduler service off, or a schedule that silently stopped: "
        "PrefectHQ/prefect#11790, #17764)",
        f"check the server's scheduler; run the missed cycle now with `prefect deployment run '{name}'`",
    )


# --- Rendering --------------------------------------------------------------------------------


def render_status(report: StatusReport) -> str:
    """The report as text: per deployment its schedules, next run and last runs; warnings last."""
    lines = [
        f"Prefect API {report.api_url} ({report.api_source}); checked {_format_time(report.checked_at)}, "
        f"grace {_format_duration(report.grace_s)}"
    ]
    if not report.deployments:
        lines.append("no deployments")
    for deployment in report.deployments:
        flags = ["PAUSED" if deployment.paused else "active"]
        if deployment.readiness:
            flags.append(deployment.readiness.lower().replace("_", " "))
        flags.append(f"pool {deployment.work_pool}" if deployment.work_pool else "served")
        lines.append("")
        lines.append(f"{deployment.name}  [{', '.join(flags)}]")
        for schedule in deployment.schedules:
            state = "active" if schedule.active else "INACTIVE"
            due = f", last due {_format_time(schedule.last_expected)}" if schedule.last_expected else ""
            lines.append(f"  schedule {schedule.description}: {state}{due}")
        if deployment.next_run is not None:
            lines.append(f"  next run {_format_time(deployment.next_run.expected_start)}")
        if not deployment.runs:
            lines.append("  no runs yet")
        for run in deployment.runs:
            lines.append("  " + _render_run(run))
    for finding in report.findings:
        lines.append("")
        where = f" {finding.deployment}" if finding.deployment else ""
        lines.append(f"{finding.severity.upper()}{where}: {finding.message}")
        lines.append(f"  -> {finding.hint}")
    lines.append("")
    count = len(report.warnings)
    lines.append("healthy" if report.healthy else f"{count} warning{'s' if count != 1 else ''}")
    return "\n".join(lines)


def _render_run(run: RunInfo) -> str:
    when = _format_time(run.start or run.expected_start)
    parts = [f"{when}  {run.state:<10}"]
    if run.duration_s is not None:
        parts.append(f"{'running ' if run.end is None else ''}{_format_duration(run.duration_s)}")
    if run.run_count > 1:
        parts.append(f"attempts {run.run_count}")
    shown = {key: value for key, value in run.parameters.items() if value is not None}
    if shown:
        parts.append(" ".join(f"{key}={value}" for key, value in shown.items()))
    parts.append(run.name + (" (scheduled)" if run.auto_scheduled else ""))
    return "  ".join(parts)


def _format_time(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _format_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 1 or seconds == 0 else f"{seconds:.1f}s"
    minutes, secs = divmod(math.floor(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"
