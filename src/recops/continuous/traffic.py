"""Simulated shoppers: replay held-out sessions against the running service and write what
each shopper did next, so the online loop runs end to end on one machine.

For each session (two events or more): ``POST /recommend`` with every event but the last and
the session id; then the whole session goes into one new incoming file, timed so that the
events before the request lie before it and the last one (what the shopper did next) a
second after the answer. The shoppers do not react to what they were shown (a replay, not a
model of behaviour), so the online figures measure how well each served list predicted the
next event, like the offline leave-one-out test on unseen sessions.

**Held-out sessions.** ``synthetic``: new sessions of the same generator (same catalogue and
patterns) that are not in the base data: the generator is asked for more sessions and the
last ones are kept (``seed`` picks which block). Any other dataset: sessions resampled from the
data (:func:`recops.data.synthetic.new_events_like`), which a model may have trained on.

**Ids** are new: integers above every clock reading in milliseconds x 1000 for an integer
base (never those of the base or of an earlier run), ``traffic-<time>-<n>`` for a text base.

**Crash halfway**: the events file is written once, whole, after the last request
(:mod:`recops.store`); a crash before leaves served lists whose next events never arrive (they
count as "no next event yet"), never a partial file.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from recops.config import Config
from recops.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrafficResult:
    sessions: int
    requests: int
    failed: int
    versions: dict[str, int]  # model version -> answers it gave
    events: int
    file: str  # the store URL of the incoming file ("" when nothing was written)
    seconds: float
    example: dict[str, Any] | None = None  # the first request's body and answer


def held_out_sessions(dataset: str, config: Config, n: int, seed: int) -> pd.DataFrame:
    """``n`` sessions of two events or more that are not in ``dataset`` (synthetic) or resampled
    from it (any other): columns session_id, item_id, timestamp (relative times)."""
    from recops.data import load_events
    from recops.data.synthetic import generate_sessions, new_events_like

    if dataset == "synthetic":
        base = config.data.synthetic
        wanted = 2 * n + 50  # enough sessions of two events or more
        grown = base.model_copy(update={"n_sessions": base.n_sessions + (seed + 1) * wanted})
        frame = generate_sessions(grown)
        frame = frame[frame["session_id"] > base.n_sessions + seed * wanted]
        frame = frame[["session_id", "item_id", "timestamp"]]
    else:
        events = load_events(dataset, config.data)
        frame = new_events_like(events, 2 * n + 50, seed=seed)
    sizes = frame.groupby("session_id")["item_id"].transform("size")
    frame = frame[sizes >= 2]
    keep = pd.unique(frame["session_id"])[:n]
    return frame[frame["session_id"].isin(keep)].reset_index(drop=True)


def simulate_traffic(
    url: str,
    store: Store,
    sessions: pd.DataFrame,
    *,
    k: int = 10,
    text_ids: bool = False,
    name: str | None = None,
    progress_every: int = 100,
) -> TrafficResult:
    """Ask ``url`` for each session's next item, then write every session (with its next
    event) to ``<store>/incoming/<name>`` as CSV."""
    import httpx

    from recops.serving.auth import auth_headers

    started = time.time()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    first_id = int(started * 1000) * 1000
    rows: list[dict[str, Any]] = []
    requests = failed = 0
    versions: dict[str, int] = {}
    example = None
    groups = list(sessions.groupby("session_id", sort=False))
    with httpx.Client(base_url=url, timeout=30.0, headers=auth_headers()) as client:
        for n, (_, session) in enumerate(groups):
            session_id: int | str = f"traffic-{stamp}-{n}" if text_ids else first_id + n
            items = [_plain(item) for item in session["item_id"]]
            times = session["timestamp"].to_numpy(dtype=np.float64)
            before = time.time()
            requests += 1
            try:
                body = {"session": items[:-1], "k": k, "session_id": session_id}
                response = client.post("/recommend", json=body)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                failed += 1
                log.warning("session %s: %s", session_id, exc)
                continue
            answered = time.time()
            answer = response.json()
            example = example or {"request": body, "answer": answer}
            version = str(answer.get("model", {}).get("version", "?"))
            versions[version] = versions.get(version, 0) + 1
            # the events before the request end a second before it, keeping their gaps
            shift = before - 1.0 - times[-2]
            for item, at in zip(items[:-1], times[:-1], strict=True):
                rows.append({"session_id": session_id, "item_id": item, "timestamp": round(at + shift, 3)})
            rows.append(
                {"session_id": session_id, "item_id": items[-1], "timestamp": round(answered + 1.0, 3)}
            )
            if progress_every and (n + 1) % progress_every == 0:
                log.info("simulated %d/%d shoppers", n + 1, len(groups))
    file = ""
    if rows:
        name = name or f"traffic-{stamp}-{first_id % 1_000_000:06d}.csv"
        key = f"incoming/{name}"
        store.write_bytes(key, pd.DataFrame(rows).to_csv(index=False).encode(), if_absent=True)
        file = store.url(key)
    seconds = round(time.time() - started, 2)
    return TrafficResult(len(groups), requests, failed, versions, len(rows), file, seconds, example)


def _plain(item: Any) -> Any:
    """A JSON-ready id (numpy integers are not)."""
    return int(item) if isinstance(item, (int, np.integer)) else str(item)
