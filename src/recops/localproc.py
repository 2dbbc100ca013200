"""Local helper processes (``bentoml serve``, ``prefect server start``, test servers): a free
port on 127.0.0.1, and stopping a process that leads its own process group, workers included."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
from collections.abc import Sequence

log = logging.getLogger(__name__)

# SIGTERM, then SIGKILL after 15 s: what a server started with start_new_session=True gets.
DEFAULT_STOP = ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_error(port: int, host: str = "127.0.0.1") -> str | None:
    """Why ``port`` cannot be bound on ``host`` (the OS's reason), or None when it is free."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def stop_group(process: subprocess.Popen, steps: Sequence[tuple[int, float]] = DEFAULT_STOP) -> None:
    """Signal the process group led by ``process`` with each ``(signal, seconds to wait)`` in
    turn until the leader exits, then SIGKILL what is left of the group (workers it orphaned)."""
    for number, (sig, wait_s) in enumerate(steps):
        if process.poll() is not None:
            break
        if number:
            log.warning("process %d did not stop; sending %s", process.pid, signal.Signals(sig).name)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait_s)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
