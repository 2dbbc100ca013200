"""``recops deploy`` (make serving answer with the champion), ``recops status`` (does it?) and
``recops gc`` (prune what cycles leave behind).

Both read the registry (``$MLFLOW_TRACKING_URI``, else SQLite under ``$RECOPS_HOME/mlflow``)
and the local deployment; ``deploy`` holds the cycle lock while it changes anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from recops.cli.common import log_to_stderr

EXIT_UNHEALTHY = 1
TimeoutOpt = Annotated[
    float, typer.Option(help="Seconds to wait for running services to answer with the champion.", min=1)
]


def reconcile_now(timeout: float, what: str) -> bool:
    """Reconcile serving with the champion under the cycle lock; print what was done. True when
    serving answers with the champion afterwards."""
    from recops.continuous.lock import cycle_lock
    from recops.serving.reconcile import reconcile

    with cycle_lock(what):
        result = reconcile(timeout=timeout)
    for action in result.actions:
        typer.echo(action)
    for service in result.services:
        typer.echo(
            f"{service.target} answers with model version {service.model_version} {service.detail}".rstrip()
        )
    if result.desired_version is None:
        typer.echo("no champion yet: nothing to deploy")
    elif result.in_sync:
        typer.echo(f"serving answers with champion version {result.desired_version} ({result.bento_tag})")
    else:
        typer.secho(
            f"serving does not answer with champion version {result.desired_version}",
            fg=typer.colors.RED,
            err=True,
        )
    return result.in_sync


def deploy_command(
    timeout: TimeoutOpt = 60.0,
    shadow: Annotated[
        int | None,
        typer.Option(
            help="Also score this model version in shadow: on every request, off the response path, "
            "its list logged with role shadow (see `recops online-report`).",
            min=1,
        ),
    ] = None,
    no_shadow: Annotated[bool, typer.Option("--no-shadow", help="Stop scoring a shadow model.")] = False,
) -> None:
    """Make serving answer with the registry's champion: build its bento if none exists, deploy
    it (the local deployment record that `recops serve` follows), and wait until every running
    service answers with it. Exit code 0 when it does, 1 when it does not.

    With --shadow VERSION the servers also score that version on the same requests (its bento
    is built if missing) without changing any answer; --no-shadow stops it. A shadow needs the
    local backend (an ECS service runs one image)."""
    from recops.errors import RecopsError

    log_to_stderr()
    if shadow is not None and no_shadow:
        raise RecopsError("--shadow VERSION and --no-shadow contradict each other; give one")
    in_sync = reconcile_now(timeout, "recops deploy")
    if shadow is not None or no_shadow:
        from recops import registry
        from recops.continuous.lock import cycle_lock
        from recops.serving.reconcile import deploy_shadow

        if shadow is not None:
            registry.get_version(shadow)  # a version that does not exist is named before anything changes
        with cycle_lock("recops deploy --shadow"):
            bento = deploy_shadow(shadow)
        typer.echo(f"scoring version {shadow} in shadow ({bento})" if bento else "no shadow model")
    if not in_sync:
        raise typer.Exit(code=EXIT_UNHEALTHY)


def status_command(
    json_out: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Champion and challenger, what the deployment and each running service answer with, the
    last cycle and its reason, the last drift figures, and any stuck state. Exit code 0:
    healthy; 1: serving does not answer with the champion, or a state is stuck."""
    from recops.continuous.system_status import render, system_status

    log_to_stderr(quiet=True)
    status = system_status()
    typer.echo(json.dumps(status.to_dict(), default=str) if json_out else render(status))
    if not status.healthy:
        raise typer.Exit(code=EXIT_UNHEALTHY)


def gc_command(
    keep: Annotated[int, typer.Option(help="Newest model versions, bentos and models to keep.", min=1)] = 5,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML config (its store.uri holds the snapshots)."),
    ] = None,
) -> None:
    """Delete all but the newest KEEP model versions (their runs marked deleted), bentos, BentoML
    models and data snapshots. Never touches the champion, the previous champion, the
    challenger, the deployed bento or the snapshot the next cycle starts from. Holds the cycle
    lock. MLflow frees a deleted run's artifacts at its next `mlflow gc`."""
    from recops.config import load_config
    from recops.continuous.gc import collect
    from recops.continuous.lock import cycle_lock

    log_to_stderr()
    settings = load_config(config)
    with cycle_lock("recops gc"):
        typer.echo(collect(keep, settings).summary())
