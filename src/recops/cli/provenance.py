"""``recops provenance``: the chain of one release, from git commit to Terraform apply."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from recops.cli.common import log_to_stderr, quiet_temporary_api


def provenance_command(
    version: Annotated[
        int | None, typer.Argument(help="Model version (default: the champion).", min=1, show_default=False)
    ] = None,
    record: Annotated[
        bool,
        typer.Option(
            "--record", help="Record a release now (CD's last step) instead of showing one; prints its key."
        ),
    ] = False,
    stack: Annotated[str, typer.Option(help="With --record: the environment released to.")] = "local",
    build_dir: Annotated[
        Path | None,
        typer.Option(
            help="With --record: the release's build folder (infra/.build/cd/<env>: digests, bento tag, "
            "apply log).",
            file_okay=False,
        ),
    ] = None,
    prefect_file: Annotated[
        Path | None,
        typer.Option(help="With --record: the deployments to read from $PREFECT_API_URL.", dir_okay=False),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the release as JSON.")] = False,
) -> None:
    """The provenance of a model version's release: git commit, pipeline image digest, Prefect
    deployment versions, model version and alias, bento tag, serving image digest, Terraform
    apply. Shows the newest recorded release of VERSION; for a version no release recorded (a
    local run), the chain as it reads now. Every missing link is named, with why.
    """
    from recops.cicd.provenance import chain, collect, render
    from recops.cicd.provenance import record as write_record

    log_to_stderr(quiet=True)
    quiet_temporary_api()
    if record:
        release = collect(stack, build_dir, version, prefect_file)
        typer.echo(write_record(release))
    else:
        release = chain(version)
    quiet_temporary_api()
    typer.echo(json.dumps(release.to_dict(), indent=2) if json_out else render(release))
