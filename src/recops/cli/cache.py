"""``recops cache report`` and ``recops cache audit``: the step cache of the training flows."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from recops.cli.common import command_group, log_to_stderr

cache_app = command_group(
    "The step cache (@cached steps of the training flows): what it saved, and an audit of its hits.\n\n"
    "Reads the hit records in Metaflow's datastore ($RECOPS_HOME/.metaflow, "
    "or $METAFLOW_DATASTORE_SYSROOT_LOCAL; or S3 when Metaflow is configured for it)."
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print only the JSON on stdout.")]


@cache_app.command("report")
def cache_report_command(
    since: Annotated[
        str | None, typer.Option(help="Only hits this recent: a number and s, m, h, d or w (e.g. 7d).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Sum the seconds (and dollars, for runs on a priced instance type) the step cache saved,
    per flow and step. Prices: [cache] instance_prices; a task's type: $RECOPS_INSTANCE_TYPE."""
    from recops.pipeline.cache_audit import cache_report, parse_since, report_text

    span = parse_since(since) if since else None
    report = cache_report(span)
    typer.echo(json.dumps(report) if json_out else report_text(report))


@cache_app.command("audit")
def cache_audit_command(
    sample: Annotated[int, typer.Option(help="How many hits to re-execute, drawn at random.")] = 3,
    step: Annotated[str | None, typer.Option(help="Only hits of this step (e.g. train).")] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the draw (default: a new draw each time).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Re-execute sampled cache hits (Metaflow spin of the hit task, cache off) and compare each
    output artifact with the reused one. Exit code 1 when any differs: the message names the
    step and the artifact (a hidden input the cache key misses, or a non-deterministic step)."""
    from recops.pipeline.cache_audit import audit_text, cache_audit

    log_to_stderr(quiet=json_out)
    results = cache_audit(sample, step=step, seed=seed)
    if json_out:
        typer.echo(json.dumps([{**r.__dict__, "ok": r.ok} for r in results]))
    else:
        typer.echo(audit_text(results))
    if any(not r.ok for r in results):
        raise typer.Exit(code=1)
