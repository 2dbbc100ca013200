"""``recops bench quality`` and ``recops bench serve``: figures as JSON."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from recops.cli.common import (
    ConfigOpt,
    DatasetOpt,
    SetOpt,
    command_group,
    load_cli_config,
    log_to_stderr,
    print_epoch,
)
from recops.config import MODEL_SECTIONS, ConfigError

bench_app = command_group("Benchmarks: quality and speed figures as JSON.")


@bench_app.command("quality")
def bench_quality_command(
    dataset: DatasetOpt = "synthetic",
    models: Annotated[
        str, typer.Option("--models", help="Comma-separated models to train.")
    ] = "sasrec,gru4rec,popular",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds; figures are means.")] = "42",
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs per run.")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print only the JSON object on stdout.")] = False,
) -> None:
    """Train each model on DATASET and print test NDCG/HR/MRR@10, epochs and training time."""
    from recops.training.quality_bench import bench_quality

    log_to_stderr(quiet=json_out)
    cfg = load_cli_config(config, set_, {"train.epochs": epochs})
    names = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODEL_SECTIONS]
    if unknown:
        raise ConfigError(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(MODEL_SECTIONS)}")
    seed_list = int_list(seeds, "--seeds")
    progress = None if json_out else (lambda m, sd, s: print_epoch(f"{m} seed {sd}: ")(s))
    result = bench_quality(dataset, names, cfg, seed_list, on_epoch=progress)
    text = json.dumps(result, indent=None if json_out else 2)
    typer.echo(text)


def int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"takes comma-separated integers, not {text!r}", param_hint=option) from exc
    if not values:
        raise typer.BadParameter("needs at least one value", param_hint=option)
    return values


@bench_app.command("serve")
def bench_serve_command(
    catalogs: Annotated[str, typer.Option(help="Comma-separated catalogue sizes.")] = "1000,10000,100000",
    concurrency: Annotated[str, typer.Option(help="Comma-separated client concurrency levels.")] = "1,8,32",
    requests: Annotated[int, typer.Option(help="Timed requests per concurrency level.", min=1)] = 1000,
    workers: Annotated[int | None, typer.Option(help="Server worker processes.", min=1)] = None,
    batching: Annotated[
        bool | None, typer.Option("--batching/--no-batching", help="Batch queued queries in the server.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print only the JSON object on stdout.")] = False,
) -> None:
    """Latency (p50/p99), throughput and errors of POST /recommend against the in-process floor."""
    from recops.serving.bench import bench_serve

    log_to_stderr(quiet=json_out)
    result = bench_serve(
        int_list(catalogs, "--catalogs"),
        int_list(concurrency, "--concurrency"),
        requests,
        workers=workers,
        batching=batching,
    )
    typer.echo(json.dumps(result, indent=None if json_out else 2))
