"""load -> split -> train -> evaluate -> write, as one call for the CLI, flows and benchmarks."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recops.config import Config
from recops.data import Interactions, Split, build_interactions, leave_one_out_split, load_events
from recops.errors import RecopsError
from recops.models import build_model
from recops.paths import as_umask_allows
from recops.training.checkpoint import Checkpoint
from recops.training.evaluate import EvalResult, evaluate_model
from recops.training.train import EpochStats, TrainResult, resolve_device, seed_everything, train_model
from recops.training.warm_start import WarmStartMismatch, warm_start_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedData:
    dataset: str
    interactions: Interactions
    split: Split


@dataclass
class TrainingReport:
    checkpoint: Checkpoint
    train: TrainResult
    test: EvalResult

    def metrics(self) -> dict[str, Any]:
        return {
            "model": self.checkpoint.model_name,
            "dataset": self.checkpoint.dataset,
            "data_fingerprint": self.checkpoint.data_fingerprint,
            "test": self.test.metrics,
            "valid": self.train.valid_metrics,
            "best_epoch": self.train.best_epoch,
            "epochs": self.train.epochs_run,
            "train_seconds": round(self.train.train_seconds, 3),
            "seconds_per_epoch": round(self.train.seconds_per_epoch, 3),
            "n_test_sequences": len(self.test.ranks),
            "history": [asdict(h) for h in self.train.history],
        }


def prepare_data(dataset: str, config: Config) -> PreparedData:
    """Load and validate events, build sequences and the leave-one-out split."""
    return prepare_events(dataset, load_events(dataset, config.data), config)


def prepare_events(dataset: str, events, config: Config) -> PreparedData:
    """Sequences and split from already loaded, validated events."""
    interactions = build_interactions(events)
    log.info(
        "%s: %d events, %d sequences, %d items (%s)",
        dataset,
        interactions.n_events,
        len(interactions.sequences),
        interactions.n_items,
        interactions.fingerprint[:19],
    )
    return PreparedData(dataset, interactions, leave_one_out_split(interactions))


@dataclass
class Fitted:
    checkpoint: Checkpoint
    train: TrainResult


def fit(
    data: PreparedData,
    model_name: str,
    config: Config,
    on_epoch: Callable[[EpochStats], Any] | None = None,
    warm_from: tuple[Checkpoint, str] | None = None,
) -> Fitted:
    """Train ``model_name`` on the split's training part; the checkpoint carries the lineage.

    ``warm_from`` (a checkpoint and what to call it, e.g. "version 3") starts from that model's
    weights (recops.training.warm_start) for at most ``train.warm_epochs`` epochs, nor more than
    ``train.epochs``. When it cannot be continued (another family or shape), training starts
    from scratch as without it, and the checkpoint's ``warm_start`` says why."""
    seed_everything(config.train.seed)  # initial weights are part of what the seed fixes
    section = config.model_section(model_name)
    train_config, warm_start = config.train, {}
    model = None
    if warm_from is not None:
        source, name = warm_from
        try:
            warm = warm_start_model(source, model_name, section.model_dump(), data.interactions.vocab)
        except WarmStartMismatch as exc:
            log.warning("cannot start from %s, training from scratch: %s", name, exc)
            warm_start = {"refused": name, "reason": str(exc)}
        else:
            model, warm_start = warm.model, {"from": name, **warm.summary()}
            budget = min(config.train.warm_epochs, config.train.epochs)  # never more than cold
            train_config = config.train.model_copy(update={"epochs": budget})
            log.info("starting from %s's weights (%s)", name, warm.summary())
    if model is None:
        model = build_model(model_name, section, data.interactions.n_items, data.split.train)
    log.info("training %s on %s (%s)", model_name, resolve_device(config.train.device), data.dataset)
    result = train_model(model, data.split, train_config, on_epoch=on_epoch)
    checkpoint = Checkpoint.from_model(
        result.model,
        model_name,
        data.interactions.vocab,
        data_fingerprint=data.interactions.fingerprint,
        train_config=train_config.model_dump(),
        metrics={"valid": result.valid_metrics},
        dataset=data.dataset,
        item_counts=training_item_counts(data.split),
        warm_start=warm_start,
    )
    return Fitted(checkpoint, result)


