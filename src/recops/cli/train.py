"""``recops train`` and ``recops evaluate``: a model from the command line, no pipeline."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from recops.cli.common import ConfigOpt, DatasetOpt, SetOpt, load_cli_config, log_to_stderr, print_epoch
from recops.config import MODEL_SECTIONS, ConfigError
from recops.data.sources import DATASET_HELP


def train_command(
    dataset: DatasetOpt = "synthetic",
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", help="sasrec, gru4rec, or a simple baseline: markov, sr, vsknn, popular."
        ),
    ] = "sasrec",
    epochs: Annotated[
        int | None, typer.Option(help="Maximum epochs (early stopping may end sooner).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output folder: new, empty or an earlier run, which is replaced "
            "(default: $RECOPS_HOME/runs/MODEL-TIME)."
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Train a model, evaluate it on the held-out test events, write checkpoint.pt and metrics.json."""
    from recops.paths import runs_dir
    from recops.training.experiment import check_run_dir, prepare_data, train_and_evaluate, write_run

    log_to_stderr()
    if model not in MODEL_SECTIONS:
        raise ConfigError(f"--model must be one of {', '.join(MODEL_SECTIONS)}, not {model!r}")
    cfg = load_cli_config(config, set_, {"train.epochs": epochs})
    if out is not None:
        check_run_dir(out)  # refuse a folder with other files before training, not after
    data = prepare_data(dataset, cfg)
    report = train_and_evaluate(data, model, cfg, on_epoch=print_epoch())
    target = write_run(report, out or runs_dir() / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}")
    metrics = report.test.metrics
    typer.echo(
        f"{model} on {dataset}: test ndcg@10 {metrics['ndcg@10']:.4f}  hr@10 {metrics['hr@10']:.4f}  "
        f"mrr@10 {metrics['mrr@10']:.4f}  ({report.train.epochs_run} epochs, best {report.train.best_epoch}, "
        f"{report.train.train_seconds:.1f}s)"
    )
    typer.echo(f"wrote {target / 'checkpoint.pt'} and {target / 'metrics.json'}")


def evaluate_command(
    checkpoint: Annotated[Path, typer.Argument(help="checkpoint.pt written by `recops train`.")],
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset", "-d", help=f"{DATASET_HELP} Default: the data set the checkpoint was trained on."
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")] = False,
) -> None:
    """Evaluate a checkpoint on the test split of a data set (full ranking over all items): by
    default the data it was trained on, as its checkpoint records it."""
    from recops.data import build_interactions, leave_one_out_split, load_events
    from recops.training.checkpoint import Checkpoint
    from recops.training.evaluate import evaluate_model
    from recops.training.train import resolve_device

    log_to_stderr(quiet=json_out)
    cfg = load_cli_config(config, set_)
    ckpt = Checkpoint.load(checkpoint)
    if dataset is None:
        if not ckpt.dataset:
            raise typer.BadParameter(
                f"{checkpoint} does not record the data set it was trained on; name one",
                param_hint="--dataset",
            )
        dataset = ckpt.dataset
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
