"""``recops schedule``: serve the Prefect deployments of prefect.yaml, and check that they run.

Prefect is imported inside the commands (after PREFECT_HOME is pointed under RECOPS_HOME), so
``recops --help`` stays fast.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from recops.cli.common import command_group, log_to_stderr, quiet_temporary_api

EXIT_WARNING = 1

schedule_app = command_group(
    "Prefect schedules of prefect.yaml (the retraining flow, the weekly maturity report): serve "
    "them from this checkout, and check that scheduled runs happen. API: $PREFECT_API_URL, else "
    "the local server of `recops schedule serve`, under $RECOPS_HOME/prefect."
)

PrefectYamlOpt = Annotated[Path, typer.Option("--prefect-yaml", help="The deployments file.", dir_okay=False)]
DeploymentOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--deployment", "-n", help="Only this deployment (name or flow/name; repeatable). Default: all."
    ),
]


@schedule_app.command()
def check(prefect_yaml: PrefectYamlOpt = Path("prefect.yaml")) -> None:
    """Check prefect.yaml against the flows it names, offline: every entrypoint loads, and every
    deployment's and schedule's parameters fit the flow's signature (names, required ones,
    types), as Prefect checks them when a run starts. Exit 2 naming each problem. CI runs it
    before `prefect deploy --all`.
    """
    from recops.continuous.schedules import check_deployments

    for line in check_deployments(prefect_yaml):
        typer.echo(f"ok  {line}")


@schedule_app.command()
def deploy(prefect_yaml: PrefectYamlOpt = Path("prefect.yaml"), deployment: DeploymentOpt = None) -> None:
    """Register the deployments of prefect.yaml with the Prefect API, without serving them.

    The API is $PREFECT_API_URL, else the history under $RECOPS_HOME/prefect (what `recops
    retrain` and `recops schedule status` use). The schedules are then on record; runs start
    once `recops schedule serve` or a worker of the deployment's pool polls for them.
    """
    from recops.paths import use_local_prefect_home

    log_to_stderr(quiet=True)
    use_local_prefect_home()  # before Prefect reads its settings
    quiet_temporary_api()  # the temporary API's start and stop lines: said in one line below
    from prefect.settings import get_current_settings

    from recops.continuous.scheduler import register

    if not get_current_settings().api.url:
        typer.echo(
            "no PREFECT_API_URL: registering in $RECOPS_HOME's Prefect history (Prefect's temporary API)"
        )
    register(prefect_yaml, names=deployment, echo=typer.echo)


@schedule_app.command()
def serve(
    prefect_yaml: PrefectYamlOpt = Path("prefect.yaml"),
    deployment: DeploymentOpt = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port of the local Prefect server (default 4200, else a free one)."),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, help="Flow runs at once (two trainings on one machine slow each other).")
    ] = 1,
) -> None:
    """Serve the deployments of prefect.yaml from this process until Ctrl-C.

    Runs each deployment's flow on its schedules (nightly retrain, hourly drift check, weekly
    maturity report) as subprocesses of this command; no work pool or worker is needed. Without
    PREFECT_API_URL a local Prefect server is started for the duration (Prefect's temporary API
    fires no schedules) with its database under $RECOPS_HOME/prefect, and its API and UI
    addresses are printed. Ctrl-C pauses the served deployments and stops the server.
    """
    from recops.continuous.scheduler import serve as run_serve

    log_to_stderr()
    run_serve(prefect_yaml, names=deployment, port=port, limit=limit, echo=typer.echo)


@schedule_app.command()
def status(
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Last runs shown per deployment.")] = 5,
    grace_minutes: Annotated[
        float,
        typer.Option(
            "--grace-minutes", min=0.0, help="How late a scheduled run may start before it counts as missed."
        ),
    ] = 10.0,
    prefect_yaml: Annotated[
        Path | None,
        typer.Option(
            "--prefect-yaml",
            dir_okay=False,
            help="Deployments that must exist (default: ./prefect.yaml when present).",
        ),
    ] = None,
    deployment: DeploymentOpt = None,
    api_url: Annotated[
        str | None, typer.Option("--api-url", help="Prefect API to ask (default: see above).")
    ] = None,
) -> None:
    """Last runs of each deployment, and a WARNING for each schedule that is not producing runs.

    Warns when a scheduled run did not happen: no run exists for the latest due time (the
    scheduler stopped or never ran), runs are late (nothing executes them), the deployment or a
    schedule is paused, no future run is queued, a deployment of prefect.yaml is unknown to the
    API, or the last finished run failed. Exit code 0: healthy; 1: at least one warning (for a
    cron job or monitor to alert on); 2: the API or prefect.yaml could not be read.
    """
    from recops.continuous.status import status as read_status
    from recops.continuous.status_render import render_status

    log_to_stderr(quiet=True)  # Prefect's client logs its retries; the report is the output
    if prefect_yaml is None and Path("prefect.yaml").is_file():
        prefect_yaml = Path("prefect.yaml")
    report = read_status(
        api_url=api_url,
        prefect_yaml=prefect_yaml,
        names=deployment,
        runs=runs,
        grace=timedelta(minutes=grace_minutes),
        on_progress=lambda message: typer.echo(message, err=True),
    )
    typer.echo(json.dumps(report.to_dict()) if json_out else render_status(report))
    if not report.healthy:
        raise typer.Exit(code=EXIT_WARNING)
