"""Local helper processes (``bentoml serve``, ``prefect server start``, ``mlflow server``, test
servers), managed one way: started in a process group of their own with output to a log,
polled until ready (or dead, with the log's tail in the error), stopped with their workers,
and never outliving the process that started them: on Linux a server started from the main
thread gets SIGTERM when its parent dies, however it dies (``PR_SET_PDEATHSIG``), and stopping
one also ends the workers it started in sessions of their own.

Also the one deadline loop of the package (:func:`wait_until`), free ports on 127.0.0.1, and
a readiness probe over HTTP (httpx, the one HTTP client; only ``recops bench serve``'s load
generator uses aiohttp, for its throughput).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psutil

from recops.errors import RecopsError

log = logging.getLogger(__name__)

# SIGTERM, then SIGKILL after 15 s: what a server started with start_new_session=True gets.
DEFAULT_STOP = ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0))
T = TypeVar("T")


class ServerError(RecopsError):
    """A helper server did not start; the message carries the tail of its log."""


CGROUP_CPU_LIMITS = (  # v2, then v1: (file, its quota's position, the period's file or None)
    (Path("/sys/fs/cgroup/cpu.max"), None),
    (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")),
)


def _cgroup_cpus(limits: Sequence[tuple[Path, Path | None]] = CGROUP_CPU_LIMITS) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (a container's ``--cpus``, an ECS task's
    or a Batch job's vCPUs), or None when there is none."""
    for quota_file, period_file in limits:
        try:
            if period_file is None:  # v2: "<quota|max> <period>"
                quota, period = quota_file.read_text().split()[:2]
            else:  # v1: a quota of -1 means none
                quota, period = quota_file.read_text().strip(), period_file.read_text().strip()
        except (OSError, ValueError):
            continue
        if quota in ("max", "-1"):
            return None
        try:
            return int(quota) / int(period)
        except (ValueError, ZeroDivisionError):
            return None
    return None


