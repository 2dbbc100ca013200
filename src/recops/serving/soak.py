"""`recops bench serve --soak SECONDS`: c=32 against a real `bentoml serve` for a long time while
the deployed model is swapped every minute (by rewriting the deployment record); reports
errors by status, latency of the first and last minute, resident memory at start and end, and
the swaps done and confirmed. Bounded in time and in requests; 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recops.config import Config, load_config
from recops.localproc import free_port
from recops.serving.auth import auth_headers
from recops.serving.bench import (
    SESSION_LENGTH,
    WARMUP_REQUESTS,
    K,
    bench_sessions,
    percentiles,
    synthetic_checkpoint,
    worker_threads,
)
from recops.serving.server import DEFAULT_WORKERS, serve

log = logging.getLogger(__name__)

# ``recops bench serve --soak SECONDS``: one server under steady load for a long time, with live
# model swaps, to see what stays flat (latency, memory) and what must never happen (5xx, a swap
# that does not take).
SOAK_CATALOG = 10_000


SOAK_CONCURRENCY = 32


SOAK_SWAP_EVERY_S = 60.0


SOAK_WINDOW_S = 60.0  # latency is reported for the first and the last this many seconds


SOAK_PROGRESS_S = 10.0


MAX_SOAK_S = 6 * 3600.0


MAX_SOAK_REQUESTS = 5_000_000  # a bound on the count as well as on the time


SOAK_REQUEST_TIMEOUT_S = 30.0


def server_rss_bytes(pid: int) -> tuple[int, int]:
    """Resident memory of a process and all its descendants (arbiter and workers), summed, and
    how many processes that is. Pages shared between them are counted once per process."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    total, counted = 0, 0
    for process in processes:
        try:
            total += process.memory_info().rss
            counted += 1
        except psutil.NoSuchProcess:  # a process may end between listing and reading
            continue
    return total, counted


class _SoakStats:
    """What the soak's clients saw, counted as answers arrive (bounded: two latency windows)."""

    def __init__(self, seconds: float, window: float, confirm_answers: int) -> None:
        self.seconds, self.window, self.confirm_answers = seconds, window, confirm_answers
        self.requests = 0
        self.statuses: dict[str, int] = {}
        self.examples: dict[str, str] = {}
        self.first: list[float] = []  # latencies of requests started in the first window
        self.last: list[float] = []  # ... and in the last one
        self.interval: list[float] = []  # since the last progress line
        self.swaps: list[dict[str, Any]] = []
        self._target: str | None = None  # the version the last swap deployed, until confirmed
        self._in_a_row = 0
        self._swap_started = 0.0

    def answer(self, started: float, latency: float, status: str, version: str | None, now: float) -> None:
        self.requests += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if started < self.window:
            self.first.append(latency)
        if started >= self.seconds - self.window:
            self.last.append(latency)
        self.interval.append(latency)
        if version is None or not self.swaps:
            return
        swap = self.swaps[-1]
        if version == swap["to_version"]:
            swap["first_answer_after_s"] = swap["first_answer_after_s"] or round(now - self._swap_started, 3)
            self._in_a_row += 1
            if self._target is not None and self._in_a_row >= self.confirm_answers:
                swap["confirmed"], swap["confirmed_after_s"] = True, round(now - self._swap_started, 3)
                self._target = None
        else:
            self._in_a_row = 0
            if swap["first_answer_after_s"] is not None:
                swap["old_answers_after_first_new"] += 1

    def swapped(self, to_version: str, bento: str, at: float, now: float) -> None:
        self.swaps.append(
            {
                "at_s": round(at, 1),
                "to_bento": bento,
                "to_version": to_version,
                "confirmed": False,
                "first_answer_after_s": None,
                "confirmed_after_s": None,
                "old_answers_after_first_new": 0,
            }
        )
        self._target, self._in_a_row, self._swap_started = to_version, 0, now

    def errors(self) -> dict[str, Any]:
        by_status = {s: n for s, n in sorted(self.statuses.items()) if s != "200"}
        server = sum(n for s, n in by_status.items() if s.isdigit() and s.startswith("5") and s != "503")
        return {
            "by_status": by_status,
            "shed_503": by_status.get("503", 0),
            "server_5xx": server,  # 5xx other than a shed request's 503: must be 0
            "client_4xx": sum(n for s, n in by_status.items() if s.startswith("4")),
            "transport": sum(n for s, n in by_status.items() if not s.isdigit()),
            "examples": dict(sorted(self.examples.items())[:5]),
        }


