"""A local Prefect server process for `recops schedule serve`, and pointing Prefect's client at an API.

:func:`local_server` runs `prefect server start` on 127.0.0.1 (with the scheduler service that
Prefect's temporary API lacks) and records its address under PREFECT_HOME, where
:func:`running_local_server` finds it from another process; :func:`use_prefect_api` points this
process and its flow runs at an API.

Prefect reads its settings when first imported, so every function here calls
:func:`recops.paths.use_local_prefect_home` before importing it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from recops.continuous.schedules import ScheduleError
from recops.localproc import free_port, http_ok, port_error, start_server
from recops.paths import atomic_path, prefect_home, use_local_prefect_home

DEFAULT_PORT = 4200  # Prefect's own default, so `prefect` commands and bookmarks work unchanged
SERVER_STATE_FILE = "local-server.json"
SERVER_LOG_FILE = "server.log"
SERVER_START_TIMEOUT_S = 120.0  # first start runs the database migrations: ~20 s on 2 busy cores


@dataclass(frozen=True)
class LocalServer:
    api_url: str
    ui_url: str
    pid: int
    log_path: Path


def _server_state_path() -> Path:
    return prefect_home() / SERVER_STATE_FILE


def running_local_server() -> str | None:
    """The API URL of the server that `recops schedule serve` started, when it is up."""
    try:
        state = json.loads(_server_state_path().read_text())
    except (FileNotFoundError, ValueError):
        return None
    api_url = state.get("api_url")
    return api_url if isinstance(api_url, str) and http_ok(f"{api_url}/health") else None


def prefect_history() -> bool:
    """Whether Prefect's database exists (under its home: ``PREFECT_HOME``, by default
    ``RECOPS_HOME/prefect``), for the temporary API to read: deployments that `recops schedule
    deploy` registered, the runs of `recops retrain`."""
    use_local_prefect_home()
    from prefect.settings import get_current_settings

    return any(Path(get_current_settings().home).glob("*.db"))


@contextlib.contextmanager
def local_server(port: int | None = None, timeout: float = SERVER_START_TIMEOUT_S) -> Iterator[LocalServer]:
    """Run `prefect server start` on 127.0.0.1 for the duration of the block.

    Why a server and not Prefect's temporary API: the temporary API runs without the scheduler
    service, so deployments served against it never get their scheduled runs (Prefect itself
    warns "Cannot schedule flows on an ephemeral server"). The database is the default one under
    PREFECT_HOME (``$RECOPS_HOME/prefect/prefect.db``), so run history outlives the server and
    `recops schedule status` reads it later. The server runs in its own session, so Ctrl-C reaches
    only the caller, which can still pause its deployments through the API before the server stops.
    """
    use_local_prefect_home()
    if (existing := running_local_server()) is not None:
        raise ScheduleError(
            f"a local Prefect server of recops is already running at {existing} (see "
            f"{_server_state_path()}); stop that `recops schedule serve` first, or serve against it with "
            f"PREFECT_API_URL={existing}"
        )
    if port is None:
        port = DEFAULT_PORT if port_error(DEFAULT_PORT) is None else free_port()
    elif port_error(port) is not None:
        raise ScheduleError(f"port {port} on 127.0.0.1 is in use; choose another with --port")
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / SERVER_LOG_FILE
    api_url = f"http://127.0.0.1:{port}/api"
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    # Concurrency leases (the cycle lock's, recops.continuous.lock) on disk under PREFECT_HOME, not
    # in the server's memory: a lease held when the server died survives its restart, so the
    # repossessor frees the slot once the lease expires. In memory, the slot stays taken forever
    # and every later cycle waits for it.
    env.setdefault(
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE", "prefect.server.concurrency.lease_storage.filesystem"
    )
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    # SIGINT first: a clean uvicorn shutdown of the server's own process group
    stop = ((signal.SIGINT, 20.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0))
    server = start_server("prefect server start", command, env=env, log_path=log_path, stop_steps=stop)
    try:
        server.wait_ready(lambda: http_ok(f"{api_url}/health", timeout=1.0), timeout, error=ScheduleError)
        state = {"api_url": api_url, "server_pid": server.process.pid, "owner_pid": os.getpid()}
        with atomic_path(_server_state_path()) as temporary:
            temporary.write_text(json.dumps(state))
        yield LocalServer(
            api_url=api_url, ui_url=api_url.removesuffix("/api"), pid=server.process.pid, log_path=log_path
        )
    finally:
        _server_state_path().unlink(missing_ok=True)
        server.stop()


@contextlib.contextmanager
def use_prefect_api(api_url: str) -> Iterator[None]:
    """Point this process, and the flow-run processes it starts, at ``api_url``."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            yield
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
