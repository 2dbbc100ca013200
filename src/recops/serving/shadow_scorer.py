"""A shadow model in a server worker: scored on the champion's queries, off the response path.

The service hands each query to :class:`ShadowScorer` after the champion answered; its lists go
to the served-list log with role ``shadow`` (recops.serving.served_log), where the online report
compares them with the champion's (recops.continuous.shadow).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from recops.serving.runtime import FAULT_ENV, SLOW_SHADOW_FAULT, SLOW_SHADOW_S, ServedModel

log = logging.getLogger(__name__)


SHADOW_NICE = 10  # the shadow thread's niceness: the champion's scoring thread goes first
SHADOW_TAG_ENV = "RECOPS_BENTO_SHADOW_TAG"  # pin a shadow model outside a deployment (benchmarks)


class ShadowScorer:
    """Scores a shadow model on the champion's requests, off the response path, and logs its
    lists with role ``shadow`` under the same request id and time.

    A request only appends its query to a bounded queue (``capacity``); a full queue drops
    the query and counts it (``dropped``): the champion never waits for the shadow. One thread,
    at a lower CPU priority (niceness +``SHADOW_NICE``), scores queued queries in batches of up to
    ``max_batch`` with whichever shadow model is set when the batch starts. Without a served-list
    log there is nothing to compare, so nothing is scored.
    """

    def __init__(self, served_log: Any, capacity: int = 256, max_batch: int = 32) -> None:
        self.served: ServedModel | None = None
        self.served_log = served_log
        self.capacity, self.max_batch = capacity, max_batch
        self.dropped = 0
        self._queue: list[tuple] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="recops-shadow", daemon=True)
        self._thread.start()

    def submit(
        self,
        request_id: str,
        served_at: float,
        session_id: str | None,
        session: Sequence[Any],
        k: int,
        exclude_seen: bool,
        endpoint: str,
    ) -> bool:
        """Queue one query for the shadow; False when there is no shadow or the queue is full."""
        if self.served is None or self.served_log is None:
            return False
        with self._lock:
            if len(self._queue) >= self.capacity:
                self.dropped += 1
                return False
            self._queue.append((request_id, served_at, session_id, session, k, exclude_seen, endpoint))
        self._wake.set()
        return True

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # not Linux: the same priority
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SHADOW_NICE)
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            while not self._stop.is_set():
                with self._lock:
                    batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                if not batch:
                    break
                self._score(batch)

    def _score(self, batch: list[tuple]) -> None:
        from recops.serving.served_log import SHADOW_ROLE, ServedRecord

        served = self.served
        if served is None:
            return
        if os.environ.get(FAULT_ENV) == SLOW_SHADOW_FAULT:
            time.sleep(SLOW_SHADOW_S)  # a deliberately slow shadow (test)
        try:
            answers = served.recommend_queries(
                [(session, k, exclude) for _, _, _, session, k, exclude, _ in batch]
            )
        except Exception as exc:  # a broken shadow must not touch serving
            log.error("shadow %s could not score %d queries: %s", served.tag, len(batch), exc)
            return
        for (request_id, at, session_id, session, _, _, endpoint), answer in zip(batch, answers, strict=True):
            self.served_log.record(
                ServedRecord.of(request_id, at, session_id, session, answer, served, SHADOW_ROLE, endpoint)
            )
