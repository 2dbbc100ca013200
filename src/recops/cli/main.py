"""The ``recops`` command: train, evaluate and benchmark sequence recommenders."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated

import typer

from recops.cli.bento import bench_serve_command, bento_app, serve_command
from recops.cli.common import fail, log_to_stderr
from recops.cli.registry import registry_app
from recops.cli.retrain import retrain_command, simulate_events_command
from recops.cli.schedule import schedule_app
from recops.config import MODEL_SECTIONS, Config, ConfigError, load_config, parse_override
from recops.data import DATASET_HELP, DataValidationError

app = typer.Typer(
    help="recops: a sequence-aware recommender from notebook to served, retrained model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks: quality and speed figures as JSON.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(registry_app, name="registry")
app.add_typer(bento_app, name="bento")
app.add_typer(schedule_app, name="schedule")
app.command("serve")(serve_command)
bench_app.command("serve")(bench_serve_command)
app.command("retrain")(retrain_command)
app.command("simulate-events")(simulate_events_command)

DatasetOpt = Annotated[str, typer.Option("--dataset", "-d", help=DATASET_HELP)]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (see configs/default.toml).")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key, e.g. --set sasrec.lr=0.001 (repeatable)."),
]

USER_ERRORS = (ConfigError, DataValidationError, ValueError, FileNotFoundError)


def _config(path: Path | None, sets: list[str] | None, extra: dict | None = None) -> Config:
    overrides = dict(parse_override(s) for s in sets or [])
    overrides.update(extra or {})
    return load_config(path, overrides)


def _print_epoch(prefix: str = ""):
    def show(stats) -> None:
        typer.echo(
            f"{prefix}epoch {stats.epoch:3d}  loss {stats.loss:.4f}  "
            f"valid ndcg@10 {stats.valid_ndcg:.4f}  ({stats.seconds:.1f}s)",
            err=True,
        )

    return show


@app.command()
def train(
    dataset: DatasetOpt = "synthetic",
    model: Annotated[str, typer.Option("--model", "-m", help="sasrec, gru4rec or popular.")] = "sasrec",
    epochs: Annotated[
        int | None, typer.Option(help="Maximum epochs (early stopping may end sooner).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: $RECOPS_HOME/runs/MODEL-TIME).")
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Train a model, evaluate it on the held-out test events, write checkpoint.pt and metrics.json."""
    from recops.paths import runs_dir
    from recops.training.experiment import prepare_data, train_and_evaluate, write_run

    log_to_stderr()
    try:
        if model not in MODEL_SECTIONS:
            raise ConfigError(f"--model must be one of {', '.join(MODEL_SECTIONS)}, not {model!r}")
        cfg = _config(config, set_, {"train.epochs": epochs})
        data = prepare_data(dataset, cfg)
        report = train_and_evaluate(data, model, cfg, on_epoch=_print_epoch())
        target = out or runs_dir() / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"
        write_run(report, target)
    except USER_ERRORS as exc:
        raise fail(exc) from exc
    metrics = report.test.metrics
    typer.echo(
        f"{model} on {dataset}: test ndcg@10 {metrics['ndcg@10']:.4f}  hr@10 {metrics['hr@10']:.4f}  "
        f"mrr@10 {metrics['mrr@10']:.4f}  ({report.train.epochs_run} epochs, best {report.train.best_epoch}, "
        f"{report.train.train_seconds:.1f}s)"
    )
    typer.echo(f"wrote {target / 'checkpoint.pt'} and {target / 'metrics.json'}")


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="checkpoint.pt written by `recops train`.")],
    dataset: DatasetOpt = "synthetic",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")] = False,
) -> None:
    """Evaluate a checkpoint on the test split of a data set (full ranking over all items)."""
    from recops.data import build_interactions, leave_one_out_split, load_events
    from recops.training.checkpoint import Checkpoint, CheckpointError
    from recops.training.evaluate import evaluate_model
    from recops.training.train import resolve_device

    log_to_stderr(quiet=json_out)
    try:
        cfg = _config(config, set_)
        ckpt = Checkpoint.load(checkpoint)
        interactions = build_interactions(load_events(dataset, cfg.data), vocab=ckpt.vocab)
        if interactions.fingerprint != ckpt.data_fingerprint:
            typer.secho(
                f"warning: {dataset} differs from the data this model was trained on "
                f"({interactions.fingerprint[:19]} vs {ckpt.data_fingerprint[:19]}); "
                f"{interactions.unknown_events} event(s) with unknown items dropped",
                fg=typer.colors.YELLOW,
                err=True,
            )
        split = leave_one_out_split(interactions)
        result = evaluate_model(ckpt.build_model(resolve_device(cfg.train.device)), split.test)
    except (*USER_ERRORS, CheckpointError) as exc:
        raise fail(exc) from exc
    payload = {
        "model": ckpt.model_name,
        "dataset": dataset,
        "n_test_sequences": len(result.ranks),
        **result.metrics,
    }
    if json_out:
        typer.echo(json.dumps(payload))
    else:
        for key, value in result.metrics.items():
            typer.echo(f"{key:10s} {value:.4f}")


