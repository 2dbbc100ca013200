"""A local ``bentoml serve`` process: start it, wait until ready, record it, stop it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recops.localproc import ServerProcess, http_ok, port_error, start_server
from recops.paths import recops_home
from recops.serving.auth import TokenConfigError, service_token
from recops.serving.deployment import DEPLOYMENT_ENV
from recops.serving.model_store import BentoError, bentoml_home

SERVER_STOP_TIMEOUT_S = 15.0


DEFAULT_WORKERS = 2  # server processes; each gets cores // workers torch threads


@dataclass
class BentoServer:
    """A running ``bentoml serve``; :meth:`stop` ends it (and its workers) for good."""

    url: str
    server: ServerProcess

    @property
    def process(self) -> subprocess.Popen:
        return self.server.process

    def stop(self) -> None:
        """SIGTERM to the server's process group (arbiter and workers), SIGKILL after 15 s."""
        self.server.stop()

    def log_tail(self, n_chars: int = 4000) -> str:
        return self.server.log_tail(n_chars)

    def __enter__(self) -> BentoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _check_port_free(host: str, port: int) -> None:
    if (reason := port_error(port, host)) is not None:
        raise BentoError(f"cannot serve on {host}:{port}: {reason}; choose another --port")


def serve(
    bento_or_path: str | Path,
    host: str = "127.0.0.1",
    port: int = 3000,
    *,
    workers: int | None = None,
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 120.0,
    log_path: str | Path | None = None,
    show_output: bool = False,
    deployment: str | Path | None = None,
) -> BentoServer:
    """Run ``bentoml serve`` on a bento tag (or a service folder) and wait until ``/readyz``.

    ``workers`` sets the service's worker processes (``$RECOPS_BENTO_WORKERS``, read by
    service.py, which also splits the cores' torch threads between them). The server's output
    goes to ``log_path``, to this process's own stdout/stderr with ``show_output``, else to a
    temporary file that :meth:`BentoServer.stop` removes. With ``deployment`` (a deployment
    record, :func:`write_deployment`) the workers follow it and swap models as it changes.
    The API token settings (``$RECOPS_API_TOKEN``, ``$RECOPS_API_TOKEN_REQUIRED``) pass to the
    server with the environment; settings it would refuse are a BentoError before it starts.
    Raises :class:`BentoError` with the
    log's tail if the server exits or is not ready within ``ready_timeout`` seconds; it is then
    already stopped.
    """
    _check_port_free(host, port)
    child_env = {**os.environ, "BENTOML_HOME": str(bentoml_home()), **(env or {})}
    if workers is not None:
        child_env["RECOPS_BENTO_WORKERS"] = str(int(workers))
    if deployment is not None:
        child_env[DEPLOYMENT_ENV] = str(Path(deployment).resolve())
    try:
        service_token(child_env)  # what service.py checks at import, said before a start that fails
    except TokenConfigError as exc:
        raise BentoError(str(exc)) from exc
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        str(bento_or_path),
        "--host",
        host,
        "--port",
        str(port),
    ]
    process = start_server(
        "bentoml serve",
        command,
        env=child_env,
        log_path=log_path,
        show_output=show_output,
        stop_steps=((signal.SIGTERM, SERVER_STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)),
    )
    url = f"http://{host}:{port}"
    process.wait_ready(lambda: http_ok(f"{url}/readyz"), ready_timeout, error=BentoError)
    return BentoServer(url, process)


def server_file() -> Path:
    """Where ``recops serve`` records the running local server, for ``recops retrain``'s deploy."""
    return recops_home() / "serving" / "server.json"


@contextlib.contextmanager
def server_record(server: BentoServer) -> Any:
    """Record ``server`` (URL, pid) in :func:`server_file` while the block runs."""
    from recops.paths import atomic_path

    with atomic_path(server_file()) as tmp:
        tmp.write_text(json.dumps({"url": server.url, "pid": server.process.pid}))
    try:
        yield
    finally:
        server_file().unlink(missing_ok=True)


def running_server() -> str | None:
    """The URL of the local server ``recops serve`` runs, if one is recorded and alive."""
    try:
        record = json.loads(server_file().read_text())
        os.kill(int(record["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    return str(record["url"])
