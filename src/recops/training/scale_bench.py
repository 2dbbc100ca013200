"""``recops bench scale``: how the cost of training, evaluation and serving grows with events
and items.

Each grid point (events, items) runs in two fresh processes, so that each peak resident memory
is that point's own: one generates the synthetic data (``structure = "scale"``) and writes it
as Parquet; the other reads it through the same path as ``--dataset parquet:...``, builds the
sequences and the split, then

- trains the configured SASRec for a fixed number of optimiser steps (after one untimed step)
  and extrapolates seconds per million training events (a training event is one target
  position), said so in the output (``train_steps``);
- ranks the held-out item of 1,000 test sequences over the whole catalogue (bounded batches);
- saves the model as a checkpoint (its size is the bento's model payload), loads it back as the
  server does (timed) and answers one-session ``recommend`` calls in process (p50/p99). On a
  catalogue large enough for the int8 item index (recops.serving.item_index) the index's build
  time is given apart, and the same queries are answered by scoring every item too, side by
  side (``serve_full_p50_ms``, ``serve_speedup_p50``).

The slope of log(seconds per epoch) against log(events) is given for each catalogue size that
has two or more points: at most 1 means the cost per event does not grow with the data. With
CUDA the same steps run in bf16 on the GPU and its peak memory is reported too.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from recops.config import Config, ConfigError

log = logging.getLogger(__name__)

EVAL_SEQUENCES = 1000
SERVE_QUERIES = 200
SERVE_WARMUP = 20
SUFFIXES = {"k": 1_000, "m": 1_000_000}


def parse_count(text: str) -> int:
    """``100k`` / ``10M`` / ``2500`` -> an integer."""
    text = text.strip().lower()
    scale = SUFFIXES.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in SUFFIXES else text
    try:
        value = float(number) * scale
    except ValueError as exc:
        raise ConfigError(f"--grid: {text!r} is not a count (write 100000, 100k or 1M)") from exc
    if value < 1 or value != int(value):
        raise ConfigError(f"--grid: {text!r} is not a positive whole count")
    return int(value)


def parse_grid(text: str) -> list[tuple[int, int]]:
    """``"100k:10k,10M:1M"`` -> [(100000, 10000), (10000000, 1000000)] (events, items)."""
    grid = []
    for point in (p for p in text.split(",") if p.strip()):
        events, sep, items = point.partition(":")
        if not sep:
            raise ConfigError(f"--grid: {point!r} is not EVENTS:ITEMS (e.g. 1M:100k)")
        grid.append((parse_count(events), parse_count(items)))
    if not grid:
        raise ConfigError("--grid: needs at least one EVENTS:ITEMS point")
    return grid


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _serve_latencies(
    recommender: Any, sessions: list[list[Any]], candidates: list[int] | None = None
) -> list[float]:
    """Seconds of each one-session ``recommend`` call after ``SERVE_WARMUP`` untimed ones;
    with ``candidates``, how many items the int8 index re-ranked for each call."""
    latencies = []
    for i, session in enumerate(sessions):
        started = time.perf_counter()
        recommender.recommend(session, k=10)
        if i >= SERVE_WARMUP:
            latencies.append(time.perf_counter() - started)
            if candidates is not None:
                candidates.append(recommender.index.last_candidates)
    return latencies


def percentile_ms(samples: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(samples) * 1000, q)), 3)


def generate_point(events: int, items: int, path: Path) -> dict[str, Any]:
    """Write the synthetic data of one grid point to ``path`` (Parquet)."""
    from recops.data.synthetic import generate_sessions, scale_config

    started = time.perf_counter()
    frame = generate_sessions(scale_config(events, items))
    generated = time.perf_counter() - started
    frame.to_parquet(path, index=False)
    return {
        "events": len(frame),
        "generate_seconds": round(generated, 2),
        "parquet_mb": round(path.stat().st_size / 2**20, 1),
        "generate_peak_rss_mb": peak_rss_mb(),
    }


def measure_point(path: Path, items: int, config: Config, steps: int) -> dict[str, Any]:
    """Load, train ``steps`` steps, evaluate and serve on the data at ``path`` over a catalogue
    of ``items`` items (synthetic ids 1..items)."""
    import torch

    from recops.data import build_interactions, leave_one_out_split
    from recops.data.interactions import ItemVocab
    from recops.data.sources import load_events
    from recops.data.split import EvalSet
    from recops.models import build_model
    from recops.models.base import trim_padding
    from recops.models.losses import objective_for
    from recops.serving import item_index
    from recops.serving.recommender import Recommender
    from recops.training.checkpoint import Checkpoint
    from recops.training.evaluate import rank_eval_set
    from recops.training.train import (
        length_bucketed_batches,
        resolve_device,
        seed_everything,
        train_step,
        training_windows,
    )

    out: dict[str, Any] = {}
    started = time.perf_counter()
    # the whole catalogue, seen or not, as a shop's would be: the grid point's items are the
    # model's, whatever share of them the events happen to reach
    catalogue = ItemVocab(tuple(range(1, items + 1)))
    interactions = build_interactions(load_events(f"parquet:{path}"), catalogue)
    split = leave_one_out_split(interactions)
    out["load_seconds"] = round(time.perf_counter() - started, 2)
    out["load_peak_rss_mb"] = peak_rss_mb()
    out["items"], out["sequences"] = interactions.n_items, len(interactions.sequences)
    out["items_in_events"] = len(np.unique(np.concatenate(interactions.sequences)))

    seed_everything(config.train.seed)
    device = resolve_device(config.train.device)
    model = build_model("sasrec", config.sasrec, interactions.n_items, split.train).to(device)
    objective = objective_for(config.train, split.train, model.n_items)
    started = time.perf_counter()
    inputs, targets = training_windows(split.train, model.max_len)
    lengths = (targets != 0).sum(axis=1)
    batches = length_bucketed_batches(lengths, config.train.batch_size, np.random.default_rng(0))
    out["windows_seconds"] = round(time.perf_counter() - started, 2)
    train_events = int(lengths.sum())
    optimizer = torch.optim.Adam(model.parameters(), lr=config.sasrec.lr)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model.train()
    seconds, positions = [], 0
    for i, batch in enumerate(batches[: steps + 1]):
        x, y = (
            t.to(device)
            for t in trim_padding(torch.as_tensor(inputs[batch]), torch.as_tensor(targets[batch]))
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
        step_started = time.perf_counter()
        train_step(model, optimizer, x, y, objective, config.train.grad_clip)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i > 0:  # the first step warms up allocators and kernels
            seconds.append(time.perf_counter() - step_started)
            positions += int((y != 0).sum())
    per_million = sum(seconds) / positions * 1e6 if positions else float("nan")
    out.update(
        {
            "max_len": model.max_len,
            "loss": objective.kind_for(positions // max(len(seconds), 1), model.n_items),
            "train_events": train_events,
            "train_steps": len(seconds),
            "train_positions_timed": positions,
            "train_seconds_per_step": round(sum(seconds) / max(len(seconds), 1), 3),
            "train_seconds_per_1m_events": round(per_million, 2),
            "epoch_seconds_extrapolated": round(per_million * train_events / 1e6, 1),
            "train_peak_rss_mb": peak_rss_mb(),
        }
    )
    if device.type == "cuda":
        out["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    del inputs, targets, optimizer

    test = split.test
    n = min(EVAL_SEQUENCES, len(test))
    subset = EvalSet(test.inputs[:n], test.targets[:n], test.sequence_ids[:n])
    started = time.perf_counter()
    rank_eval_set(model, subset)
    out["eval_seconds_per_1000"] = round((time.perf_counter() - started) / max(n, 1) * 1000, 3)

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Checkpoint.from_model(
            model.cpu(), "sasrec", interactions.vocab, data_fingerprint=interactions.fingerprint
        )
        saved = checkpoint.save(Path(tmp) / "checkpoint.pt")
        out["checkpoint_mb"] = round(saved.stat().st_size / 2**20, 1)
        del checkpoint, model
        started = time.perf_counter()
        full = Recommender(Checkpoint.load(saved), quantized=False)
        out["model_load_seconds"] = round(time.perf_counter() - started, 3)
    recommender = full  # what the server answers with: the int8 index on large catalogues
    if item_index.wanted(full.n_items, torch.device("cpu"), full.model):
        started = time.perf_counter()
        recommender = copy.copy(full)
        recommender.index = item_index.QuantizedItemIndex(full.model.output_embeddings())
        out["model_index_seconds"] = round(time.perf_counter() - started, 3)
    sessions = [interactions.vocab.decode(h[-20:]) for h in test.inputs[: SERVE_QUERIES + SERVE_WARMUP]]
    out["serve_path"] = "int8 index" if recommender.index is not None else "full product"
    candidates: list[int] = []
    latencies = _serve_latencies(recommender, sessions, candidates if recommender is not full else None)
    out["serve_p50_ms"] = percentile_ms(latencies, 50)
    out["serve_p99_ms"] = percentile_ms(latencies, 99)
    if recommender is not full:  # the same queries scoring every item, side by side
        out["serve_full_p50_ms"] = percentile_ms(_serve_latencies(full, sessions), 50)
        out["serve_speedup_p50"] = round(out["serve_full_p50_ms"] / out["serve_p50_ms"], 2)
        out["serve_candidates_median"] = int(np.median(candidates))
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def _run_worker(args: list[str]) -> dict[str, Any]:
    """Run this module in a fresh process; its last stdout line is the JSON result."""
    done = subprocess.run(
        [sys.executable, "-m", "recops.training.scale_bench", *args], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"scale benchmark worker {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def slopes(points: list[dict[str, Any]]) -> dict[str, float]:
    """Per catalogue size with two or more event counts: the least-squares slope of
    log(epoch seconds) against log(events)."""
    out = {}
    for items in sorted({p["items"] for p in points}):
        same = [p for p in points if p["items"] == items and p.get("epoch_seconds_extrapolated")]
        if len({p["events"] for p in same}) < 2:
            continue
        x = np.log([p["events"] for p in same])
        y = np.log([p["epoch_seconds_extrapolated"] for p in same])
        out[f"items={items}"] = round(float(np.polyfit(x, y, 1)[0]), 3)
    return out


def machine() -> dict[str, Any]:
    import platform

    import torch

    info = {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def bench_scale(
    config: Config,
    grid: list[tuple[int, int]],
    steps: int,
    on_point: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[str, Any]:
    """One JSON-ready object: the machine, the settings, each grid point's figures, the slopes."""
    points = []
    with tempfile.TemporaryDirectory(prefix="recops-scale-") as tmp:
        settings = Path(tmp) / "config.json"
        settings.write_text(json.dumps(config.to_dict()))
        for number, (events, items) in enumerate(grid, 1):
            data = Path(tmp) / f"events-{events}-{items}.parquet"
            point: dict[str, Any] = {"target_events": events, "target_items": items}
            log.info(
                "point %d/%d: generating %s events over %s items",
                number,
                len(grid),
                f"{events:,}",
                f"{items:,}",
            )
            point.update(_run_worker(["generate", str(events), str(items), str(data)]))
            log.info("point %d/%d: loading, %d training steps, evaluating, serving", number, len(grid), steps)
            point.update(_run_worker(["measure", str(data), str(items), str(settings), str(steps)]))
            data.unlink()
            points.append(point)
            if on_point is not None:
                on_point(point)
    return {
        "machine": machine(),
        "model": "sasrec",
        "train": {k: config.train.model_dump()[k] for k in ("loss", "logits_mb", "negatives", "batch_size")},
        "note": f"training figures are extrapolated from {steps} timed steps per point",
        "points": points,
        "slope_log_epoch_seconds_vs_log_events": slopes(points),
    }


def main(argv: list[str]) -> None:
    kind, *rest = argv
    if kind == "generate":
        result = generate_point(int(rest[0]), int(rest[1]), Path(rest[2]))
    else:
        config = Config.model_validate(json.loads(Path(rest[2]).read_text()))
        result = measure_point(Path(rest[0]), int(rest[1]), config, int(rest[3]))
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