async def _soak_load(
    url: str,
    sessions: Sequence[Sequence[int]],
    concurrency: int,
    seconds: float,
    max_requests: int,
    swaps: Sequence[tuple[float, str, str]],
    deploy: Callable[[str], Any],
    rss: Callable[[], tuple[int, int]],
    stats: _SoakStats,
) -> dict[str, Any]:
    """``concurrency`` clients POST /recommend back to back for ``seconds``; at each
    ``(at_s, bento, version)`` of ``swaps`` the bento is deployed (``deploy``, off the event loop).
    A progress line every SOAK_PROGRESS_S. Returns the elapsed time and memory samples."""
    import aiohttp

    bodies = [json.dumps({"session": list(session), "k": K}).encode() for session in sessions]
    headers = {"Content-Type": "application/json", **auth_headers()}
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=SOAK_REQUEST_TIMEOUT_S)
    memory: list[tuple[float, int, int]] = []  # (seconds, RSS bytes, processes)
    async with aiohttp.ClientSession(base_url=url, connector=connector, timeout=timeout) as client:
        for i in range(max(WARMUP_REQUESTS, concurrency)):  # not counted
            async with client.post("/recommend", data=bodies[i % len(bodies)], headers=headers) as response:
                await response.read()
        start = loop.time()
        deadline = start + seconds
        memory.append((0.0, *rss()))

        async def client_loop(offset: int) -> None:
            i = offset
            while loop.time() < deadline and stats.requests < max_requests:
                body, version = bodies[i % len(bodies)], None
                sent = loop.time()
                try:
                    async with client.post("/recommend", data=body, headers=headers) as response:
                        text = await response.read()
                        status = str(response.status)
                    if status == "200":
                        version = str(json.loads(text)["model"]["version"])
                    else:
                        stats.examples.setdefault(status, text[:200].decode(errors="replace"))
                except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
                    status = type(exc).__name__
                    stats.examples.setdefault(status, str(exc)[:200])
                now = loop.time()
                stats.answer(sent - start, now - sent, status, version, now)
                i += concurrency

        async def swapper() -> None:
            for at, bento, version in swaps:
                await asyncio.sleep(max(0.0, start + at - loop.time()))
                if loop.time() >= deadline:
                    return
                stats.swapped(version, bento, loop.time() - start, loop.time())  # before any answer of it
                await asyncio.to_thread(deploy, bento)
                log.info("soak %.0fs: deployed %s (model version %s)", loop.time() - start, bento, version)

        async def progress() -> None:
            shown, shown_at = 0, 0.0
            while loop.time() < deadline:
                await asyncio.sleep(min(SOAK_PROGRESS_S, max(0.0, deadline - loop.time())))
                now = loop.time() - start
                memory.append((now, *rss()))
                latencies, stats.interval = stats.interval, []
                figures = percentiles(latencies)
                log.info(
                    "soak %.0f/%.0fs: %d requests (%.0f/s), p50 %.2f ms, p99 %.2f ms, %d not 200, "
                    "RSS %.0f MiB, swaps %d/%d confirmed",
                    now,
                    seconds,
                    stats.requests,
                    (stats.requests - shown) / max(now - shown_at, 1e-9),
                    figures["p50_ms"] or float("nan"),
                    figures["p99_ms"] or float("nan"),
                    stats.requests - stats.statuses.get("200", 0),
                    memory[-1][1] / 2**20,
                    sum(s["confirmed"] for s in stats.swaps),
                    len(stats.swaps),
                )
                shown, shown_at = stats.requests, now

        tasks = [loop.create_task(swapper()), loop.create_task(progress())]
        try:
            await asyncio.gather(*(client_loop(c) for c in range(concurrency)))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        elapsed = loop.time() - start
    memory.append((elapsed, *rss()))
    return {"elapsed_s": elapsed, "memory": memory}


def soak_swap_times(seconds: float, swap_every: float) -> list[float]:
    """When the soak swaps: every ``swap_every`` seconds, the last one at least half an
    interval before the end, so that it can be confirmed."""
    times, at = [], swap_every
    while at <= seconds - swap_every / 2:
        times.append(at)
        at += swap_every
    return times


