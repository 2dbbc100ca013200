"""`recops schedule serve`: run the deployments of prefect.yaml from this process with Prefect's runner.

The same deployments that ``prefect deploy --all`` registers with a work pool are served here
from this checkout, on their schedules, until Ctrl-C; without ``PREFECT_API_URL`` against a local
Prefect server (:mod:`recops.continuous.prefect_server`), since the temporary API fires no schedules.

Prefect reads its settings when first imported, so every function here calls
:func:`recops.paths.use_local_prefect_home` before importing it.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recops.continuous.prefect_server import local_server, use_prefect_api
from recops.continuous.schedules import (
    DEFAULT_PREFECT_YAML,
    DeploymentSpec,
    ScheduleError,
    ScheduleSpec,
    load_deployments,
)
from recops.paths import use_local_prefect_home
from recops.redact import redact

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment


def select_deployments(specs: list[DeploymentSpec], names: Sequence[str] | None) -> list[DeploymentSpec]:
    """The specs named in ``names`` (all of them when it is empty); an unknown name is an error."""
    if not names:
        return specs
    known = {spec.name for spec in specs}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ScheduleError(
            f"no deployment named {', '.join(unknown)} in prefect.yaml (it has {', '.join(sorted(known))})"
        )
    return [spec for spec in specs if spec.name in names]


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """Make SIGTERM (a supervisor, `kill`) unwind through ``finally``, so the local server stops
    too, and make SIGINT the Ctrl-C it is meant to be.

    Python's default would end the process on the spot and leave the server running in its own
    session. Prefect's runner installs its own graceful handler while it runs. A process started
    in the background of a non-interactive shell inherits SIGINT ignored, and Python then
    installs no KeyboardInterrupt handler: Ctrl-C (or `kill -INT`) would do nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def exit_now(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_now)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


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


def register(
    prefect_yaml: str | Path = DEFAULT_PREFECT_YAML,
    *,
    names: Sequence[str] | None = None,
    echo: Callable[[str], None] = print,
) -> list[str]:
    """Register the deployments of prefect.yaml with the Prefect API without serving them:
    ``PREFECT_API_URL``, else the history under RECOPS_HOME (Prefect's temporary API). Their
    schedules are on record (``recops schedule status`` and ``recops maturity`` read them);
    runs happen once ``recops schedule serve`` or a worker of their pool polls. Returns the ids.
    """
    use_local_prefect_home()
    specs = select_deployments(load_deployments(prefect_yaml), names)
    ids = []
    for spec, deployment in zip(specs, runner_deployments(specs), strict=True):
        ids.append(str(deployment.apply()))
        when = ", ".join(s.describe() for s in spec.schedules) or "no schedule"
        echo(f"registered {spec.name} ({ids[-1]}): {when}; parameters {json.dumps(spec.parameters)}")
    return ids


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
    specs = select_deployments(load_deployments(prefect_yaml), names)
    deployments = runner_deployments(specs)  # fail on a broken entrypoint before starting anything
    import prefect
    from prefect.settings import get_current_settings

    with contextlib.ExitStack() as stack:
        stack.enter_context(_sigterm_exits())
        configured = get_current_settings().api.url
        if configured:
            echo(f"Prefect API: {redact(str(configured))} (PREFECT_API_URL)")
            if ui_url := get_current_settings().ui_url:
                echo(f"Prefect UI:  {ui_url}")
        else:
            echo("PREFECT_API_URL is not set: starting a local Prefect server (its scheduler fires runs)...")
            server = stack.enter_context(local_server(port))
            stack.enter_context(use_prefect_api(server.api_url))
            echo(f"Prefect API: {server.api_url} (local server, pid {server.pid}, log {server.log_path})")
            echo(f"Prefect UI:  {server.ui_url}")
        for spec in specs:
            when = ", ".join(s.describe() for s in spec.schedules) or "no schedule"
            echo(f"serving {spec.name}: {when}; parameters {json.dumps(spec.parameters)}")
        echo("Ctrl-C stops serving and pauses these deployments.")
        prefect.serve(*deployments, limit=limit)