def usable_cpus() -> int:
    """The CPUs this process may use, at least 1: its affinity mask (``taskset``), capped by its
    cgroup's CPU quota. ``os.cpu_count()`` and torch's default count the machine's cores, which
    in a container limited to 2 of 16 means 16 threads contending for 2 CPUs."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_cpus()
    if quota is not None:
        count = min(count, int(quota))  # 1.5 CPUs: 1 thread that is never throttled, not 2 that are
    return max(1, count)


def cap_torch_threads() -> int:
    """At most as many torch threads as :func:`usable_cpus`, for training and evaluation: torch's
    default counts the machine's cores, and more threads than CPUs wait on each other at every
    operation. A lower setting (``OMP_NUM_THREADS``, a search trial's or a worker's share) is
    kept. Returns the number now in use."""
    import torch

    threads = min(torch.get_num_threads(), usable_cpus())
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads


def cpu_share(parts: int) -> int:
    """The CPUs this process may use split ``parts`` ways, at least 1: the torch threads of one
    of ``parts`` processes sharing the machine (server workers, search trials)."""
    return max(1, usable_cpus() // parts)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_error(port: int, host: str = "127.0.0.1") -> str | None:
    """Why ``port`` cannot be bound on ``host`` (the OS's reason), or None when it is free."""
    with socket.socket() as sock:
        # as the servers themselves bind (uvicorn sets SO_REUSEADDR): a port whose last server
        # stopped moments ago (sockets in TIME_WAIT) is free for them, so it is free here too
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # type: ignore[misc]


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def stop_group(process: subprocess.Popen, steps: Sequence[tuple[int, float]] = DEFAULT_STOP) -> None:
    """Signal the process group led by ``process`` with each ``(signal, seconds to wait)`` in
    turn until the leader exits, then SIGKILL what is left of the group and of the leader's
    descendants (workers it started in sessions of their own, as ``bentoml serve`` does, are
    outside its group; they are found before the leader exits and orphans them)."""
    descendants = _descendants(process.pid)
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
    for child in descendants:  # psutil checks each is still the process it found (no pid reuse)
        with contextlib.suppress(psutil.Error):
            name = child.name()
            child.kill()
            log.warning("killed %s (pid %d), left behind by process %d", name, child.pid, process.pid)


class Interrupted(KeyboardInterrupt):
    """A stop signal (SIGTERM, SIGHUP) taken as Ctrl-C."""


@contextlib.contextmanager
def signals_as_ctrl_c(signals: Sequence[int] = (signal.SIGTERM, signal.SIGHUP)) -> Iterator[None]:
    """While the block runs, ``signals`` raise :class:`Interrupted` (a KeyboardInterrupt) in the
    main thread, so ``kill``, ``kill %1`` or a closed terminal run the same cleanup as Ctrl-C
    instead of ending the process before its ``finally`` blocks. A signal this process inherited
    as ignored (``nohup``'s SIGHUP) stays ignored."""

    def interrupt(number: int, _frame: object) -> None:
        raise Interrupted(signal.Signals(number).name)

    previous = {}
    for number in signals:
        if signal.getsignal(number) != signal.SIG_IGN:
            previous[number] = signal.signal(number, interrupt)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def _stop_signals_held() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP wait while a server stops (a second Ctrl-C would otherwise cut
    the stop short and leave its workers running); the first of them is raised again after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous = {}
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(number) != signal.SIG_IGN:
            previous[number] = signal.signal(number, lambda n, _frame: arrived.append(n))
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        if arrived:
            signal.raise_signal(arrived[0])


def wait_until(
    check: Callable[[], T | None], timeout: float, *, interval: float = 0.25, what: str = "the condition"
) -> T:
    """Call ``check`` until it returns something other than None (or False); return that.

    Raises TimeoutError naming ``what`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(interval)


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether ``GET url`` answers 200 right now."""
    import httpx

    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class ServerProcess:
    """A server process leading its own process group; :meth:`stop` ends it and its workers."""

    name: str
    process: subprocess.Popen
    log_path: Path | None  # None: the output goes to this process's stdout/stderr
    owns_log: bool = False  # a temporary log, removed by stop()
    stop_steps: Sequence[tuple[int, float]] = DEFAULT_STOP

    def log_tail(self, n_chars: int = 4000) -> str:
        if self.log_path is None:
            return "(see the server output above)"
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except OSError:
            return ""

    def wait_ready(
        self, ready: Callable[[], bool], timeout: float, error: type[Exception] = ServerError
    ) -> None:
        """Poll ``ready`` until it is true; raise ``error`` with the log's tail if the process
        exits first or ``timeout`` passes (the process is then stopped)."""

        def check() -> bool:
            if self.process.poll() is not None:
                raise error(f"{self.name} exited with code {self.process.returncode}:\n{self.log_tail()}")
            return ready()

        try:
            wait_until(check, timeout, what=f"{self.name} becoming ready")
        except TimeoutError:
            tail = self.log_tail()  # read before stop() removes a temporary log
            self.stop()
            raise error(f"{self.name} was not ready after {timeout:.0f}s:\n{tail}") from None
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        with _stop_signals_held():
            stop_group(self.process, self.stop_steps)
        if self.owns_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    name: str,
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    log_path: str | Path | None = None,
    show_output: bool = False,
    stop_steps: Sequence[tuple[int, float]] = DEFAULT_STOP,
) -> ServerProcess:
    """Start ``command`` in a new process group, its output appended to ``log_path`` (or shown,
    with ``show_output``, else a temporary log that :meth:`ServerProcess.stop` removes).

    Started from the main thread on Linux, the server gets SIGTERM if this process dies without
    stopping it (killed, crashed). The kernel ties that to the thread that started the child, so
    from any other thread, which may end before the process does, it is not asked for."""
    owns_log = log_path is None and not show_output
    if owns_log:
        handle, log_path = tempfile.mkstemp(prefix=f"recops-{name.replace(' ', '-')}-", suffix=".log")
        os.close(handle)
    path = None if show_output else Path(log_path)  # type: ignore[arg-type]
    die_with_parent = _prctl is not None and threading.current_thread() is threading.main_thread()
    with contextlib.ExitStack() as files:
        out = None if path is None else files.enter_context(path.open("ab"))
        process = subprocess.Popen(
            list(command),
            stdout=out,
            stderr=None if out is None else subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None,
        )
    return ServerProcess(name, process, path, owns_log, stop_steps)
