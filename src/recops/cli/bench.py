"""``recops bench quality``, ``retrain``, ``serve`` and ``scale``: figures as JSON."""

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
    losses: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated [train] loss values (ce, ce_chunked, sampled, auto): each network "
            "trains once per loss, with its NDCG@10 ratio to the first loss's."
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print only the JSON object on stdout.")] = False,
) -> None:
    """Train each model on DATASET and print test NDCG/HR/MRR@10, epochs and training time."""
    from recops.config.base import LOSSES
    from recops.training.quality_bench import bench_quality

    log_to_stderr(quiet=json_out)
    cfg = load_cli_config(config, set_, {"train.epochs": epochs})
    names = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODEL_SECTIONS]
    if unknown:
        raise ConfigError(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(MODEL_SECTIONS)}")
    seed_list = int_list(seeds, "--seeds")
    progress = None if json_out else (lambda m, sd, s: print_epoch(f"{m} seed {sd}: ")(s))
    loss_list = [v.strip() for v in losses.split(",") if v.strip()] if losses else None
    wrong = [v for v in loss_list or () if v not in LOSSES]
    if wrong or loss_list == []:
        raise ConfigError(
            f"--losses: unknown {', '.join(wrong) or 'nothing'}; choose from {', '.join(LOSSES)}"
        )
    result = bench_quality(dataset, names, cfg, seed_list, on_epoch=progress, losses=loss_list)
    text = json.dumps(result, indent=None if json_out else 2)
    typer.echo(text)


@bench_app.command("retrain")
def bench_retrain_command(
    dataset: DatasetOpt = "synthetic",
    model: Annotated[
        str, typer.Option(help="The model trained (a neural one: sasrec or gru4rec).")
    ] = "sasrec",
    arrival: Annotated[
        str,
        typer.Option(
            help="How new data arrives: 'sessions' (10% more sessions, 5% of the catalogue replaced "
            "by new items) or 'time' (the first 90% of events by time train the champion)."
        ),
    ] = "sessions",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds; figures are means.")] = "42",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print only the JSON object on stdout.")] = False,
) -> None:
    """Warm start against training from scratch: train a champion on the old data, then the
    challenger on the new snapshot both ways; print both runs' test NDCG@10 and training time,
    and the warm run's as ratios of the scratch run's (ndcg_ratio, time_ratio)."""
    from recops.training.retrain_bench import ARRIVALS, bench_retrain

    log_to_stderr(quiet=json_out)
    cfg = load_cli_config(config, set_, {})
    if model not in ("sasrec", "gru4rec"):
        raise ConfigError(
            f"--model: warm start continues a trained network; choose sasrec or gru4rec, not {model!r}"
        )
    if arrival not in ARRIVALS:
        raise ConfigError(f"--arrival: choose {' or '.join(ARRIVALS)}, not {arrival!r}")
    progress = None if json_out else (lambda stage, sd, s: print_epoch(f"{stage} seed {sd}: ")(s))
    result = bench_retrain(dataset, model, cfg, int_list(seeds, "--seeds"), arrival, on_epoch=progress)
    typer.echo(json.dumps(result, indent=None if json_out else 2))


