"""2. The registry's server down mid-cycle: the module's registry is an ``mlflow server`` on
PostgreSQL (``MLFLOW_TRACKING_URI``), as in the cloud. It is stopped when the training run's
register step starts: the register step fails, the Metaflow run and the cycle fail, the alert
goes out. The server is restarted on the same port and database; the next cycle resumes the
failed Metaflow run (the steps that finished, training included, are reused) and succeeds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from recops.localproc import ServerProcess, free_port, http_ok, start_server
from tests.faults.conftest import (
    METAFLOW_STEP_STARTED,
    add_incoming,
    assert_recovered,
    new_versions,
    recops_status,
    registry_state,
    report,
    run_cycle,
    start_cycle,
)
from tests.helpers import require_tool
from tests.integration import pg_mlflow

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]


@dataclass
class RegistryServer:
    """``mlflow server`` on a PostgreSQL database, on a fixed port so that it can be restarted
    where the clients expect it (tests/integration/pg_mlflow.py starts it on any free port)."""

    backend_uri: str
    workdir: Path
    port: int
    running: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        (self.workdir / "artifacts").mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            self.backend_uri,
            "--artifacts-destination",
            str(self.workdir / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.running = start_server(
            "mlflow server",
            command,
            env=env,
            cwd=self.workdir,
            log_path=self.workdir / "mlflow-server.log",
            stop_steps=((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)),
        )
        self.running.wait_ready(lambda: http_ok(f"{self.url}/health"), pg_mlflow.SERVER_START_TIMEOUT_S)

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop()
            self.running = None


@pytest.fixture(scope="module", autouse=True)
def registry_server(recops_home) -> Iterator[RegistryServer]:
    """The module's registry, before anything registers (autouse: ahead of the champion)."""
    bin_dir = pg_mlflow.postgres_bin_dir()
    require_tool(
        bin_dir is not None, "PostgreSQL's initdb/pg_ctl are not on PATH nor in /usr/lib/postgresql/*/bin"
    )
    with pg_mlflow.postgres_database(bin_dir) as database, pytest.MonkeyPatch.context() as patch:
        server = RegistryServer(database, recops_home.parent / "mlflow-server", free_port())
        server.start()
        patch.setenv("MLFLOW_TRACKING_URI", server.url)
        patch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # a dead server fails a call in seconds
        try:
            yield server
        finally:
            server.stop()


def test_the_registry_server_stopped_during_register(
    fault_home, server, webhook, registry_server, record_property
):
    from recops.continuous.training_run import FAILED_RUN_KEY
    from recops.store import open_store

    add_incoming(fault_home, "registry-down")
    before = registry_state()
    alerts = len(webhook.received)
    cycle = start_cycle(fault_home, "registry-down")
    cycle.wait_for(METAFLOW_STEP_STARTED.format("register"))
    registry_server.stop()
    stopped_at = time.monotonic()
    assert cycle.wait() != 0, cycle.tail()
    alert = webhook.wait_for("cycle_failed", since=alerts)
    assert "register" in alert["message"] or "MLflow" in alert["message"], alert
    # `recops status` cannot read the registry: not healthy (it once said "no champion yet", healthy)
    status_while_down, down_report = recops_status(fault_home)
    assert status_while_down != 0, down_report
    failed_run = json.loads(open_store().read_text(FAILED_RUN_KEY))["pathspec"]

    registry_server.start()  # same port, same database
    assert new_versions(before) == [], "the failed register step left a version"
    recovery = run_cycle(fault_home, "after-registry-down")
    text = recovery.text()
    assert f"resuming failed run {failed_run.split('/')[-1]}" in text, recovery.tail()
    # training is not repeated: the resumed run clones every step up to register, which runs again
    assert not re.search(METAFLOW_STEP_STARTED.format("train"), text), recovery.tail()
    assert re.search(METAFLOW_STEP_STARTED.format("register"), text), recovery.tail()
    assert recovery.last_result().startswith("retrained"), recovery.tail()
    assert_recovered(fault_home, server, before)
    report(
        record_property,
        "mlflow server (PostgreSQL) down during register",
        alert=alert["message"][-200:],
        status_exit_while_down=status_while_down,
        recovery_cycle=recovery.last_result(),
        time_to_recover_s=time.monotonic() - stopped_at,
    )
