"""What `recops schedule status` warns about: one function per finding, facts in, Finding or None out.

A schedule can stop without an error anywhere. Nothing fires on a temporary (ephemeral) API, a
paused deployment or an inactive schedule creates no runs, runs that no worker picks up wait in
``Late``, and Prefect users report schedulers that silently stopped creating runs
(PrefectHQ/prefect#11790, #17764). Each check here turns one of these into a WARNING (or a NOTE)
with what to do. They read only an :class:`Observation` that :mod:`recops.continuous.status` made
from the Prefect API, never the API itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from recops.continuous.status_render import format_time

if TYPE_CHECKING:
    from recops.continuous.status import RunInfo, ScheduleInfo

WARNING = "warning"
NOTE = "note"


@dataclass(frozen=True)
class Finding:
    """Something status noticed: a ``warning`` (exit code 1) or a ``note``, with what to do."""

    severity: str
    kind: str  # not_deployed, paused, schedule_inactive, missed, late, no_upcoming, failed, ...
    deployment: str | None
    message: str
    hint: str


@dataclass(frozen=True)
class Observation:
    """What the Prefect API recorded for one deployment when status ran; runs due before cutoff are late."""

    name: str  # flow/deployment
    paused: bool
    readiness: str | None  # READY, NOT_READY: whether a runner or worker polled lately
    work_pool: str | None
    schedules: tuple[ScheduleInfo, ...]
    ran_since_due: Mapping[str, bool]  # schedule id -> a run exists since its last due time (when checked)
    late: tuple[RunInfo, ...]  # scheduled or pending runs due before cutoff, oldest first (at most 100)
    upcoming: RunInfo | None  # the next scheduled run
    last_finished: RunInfo | None
    cutoff: datetime  # runs due before this should have started

    @property
    def expects_runs(self) -> bool:
        """Runs are due: the deployment is not paused and one of its schedules is active."""
        return not self.paused and any(schedule.active for schedule in self.schedules)

    @property
    def runner(self) -> str:
        """What executes this deployment's runs, as the hints name it."""
        pool = self.work_pool
        if pool:
            return f"a worker of pool {pool!r} (prefect worker start --pool {pool})"
        return "`recops schedule serve` (or the process that served it)"


def schedule_inactive(seen: Observation, schedule: ScheduleInfo) -> Finding | None:
    if schedule.active:
        return None
    return Finding(
        WARNING,
        "schedule_inactive",
        seen.name,
        f"schedule {schedule.description} is paused (inactive): it creates no runs",
        f"`prefect deployment schedule resume '{seen.name}' {schedule.id}`, or in the Prefect UI",
    )


def missed(seen: Observation, schedule: ScheduleInfo) -> Finding | None:
    """The schedule was due (past grace) and no run exists for that time nor since."""
    due = schedule.last_expected
    if due is None or seen.ran_since_due.get(schedule.id, True):
        return None
    return Finding(
        WARNING,
        "missed",
        seen.name,
        f"no run exists for {format_time(due)} ({schedule.description}) nor since: the scheduler "
        "did not create it (server down, scheduler service off, or a schedule that silently stopped: "
        "PrefectHQ/prefect#11790, #17764)",
        f"check the server's scheduler; run the missed cycle now with `prefect deployment run '{seen.name}'`",
    )


def paused(seen: Observation) -> Finding | None:
    if not seen.paused:
        return None
    served = not seen.work_pool
    return Finding(
        WARNING,
        "paused",
        seen.name,
        "deployment is paused: none of its schedules creates runs"
        + (" (`recops schedule serve` pauses what it served when it stops)" if served else ""),
        "restart `recops schedule serve` (it resumes what it serves)"
        if served
        else "resume it in the Prefect UI, or run `prefect deploy --all` again (it deploys unpaused)",
    )


def late(seen: Observation) -> Finding | None:
    if not seen.expects_runs or not seen.late:
        return None
    first, count = seen.late[0], len(seen.late)
    return Finding(
        WARNING,
        "late",
        seen.name,
        f"{count}{'+' if count == 100 else ''} run(s) due before "
        f"{format_time(seen.cutoff)} have not started, the oldest {first.name} due "
        f"{format_time(first.expected_start)} ({first.state})",
        f"nothing is executing this deployment's runs: start {seen.runner}",
    )


def no_upcoming(seen: Observation) -> Finding | None:
    if not seen.expects_runs or seen.upcoming is not None:
        return None
    return Finding(
        WARNING,
        "no_upcoming",
        seen.name,
        "no future run is scheduled although a schedule is active: the API's scheduler "
        "service is not creating runs",
        "use a Prefect server with its scheduler (`prefect server start`, or `recops schedule "
        "serve` without PREFECT_API_URL); a deployment changed in the last seconds may simply "
        "not be scheduled yet",
    )


def not_ready(seen: Observation) -> Finding | None:
    if not seen.expects_runs or seen.readiness != "NOT_READY":
        return None
    return Finding(
        NOTE,
        "not_ready",
        seen.name,
        "no runner or worker has polled for this deployment's runs lately",
        f"scheduled runs will wait until {seen.runner} runs",
    )


def last_run_failed(seen: Observation) -> Finding | None:
    last = seen.last_finished
    if last is None or last.state_type not in ("FAILED", "CRASHED"):
        return None
    return Finding(
        WARNING,
        "failed",
        seen.name,
        f"the last finished run {last.name} ended {last.state} ({format_time(last.end or last.start)})",
        f"see its logs: `prefect flow-run logs {last.id}`",
    )


def not_deployed(name: str, what: str) -> Finding:
    return Finding(
        WARNING,
        "not_deployed",
        name,
        f"{what}: it has never been served or deployed here",
        "`recops schedule serve`, or `prefect deploy --all` with a worker for its pool",
    )


def no_scheduler() -> Finding:
    return Finding(
        WARNING,
        "no_scheduler",
        None,
        "no Prefect server is running (PREFECT_API_URL unset, no `recops schedule serve`): this read "
        "the stored history through a temporary API, and nothing fires the active schedules",
        "start `recops schedule serve`, or set PREFECT_API_URL to a Prefect server or Cloud",
    )
