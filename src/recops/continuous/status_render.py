"""The text of `recops schedule status`: a :class:`~recops.continuous.status.StatusReport` as lines.

Per deployment its schedules, next run and last runs; the warnings and notes last, each with what
to do; and a final ``healthy`` or ``N warnings``. :func:`format_time` (always UTC) and
:func:`format_duration` are also how findings and schedule descriptions write times.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recops.continuous.status import RunInfo, StatusReport


def render_status(report: StatusReport) -> str:
    """The report as text: per deployment its schedules, next run and last runs; warnings last."""
    lines = [
        f"Prefect API {report.api_url} ({report.api_source}); checked {format_time(report.checked_at)}, "
        f"grace {format_duration(report.grace_s)}"
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
            due = f", last due {format_time(schedule.last_expected)}" if schedule.last_expected else ""
            lines.append(f"  schedule {schedule.description}: {state}{due}")
        if deployment.next_run is not None:
            lines.append(f"  next run {format_time(deployment.next_run.expected_start)}")
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
    when = format_time(run.start or run.expected_start)
    parts = [f"{when}  {run.state:<10}"]
    if run.duration_s is not None:
        parts.append(f"{'running ' if run.end is None else ''}{format_duration(run.duration_s)}")
    if run.run_count > 1:
        parts.append(f"attempts {run.run_count}")
    shown = {key: value for key, value in run.parameters.items() if value is not None}
    if shown:
        parts.append(" ".join(f"{key}={value}" for key, value in shown.items()))
    parts.append(run.name + (" (scheduled)" if run.auto_scheduled else ""))
    return "  ".join(parts)


def format_time(value: datetime | None) -> str:
    """A time as status writes it: 2026-01-31 02:00:00 UTC, or - for none."""
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_duration(seconds: float) -> str:
    """A duration as schedules and reports write it: 45s, 12m05s, 3h20m, 2d04h."""
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
