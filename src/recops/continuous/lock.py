"""One cycle at a time: the lock every retrain cycle, ``registry promote`` and ``rollback`` hold.

Two locks, because each covers what the other cannot:

- **Prefect's global concurrency limit** ``recops-cycle`` (limit 1), whenever a Prefect server
  is configured (``PREFECT_API_URL``: `recops schedule serve`'s local server, a shared server,
  Prefect Cloud, an ECS worker). It serialises cycles across processes and machines, and the
  server's repossessor frees the slot of a process that died once its lease (``LEASE_S``,
  renewed while held) runs out.
- **A file lock** under ``RECOPS_HOME/locks``, always. Without ``PREFECT_API_URL`` each process
  runs Prefect's temporary API, which runs no repossessor: a slot held by a process killed with
  ``kill -9`` would never come back and every later cycle would wait forever. The kernel
  releases a file lock when its process dies, whatever the cause. It also serialises a hand-run
  `recops retrain` (temporary API) with a scheduled one (local server) on the same machine.

Waiting longer than ``wait_s`` raises :class:`CycleBusyError` naming the holder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from recops.errors import RecopsError
from recops.paths import recops_home

log = logging.getLogger(__name__)

LOCK_NAME = "recops-cycle"
LEASE_S = 60.0  # Prefect renews the lease while the slot is held; a dead holder's expires after this


class CycleBusyError(RecopsError):
    """Another cycle (or promote/rollback) holds the lock for longer than this one may wait."""


def lock_file() -> Path:
    return recops_home() / "locks" / "cycle.lock"


def _holder_file() -> Path:
    return lock_file().with_suffix(".holder.json")


def current_holder() -> dict | None:
    """Who holds the file lock now (pid, host, what, since), or None when it is free."""
    path = lock_file()
    if not path.exists():
        return None
    probe = FileLock(str(path))
    try:
        probe.acquire(timeout=0)
    except Timeout:
        try:
            return json.loads(_holder_file().read_text())
        except (OSError, ValueError):
            return {"what": "unknown"}
    probe.release()
    return None


@contextlib.contextmanager
def cycle_lock(what: str, wait_s: float = 3600.0) -> Iterator[None]:
    """Hold the cycle lock for the block; ``what`` says who holds it (shown to those who wait)."""
    path = lock_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=wait_s)
    except Timeout:
        raise CycleBusyError(_busy_message(wait_s)) from None
    try:
        holder = {"what": what, "pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        _holder_file().write_text(json.dumps(holder))
        with _prefect_slot(max(1.0, wait_s - (time.monotonic() - started))):
            yield
    finally:
        _holder_file().unlink(missing_ok=True)
        lock.release()


@contextlib.contextmanager
def _prefect_slot(wait_s: float) -> Iterator[None]:
    if not os.environ.get("PREFECT_API_URL"):
        yield  # the temporary API: the file lock alone (see the module docstring)
        return
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency

    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(LOCK_NAME, limit=1)
    slot = concurrency(LOCK_NAME, timeout_seconds=wait_s, lease_duration=LEASE_S, strict=True)
    try:
        slot.__enter__()
    except TimeoutError as exc:
        raise CycleBusyError(
            f"another cycle holds Prefect's concurrency limit {LOCK_NAME!r} for over {wait_s:.0f} s"
        ) from exc
    try:
        yield
    finally:
        try:
            slot.__exit__(None, None, None)
        except Exception as exc:  # the API is unreachable: the work is done, the lease runs out
            log.warning(
                "could not release Prefect's concurrency slot %r (%s); the server frees it when its "
                "lease expires (%.0f s)",
                LOCK_NAME,
                exc,
                LEASE_S,
            )


def _busy_message(wait_s: float) -> str:
    holder = current_holder() or {}
    since = holder.get("since")
    age = f", for {time.time() - since:.0f} s" if isinstance(since, int | float) else ""
    where = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}{age}"
    who = holder.get("what", "another process")
    return f"{who} ({where}) holds the cycle lock {lock_file()}; waited {wait_s:.0f} s"