@bench_app.command("scale")
def bench_scale_command(
    grid: Annotated[
        str,
        typer.Option(
            help="Comma-separated EVENTS:ITEMS points of synthetic data (k and M suffixes); the "
            "10M:1M point takes several minutes and about 6 GB on 2 CPU cores."
        ),
    ] = "100k:10k,1M:100k,1M:1M,10M:1M",
    steps: Annotated[
        int, typer.Option(help="Timed training steps per point (after one untimed).", min=1)
    ] = 5,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print only the JSON object on stdout.")] = False,
) -> None:
    """How cost grows with events and items: per point, load seconds, SASRec training seconds
    per 1M events (extrapolated from --steps steps) and peak memory, evaluation seconds per 1,000
    sequences over the whole catalogue, in-process serving p50/p99 and model load time; the slope
    of log(epoch time) against log(events) per catalogue size. Set the objective with
    --set train.loss=ce|ce_chunked|sampled (default auto); with CUDA, GPU figures too."""
    from recops.training.scale_bench import bench_scale, parse_grid

    log_to_stderr(quiet=json_out)
    cfg = load_cli_config(config, set_, {})
    points = parse_grid(grid)

    def progress(point: dict) -> None:
        if not json_out:
            typer.echo(
                f"{point['events']:>10,} events {point['items']:>9,} items: "
                f"load {point['load_seconds']} s, train {point['train_seconds_per_1m_events']} s/1M events "
                f"({point['loss']}), peak {point['peak_rss_mb']:,.0f} MB, "
                f"serve p50 {point['serve_p50_ms']} ms ({point['serve_path']})",
                err=True,
            )

    result = bench_scale(cfg, points, steps, on_point=progress)
    typer.echo(json.dumps(result, indent=None if json_out else 2))


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
    catalogs: Annotated[
        str | None,
        typer.Option(help="Comma-separated catalogue sizes [default: 1000,10000,100000; --soak: 10000]."),
    ] = None,
    concurrency: Annotated[
        str | None,
        typer.Option(help="Comma-separated client concurrency levels [default: 1,8,32; --soak: 32]."),
    ] = None,
    requests: Annotated[int, typer.Option(help="Timed requests per concurrency level.", min=1)] = 1000,
    workers: Annotated[int | None, typer.Option(help="Server worker processes.", min=1)] = None,
    batching: Annotated[
        bool | None, typer.Option("--batching/--no-batching", help="Batch queued queries in the server.")
    ] = None,
    soak: Annotated[
        float | None,
        typer.Option(
            help="Instead: one catalogue and one concurrency level for this many seconds (at most 6 h), "
            "swapping the deployed model every --swap-every seconds; 5xx, latency drift, memory, swaps.",
            min=1,
        ),
    ] = None,
    swap_every: Annotated[
        float | None, typer.Option(help="With --soak: seconds between model swaps [default: 60].", min=1)
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option(
            help="Instead: the champion's c=1 p50 with and without served-log (the served-list log) "
            "or shadow (a shadow model on every request), two servers side by side; exit 1 over target.",
        ),
    ] = None,
    shadow_items: Annotated[
        int | None,
        typer.Option(help="With --compare shadow: the shadow's catalogue (larger: a slower shadow).", min=2),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print only the JSON object on stdout.")] = False,
) -> None:
    """Latency (p50/p99), throughput and errors of POST /recommend against the in-process floor;
    with --soak, a long run under load with live model swaps (exit 1 unless it is ok); with
    --compare, what the online loop costs the champion (exit 1 over its target)."""
    from recops.serving import bench
    from recops.serving import soak as soak_bench

    log_to_stderr(quiet=json_out)
    if compare is not None:
        from recops.serving.bench_compare import compare as compare_bench

        [n_items] = one_value(catalogs, "--catalogs", 10_000, minimum=2)
        result = compare_bench(
            compare, n_items, requests, shadow_items=shadow_items, **({"workers": workers} if workers else {})
        )
        typer.echo(json.dumps(result, indent=None if json_out else 2))
        if not result["ok"]:
            raise typer.Exit(code=1)
        return
    if soak is not None:
        if batching is not None:
            raise typer.BadParameter("the soak serves with the service's default", param_hint="--batching")
        if soak > soak_bench.MAX_SOAK_S:
            raise typer.BadParameter(f"at most {soak_bench.MAX_SOAK_S:.0f} seconds", param_hint="--soak")
        [n_items] = one_value(catalogs, "--catalogs", soak_bench.SOAK_CATALOG, minimum=2)
        [clients] = one_value(concurrency, "--concurrency", soak_bench.SOAK_CONCURRENCY, minimum=1)
        every = swap_every or soak_bench.SOAK_SWAP_EVERY_S
        result = soak_bench.bench_soak(
            soak, swap_every=every, n_items=n_items, concurrency=clients, workers=workers
        )
        typer.echo(json.dumps(result, indent=None if json_out else 2))
        if not result["ok"]:
            raise typer.Exit(code=1)
        return
    if swap_every is not None:
        raise typer.BadParameter("only with --soak", param_hint="--swap-every")
    result = bench.bench_serve(
        int_list(catalogs or "1000,10000,100000", "--catalogs"),
        int_list(concurrency or "1,8,32", "--concurrency"),
        requests,
        workers=workers,
        batching=batching,
    )
    typer.echo(json.dumps(result, indent=None if json_out else 2))


def one_value(text: str | None, option: str, default: int, minimum: int) -> list[int]:
    values = [default] if text is None else int_list(text, option)
    if len(values) != 1 or values[0] < minimum:
        raise typer.BadParameter(f"takes one value, at least {minimum}, with --soak", param_hint=option)
    return values
