"""The Prefect API questions behind `recops schedule status`, in Prefect's own terms.

Filters for a deployment's flow runs, the last time a schedule fired by the server's rules, how a
schedule reads, and Prefect's datetimes as plain UTC ones. Prefect is imported inside each
function: callers have pointed PREFECT_HOME under RECOPS_HOME first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from recops.continuous.status_render import format_duration


def api_url_setting() -> str:
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or "(temporary server)"


def run_filter(deployment_id: Any, states: list[Any] | None = None, **when: datetime) -> Any:
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


async def last_fire_time(schedule: Any, since: datetime, until: datetime) -> datetime | None:
    """The latest time in [since, until] at which ``schedule`` fires, by the server's own rules.

    The server's schedule classes compute the times the scheduler uses (time zones, DST, day_or),
    but only forwards and at most 1,000 at a time, so the window grows until it holds one.
    """
    from prefect.server.schemas import schedules as server_schedules

    server_class = getattr(server_schedules, type(schedule).__name__, None)
    if server_class is None:  # NoSchedule, or a type this Prefect does not know
        return None
    server_schedule = server_class.model_validate(schedule.model_dump())
    since, until = to_utc(since), to_utc(until)
    if since is None or until is None or since > until:
        return None
    for window in (timedelta(minutes=1), timedelta(hours=1), timedelta(days=1), timedelta(days=35),
                   timedelta(days=400), timedelta(days=3700)):  # fmt: skip
        start = max(since, until - window)
        dates = await server_schedule.get_dates(n=1000, start=start, end=until)
        if dates:
            return to_utc(dates[-1])
        if start == since:
            return None
    return None


def describe_schedule(schedule: Any) -> str:
    timezone = getattr(schedule, "timezone", None) or "UTC"
    if cron := getattr(schedule, "cron", None):
        return f"cron {cron} ({timezone})"
    if (interval := getattr(schedule, "interval", None)) is not None:
        return f"every {format_duration(interval.total_seconds())} ({timezone})"
    if rrule := getattr(schedule, "rrule", None):
        return f"rrule {rrule} ({timezone})"
    return type(schedule).__name__


def to_utc(value: datetime | None) -> datetime | None:
    """A plain ``datetime`` in UTC (Prefect hands out its own DateTime subclasses)."""
    if value is None:
        return None
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)
