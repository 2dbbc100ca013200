"""``recops maturity``: the live system scored against Google's and Microsoft's MLOps maturity
levels and the ML Test Score."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from recops.cli.common import log_to_stderr, quiet_temporary_api

EXIT_BELOW = 1


def maturity_command(
    json_out: Annotated[bool, typer.Option("--json", help="Print the score as JSON.")] = False,
    require_level: Annotated[
        int | None,
        typer.Option("--require-level", min=0, max=2, help="Exit 1 below this Google level (a CI gate)."),
    ] = None,
) -> None:
    """Score the live system, from its own metadata, against Google's MLOps maturity levels 0-2,
    Microsoft's MLOps maturity levels 0-4 and the ML Test Score (Breck et al. 2017: 28 tests,
    0.5 point done by hand and documented, 1 automated, the score the smallest section sum).

    Read: the MLflow registry, Metaflow's runs, Prefect's deployments and runs (the temporary API
    over $RECOPS_HOME's history when no server is set), the store's cycle and provenance
    records, and this checkout's workflows and deploy files. Each item comes with its evidence
    (a run id, a version, a file and line) or the reason it fails. Markdown, or JSON with --json.
    """
    from recops.cicd.maturity import read_facts, render, score

    log_to_stderr(quiet=True)
    quiet_temporary_api()
    result = score(read_facts())
    quiet_temporary_api()
    typer.echo(json.dumps(result.to_dict(), indent=2) if json_out else render(result))
    if require_level is not None and result.level < require_level:
        raise typer.Exit(code=EXIT_BELOW)