@bench_app.command("quality")
def bench_quality_cmd(
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
    try:
        cfg = _config(config, set_, {"train.epochs": epochs})
        names = [m.strip() for m in models.split(",") if m.strip()]
        unknown = [m for m in names if m not in MODEL_SECTIONS]
        if unknown:
            raise ConfigError(
                f"--models: unknown {', '.join(unknown)}; choose from {', '.join(MODEL_SECTIONS)}"
            )
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        progress = None if json_out else (lambda m, sd, s: _print_epoch(f"{m} seed {sd}: ")(s))
        result = bench_quality(dataset, names, cfg, seed_list, on_epoch=progress)
    except USER_ERRORS as exc:
        raise fail(exc) from exc
    text = json.dumps(result, indent=None if json_out else 2)
    typer.echo(text)


@app.command(epilog="Example: recops promote notebooks/02_train_sequence_model.ipynb -o flows/train.py")
def promote(
    notebook: Annotated[Path, typer.Argument(help="The tagged Jupyter notebook (.ipynb).")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the flow to this file (atomically) instead of stdout."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="Flow class name (default: from the file name, 02_train.ipynb -> TrainFlow)."),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Write nothing; exit 1 if OUTPUT is missing or not what promotion gives now."
        ),
    ] = False,
) -> None:
    """Turn a tagged notebook into a Metaflow flow (a FlowSpec file).

    Tags on code cells:
      parameters - lines `name = literal  # help` become Parameters
      imports, functions - module-level code of the flow file
      step:NAME - starts step NAME; the untagged cells below it join the step
      skip - left out
      resources:cpu=4, resources:memory=16000, retry:N - decorate the step
        (one tag per key: a comma in a tag breaks the notebook schema)

    Values pass between steps as artifacts, found by reading the code.
    """
    from recops.promote import RuffUnavailableError, check_flow, promote_notebook, write_flow

    try:
        if check:
            if output is None:
                raise ValueError("--check compares with an existing flow file; give it with --output")
            up_to_date, message = check_flow(notebook, output, name)
        elif output is not None:
            write_flow(notebook, output, name)
        else:
            source = promote_notebook(notebook, name)
    except (ValueError, FileNotFoundError, RuffUnavailableError) as exc:  # PromotionError is a ValueError
        raise fail(exc) from exc
    if check:
        typer.echo(message, err=not up_to_date)
        raise typer.Exit(code=0 if up_to_date else 1)
    if output is not None:
        typer.echo(f"wrote {output}", err=True)
    else:
        typer.echo(source, nl=False)


def main() -> None:  # pragma: no cover - console entry
    os.environ.setdefault("USERNAME", os.environ.get("USER", "recops"))
    app()


if __name__ == "__main__":
    main()
