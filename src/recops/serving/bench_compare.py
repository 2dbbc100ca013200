"""``recops bench serve --compare served-log|shadow``: what the online loop costs the champion.

Two ``bentoml serve`` processes of the same synthetic model run at once, one with the feature
and one without; blocks of ``BLOCK`` sequential requests (concurrency 1, keep-alive, each with a
session id) alternate between them, so both see the same machine. The figure is the ratio of
the two c=1 p50 latencies (with / without).

- ``served-log``: the served-list log on (the default) against ``RECOPS_SERVED_LOG=0``;
  target <= 1.05.
- ``shadow``: a shadow model scored on every request (``RECOPS_BENTO_SHADOW_TAG``) against
  none; the shadow has ``shadow_items`` items (a larger catalogue is a deliberately slow
  shadow); target <= 1.3. Also reported: the shadow rows logged, to show it did work.

Both servers log to a temporary store, never the user's.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from recops.config import Config, load_config
from recops.localproc import free_port
from recops.serving.bench import BLOCK, K, bench_sessions, percentiles, synthetic_checkpoint
from recops.serving.build import SERVICE_DIR
from recops.serving.model_store import bentoml_home, import_checkpoint
from recops.serving.server import DEFAULT_WORKERS, serve

log = logging.getLogger(__name__)

COMPARISONS = ("served-log", "shadow")
TARGETS = {"served-log": 1.05, "shadow": 1.3}


def compare(
    what: str,
    n_items: int = 10_000,
    n_requests: int = 1000,
    config: Config | None = None,
    *,
    shadow_items: int | None = None,
    workers: int = DEFAULT_WORKERS,
    seed: int = 0,
) -> dict[str, Any]:
    """The c=1 p50 of the champion with and without ``what``, side by side, and their ratio."""
    import bentoml
    import httpx

    if what not in COMPARISONS:
        raise ValueError(f"--compare takes one of {', '.join(COMPARISONS)}, not {what!r}")
    config = config or load_config()
    bentoml_home()
    started = time.time()
    checkpoint = synthetic_checkpoint(n_items, config, seed)
    tag = import_checkpoint(checkpoint, {"purpose": "bench"})
    tags = [tag]
    shadow_tag = None
    if what == "shadow":
        shadow = synthetic_checkpoint(shadow_items or n_items, config, seed + 1)
        shadow_tag = import_checkpoint(shadow, {"purpose": "bench"})
        tags.append(shadow_tag)
    sessions = bench_sessions(n_items, max(200, n_requests), seed=seed)
    with tempfile.TemporaryDirectory(prefix="recops-bench-store-") as store:
        base = {"RECOPS_BENTO_MODEL_TAG": tag, "RECOPS_STORE": store}
        variants = {
            "without": {**base, "RECOPS_SERVED_LOG": "0"} if what == "served-log" else dict(base),
            "with": dict(base)
            if what == "served-log"
            else {**base, "RECOPS_BENTO_SHADOW_TAG": str(shadow_tag)},
        }
        servers = {}
        try:
            for name, env in variants.items():
                servers[name] = serve(SERVICE_DIR, port=free_port(), workers=workers, env=env)
            times: dict[str, list[float]] = {name: [] for name in variants}
            clients = {name: httpx.Client(base_url=s.url, timeout=30.0) for name, s in servers.items()}
            try:
                for client in clients.values():  # warm-up, not timed
                    for i in range(50):
                        client.post("/recommend", json={"session": sessions[i], "k": K})
                sent = 0
                while sent < n_requests:
                    for name, client in clients.items():
                        for i in range(sent, min(sent + BLOCK, n_requests)):
                            body = {"session": sessions[i % len(sessions)], "k": K, "session_id": f"b{i}"}
                            start = time.perf_counter()
                            response = client.post("/recommend", json=body)
                            times[name].append(time.perf_counter() - start)
                            response.raise_for_status()
                    sent += BLOCK
                    if sent % 500 == 0:
                        log.info("%s: %d/%d requests to each server", what, min(sent, n_requests), n_requests)
            finally:
                for client in clients.values():
                    client.close()
        finally:
            for server in servers.values():
                server.stop()  # flushes the served-list logs
            for stored in tags:
                bentoml.models.delete(stored)
        shadow_rows = _shadow_rows(Path(store)) if what == "shadow" else None
    figures = {name: {**percentiles(values), "requests": len(values)} for name, values in times.items()}
    ratio = figures["with"]["p50_ms"] / figures["without"]["p50_ms"]
    result = {
        "benchmark": f"serve --compare {what}",
        "n_items": n_items,
        "k": K,
        "workers": workers,
        "without": figures["without"],
        "with": figures["with"],
        "p50_ratio": round(ratio, 3),
        "target": TARGETS[what],
        "ok": ratio <= TARGETS[what],
        "seconds": round(time.time() - started, 1),
    }
    if what == "shadow":
        result["shadow_items"] = shadow_items or n_items
        result["shadow_rows_logged"] = shadow_rows
    return result


def _shadow_rows(store: Path) -> int:
    from recops.serving.served_log import SHADOW_ROLE, read_served
    from recops.store import Store

    rows = read_served(Store(store)).rows
    return int(np.sum(rows["role"] == SHADOW_ROLE)) if len(rows) else 0
