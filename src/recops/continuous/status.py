"""`recops schedule status`: what the Prefect API recorded for each deployment, against its schedules.

:func:`status` reads each deployment's schedules and recent runs from the Prefect API into a
:class:`StatusReport`, and adds a :class:`Finding` for each schedule that is not producing runs
(the checks are in :mod:`recops.continuous.status_findings`; the text is made by
:mod:`recops.continuous.status_render`).

Prefect reads its settings when first imported, so every function here calls
:func:`recops.paths.use_local_prefect_home` before importing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recops.continuous import status_findings as check
from recops.continuous.prefect_server import running_local_server, use_prefect_api
from recops.continuous.schedules import ScheduleError, load_deployments
from recops.continuous.status_findings import WARNING, Finding, Observation
from recops.continuous.status_queries import (
    api_url_setting,
    describe_schedule,
    last_fire_time,
    run_filter,
    to_utc,
)
from recops.paths import use_local_prefect_home
from recops.redact import redact

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun
    from prefect.client.schemas.responses import DeploymentResponse

DEFAULT_GRACE = timedelta(minutes=10)
TEMPORARY_API = "temporary API over the stored history; no Prefect server is running"


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
    on_progress: Callable[[str], None] | None = None,
) -> StatusReport:
    """Recent runs of each deployment and a WARNING for each schedule that is not producing runs.

    The API is ``api_url``, else ``PREFECT_API_URL``, else the local server of a running
    `recops schedule serve`, else Prefect's temporary API over the same database (it reads the
    history but fires nothing, which is itself a warning for active schedules). Deployments are
    all those the API knows (or those named in ``names``, as ``deployment`` or ``flow/deployment``);
    a deployment of ``prefect_yaml`` (among ``names``, when given) that the API does not know is a
    warning. ``grace`` is how late a run may start before it counts as missed or late.
    ``on_progress`` hears of a slow start (the temporary API).
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
        if on_progress is not None:  # it takes 10-20 s to start, and says nothing meanwhile
            on_progress("no Prefect server is running: starting Prefect's temporary API over the history...")
    with use_prefect_api(api_url) if api_url else contextlib.nullcontext():
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
                        check.not_deployed(name, "named in prefect.yaml but unknown to this Prefect API")
                    )
            for name in names or []:
                if name not in known and name not in expected:
                    findings.append(
                        check.not_deployed(name, "no deployment of this name in this Prefect API")
                    )
            results = []
            for full_name, deployment in selected:
                result, found = await _deployment_status(client, full_name, deployment, n_runs, grace, now)
                results.append(result)
                findings.extend(found)
    except httpx.HTTPError as exc:  # connection refused, timeouts, 5xx: say which API
        raise ScheduleError(f"the Prefect API at {redact(str(api_url_setting()))} failed: {exc}") from exc
    if source == TEMPORARY_API and any(not d.paused and any(s.active for s in d.schedules) for d in results):
        findings.insert(0, check.no_scheduler())
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
    """What the API recorded for one deployment, and what is wrong with it."""
    seen, recent = await _observe(client, name, deployment, n_runs, now - grace, now)
    per_schedule = [check.schedule_inactive, check.missed]
    per_deployment = [check.paused, check.late, check.no_upcoming, check.not_ready, check.last_run_failed]
    found = [finding(seen, schedule) for schedule in seen.schedules for finding in per_schedule]
    found += [finding(seen) for finding in per_deployment]
    result = DeploymentStatus(
        name=name,
        id=str(deployment.id),
        paused=seen.paused,
        readiness=seen.readiness,
        work_pool=seen.work_pool,
        schedules=seen.schedules,
        runs=recent,
        next_run=seen.upcoming,
    )
    return result, [f for f in found if f is not None]


async def _observe(
    client: PrefectClient,
    name: str,
    deployment: DeploymentResponse,
    n_runs: int,
    cutoff: datetime,
    now: datetime,
) -> tuple[Observation, tuple[RunInfo, ...]]:
    """The deployment's schedules and runs as of ``now`` (runs due before ``cutoff`` are overdue),
    and its ``n_runs`` most recent runs."""
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    async def runs(limit: int, sort: FlowRunSort, states: list[StateType] | None = None, **when: datetime):
        found = await client.read_flow_runs(
            flow_run_filter=run_filter(deployment.id, states, **when), sort=sort, limit=limit
        )
        return tuple(_run_info(run, now) for run in found)

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
    schedules, ran_since_due = [], {}
    for schedule in deployment.schedules:
        since = max((t for t in (deployment.created, schedule.created) if t is not None), default=None)
        last_expected = await last_fire_time(schedule.schedule, since, cutoff) if since is not None else None
        info = ScheduleInfo(
            id=str(schedule.id),
            description=describe_schedule(schedule.schedule),
            active=schedule.active,
            in_force_since=to_utc(since),
            last_expected=last_expected,
        )
        schedules.append(info)
        if info.active and not deployment.paused and info.last_expected is not None:
            after = info.last_expected - timedelta(seconds=1)
            since_due = await runs(1, FlowRunSort.EXPECTED_START_TIME_DESC, after_=after, before_=now)
            ran_since_due[info.id] = bool(since_due)
    seen = Observation(
        name=name,
        paused=deployment.paused,
        readiness=deployment.status.value if deployment.status is not None else None,
        work_pool=deployment.work_pool_name,
        schedules=tuple(schedules),
        ran_since_due=ran_since_due,
        late=late,
        upcoming=upcoming[0] if upcoming else None,
        last_finished=finished[0] if finished else None,
        cutoff=cutoff,
    )
    return seen, recent


def _run_info(run: FlowRun, now: datetime) -> RunInfo:
    start, end = to_utc(run.start_time), to_utc(run.end_time)
    duration = ((end or now) - start).total_seconds() if start is not None else None
    return RunInfo(
        id=str(run.id),
        name=run.name,
        state=run.state_name or "?",
        state_type=run.state_type.value if run.state_type is not None else "?",
        expected_start=to_utc(run.expected_start_time),
        start=start,
        end=end,
        duration_s=duration,
        run_count=run.run_count,
        parameters=dict(run.parameters),
        auto_scheduled=bool(run.auto_scheduled),
    )