def bench_soak(
    seconds: float,
    *,
    swap_every: float = SOAK_SWAP_EVERY_S,
    n_items: int = SOAK_CATALOG,
    concurrency: int = SOAK_CONCURRENCY,
    workers: int | None = None,
    config: Config | None = None,
    seed: int = 0,
    max_requests: int = MAX_SOAK_REQUESTS,
) -> dict[str, Any]:
    """A soak: ``concurrency`` clients against one ``bentoml serve`` on 127.0.0.1 for
    ``seconds``, its deployment record alternating between two bentos of synthetic, untrained
    models every ``swap_every`` seconds. One JSON-ready object: requests, errors by status
    (503 shed apart from other 5xx), p50/p99 of the first and last window, the server's RSS at
    start and end, swaps done and confirmed (answers carry ``model.version``), and ``ok``.

    A swap is confirmed when ``4 x concurrency`` answers in a row (enough to span every worker)
    come from the new model. Bentos, models and the record are removed afterwards."""
    from recops.serving.build import build_bento
    from recops.serving.deployment import write_deployment
    from recops.serving.model_store import load_bentoml
    from recops.serving.runtime import model_info

    if not 0 < seconds <= MAX_SOAK_S:
        raise ValueError(f"the soak lasts more than 0 and at most {MAX_SOAK_S:.0f} seconds")
    if swap_every <= 0 or n_items < 2 or concurrency < 1 or max_requests < 1:
        raise ValueError("the swap interval, catalogue size, concurrency and request bound must be positive")
    config = config or load_config()
    workers = workers or DEFAULT_WORKERS
    bentoml = load_bentoml()
    started, load_average = time.time(), [round(x, 2) for x in os.getloadavg()]
    window = min(SOAK_WINDOW_S, seconds / 2)
    confirm = 4 * concurrency
    bentos: list[str] = []
    models: list[str] = []
    with tempfile.TemporaryDirectory(prefix="recops-soak-") as tmp:
        record_path = Path(tmp) / "deployment.json"
        try:
            versions = {}
            for i in range(2):  # two models to alternate between
                path = synthetic_checkpoint(n_items, config, seed + i).save(Path(tmp) / f"model{i}.pt")
                bentos.append(build_bento(path, labels={"purpose": "bench-soak"}))
                record = write_deployment(bentos[-1], record_path)
                models.append(record["model_tag"])
                versions[bentos[-1]] = model_info(record["model_tag"], record["labels"])["version"]
            write_deployment(bentos[0], record_path)
            times = soak_swap_times(seconds, swap_every)
            swaps = [(at, bentos[(n + 1) % 2], versions[bentos[(n + 1) % 2]]) for n, at in enumerate(times)]
            sessions = bench_sessions(n_items, 2000, seed=seed)
            stats = _SoakStats(seconds, window, confirm)
            log.info(
                "soak: %d items, %d worker(s), %d clients for %.0fs, a swap every %.0fs",
                n_items,
                workers,
                concurrency,
                seconds,
                swap_every,
            )
            server = serve(bentos[0], port=free_port(), workers=workers, deployment=record_path)
            try:
                run = asyncio.run(
                    _soak_load(
                        server.url,
                        sessions,
                        concurrency,
                        seconds,
                        max_requests,
                        swaps,
                        lambda bento: write_deployment(bento, record_path),
                        lambda: server_rss_bytes(server.process.pid),
                        stats,
                    )
                )
            finally:
                server.stop()
        finally:
            for tag in bentos:
                with contextlib.suppress(Exception):
                    bentoml.bentos.delete(tag)
            for tag in models:
                with contextlib.suppress(Exception):
                    bentoml.models.delete(tag)
    errors = stats.errors()
    memory = run["memory"]
    confirmed = sum(s["confirmed"] for s in stats.swaps)
    elapsed = run["elapsed_s"]
    return {
        "benchmark": "serve-soak",
        "seconds": seconds,
        "elapsed_s": round(elapsed, 1),
        "n_items": n_items,
        "concurrency": concurrency,
        "session_length": SESSION_LENGTH,
        "k": K,
        "server": {"workers": workers, "torch_threads_per_worker": worker_threads(workers)},
        "requests": stats.requests,
        "answered_200": stats.statuses.get("200", 0),
        "throughput_rps": round(stats.requests / elapsed, 1) if elapsed > 0 else 0.0,
        "errors": errors,
        "latency": {
            "window_s": window,
            "first": {**percentiles(stats.first), "requests": len(stats.first)},
            "last": {**percentiles(stats.last), "requests": len(stats.last)},
        },
        "memory": {
            "rss_mib_start": round(memory[0][1] / 2**20, 1),
            "rss_mib_end": round(memory[-1][1] / 2**20, 1),
            "rss_mib_max": round(max(m for _, m, _ in memory) / 2**20, 1),
            "processes": [memory[0][2], memory[-1][2]],  # at start and end: arbiter and workers
            "samples_s_mib": [[round(t), round(m / 2**20, 1)] for t, m, _ in memory],
        },
        "swaps": {
            "every_s": swap_every,
            "planned": len(swaps),
            "done": len(stats.swaps),
            "confirmed": confirmed,
            "confirm_answers": confirm,
            "details": stats.swaps,
        },
        "models": {bento: versions[bento] for bento in bentos},
        "machine": {
            "cpus": len(os.sched_getaffinity(0)),
            "load_average_at_start": load_average,
        },
        "ok": errors["server_5xx"] == 0
        and errors["transport"] == 0
        and errors["client_4xx"] == 0
        and confirmed == len(stats.swaps) == len(swaps),
        "wall_seconds": round(time.time() - started, 1),
    }