def evaluate_fitted(fitted: Fitted, data: PreparedData) -> EvalResult:
    """Test-set evaluation; the figures are also recorded in the checkpoint."""
    test = evaluate_model(fitted.train.model, data.split.test)
    fitted.checkpoint.metrics["test"] = test.metrics
    return test


def train_and_evaluate(
    data: PreparedData,
    model_name: str,
    config: Config,
    on_epoch: Callable[[EpochStats], Any] | None = None,
    warm_from: tuple[Checkpoint, str] | None = None,
) -> TrainingReport:
    fitted = fit(data, model_name, config, on_epoch, warm_from)
    test = evaluate_fitted(fitted, data)
    return TrainingReport(fitted.checkpoint, fitted.train, test)


def training_item_counts(split: Split) -> list[int]:
    """How often each vocabulary item occurs in training data (index i -> vocab item i + 1)."""
    counts = np.bincount(np.concatenate(split.train), minlength=split.n_items + 1) if split.train else []
    return [int(c) for c in counts[1:]] if len(counts) else [0] * split.n_items


RUN_FILES = ("checkpoint.pt", "metrics.json")  # everything write_run puts in a run folder
SHOWN_ENTRIES = 5  # unexpected entries named in a refusal


class RunDirError(RecopsError):
    """``--out`` names a folder that holds something other than an earlier run."""


def check_run_dir(out_dir: str | Path) -> Path:
    """``out_dir`` as an absolute path, if :func:`write_run` may write there: a missing or empty
    folder, or an earlier run (nothing but :data:`RUN_FILES`). Anything else is refused with a
    :class:`RunDirError` naming the folder and what it holds, so that a run never deletes a
    user's files (``--out .`` would otherwise replace the working directory)."""
    out_dir = Path(out_dir).expanduser().resolve()
    if not out_dir.exists():
        return out_dir
    if not out_dir.is_dir():
        raise RunDirError(f"cannot write a run to {out_dir}: it is not a folder; choose another --out")
    unexpected = sorted(entry.name for entry in out_dir.iterdir() if entry.name not in RUN_FILES)
    if not unexpected:
        return out_dir
    shown = ", ".join(unexpected[:SHOWN_ENTRIES])
    more = f" and {len(unexpected) - SHOWN_ENTRIES} more" if len(unexpected) > SHOWN_ENTRIES else ""
    raise RunDirError(
        f"cannot write a run to {out_dir}: it is not empty and not an earlier run "
        f"(it holds {shown}{more}; a run holds only {', '.join(RUN_FILES)}); "
        "choose a new or empty folder for --out, nothing was written or deleted"
    )


def write_run(report: TrainingReport, out_dir: str | Path) -> Path:
    """Write ``checkpoint.pt`` and ``metrics.json`` into ``out_dir`` together or not at all.

    ``out_dir`` may be missing, empty or an earlier run, which is replaced as a whole; any other
    folder is refused (:func:`check_run_dir`) before anything is written. Returns the folder as
    an absolute path.
    """
    out_dir = check_run_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    as_umask_allows(staging)  # mkdtemp makes 0700 whatever the umask
    try:
        report.checkpoint.save(staging / "checkpoint.pt")
        (staging / "metrics.json").write_text(json.dumps(report.metrics(), indent=2) + "\n")
        check_run_dir(out_dir)  # again: the folder may have gained files while the run trained
        if out_dir.exists():
            # Move the earlier run aside, put the new one in its place, then delete the old one:
            # a failure in between leaves the earlier run where it was.
            earlier = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.old."))
            os.replace(out_dir, earlier)
            try:
                os.replace(staging, out_dir)
            except BaseException:
                os.replace(earlier, out_dir)
                raise
            shutil.rmtree(earlier, ignore_errors=True)
        else:
            os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir
