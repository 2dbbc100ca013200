"""3. The Prefect server down mid-cycle: cycles run against a real ``prefect server start``
(recops.continuous.prefect_server.local_server, through ``PREFECT_API_URL``), so the cycle lock
includes Prefect's global concurrency limit. The server is killed (``kill -9`` of its process
group) while the training run trains, stays down for about a minute, and is restarted on the same
port and database. The next cycle recovers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from recops.localproc import free_port, port_error, wait_until
from tests.faults.conftest import (
    METAFLOW_STEP_STARTED,
    add_incoming,
    assert_recovered,
    describe,
    registry_state,
    report,
    run_cycle,
    start_cycle,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]


@dataclass
class PrefectServer:
    port: int
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    pid: int | None = None

    def start(self) -> None:
        from recops.continuous.prefect_server import local_server

        self.pid = self.stack.enter_context(local_server(port=self.port)).pid

    def crash(self) -> None:
        """kill -9 of the server's process group, then what its context manager cleans up."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.stack.close()


@pytest.fixture(scope="module", autouse=True)
def prefect_server(recops_home) -> Iterator[PrefectServer]:
    """The module's Prefect API, before anything takes the cycle lock (autouse)."""
    server = PrefectServer(free_port())
    server.start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{server.port}/api")
        try:
            yield server
        finally:
            server.stack.close()


def test_the_prefect_server_killed_during_training(fault_home, server, prefect_server, record_property):
    add_incoming(fault_home, "prefect-down")
    before = registry_state()
    cycle = start_cycle(fault_home, "prefect-down")
    cycle.wait_for(METAFLOW_STEP_STARTED.format("train"))
    prefect_server.crash()
    killed_at = time.monotonic()
    # down until its port can be bound again: the killed server's sockets linger (FIN_WAIT2) for
    # about a minute, and local_server refuses a port it cannot bind without SO_REUSEADDR
    wait_until(lambda: port_error(prefect_server.port) is None, 150, what="the server's port free")
    prefect_server.start()  # same port, same database
    restarted_after = time.monotonic() - killed_at
    rc = cycle.wait()
    left = describe(fault_home)

    recovery = run_cycle(fault_home, "after-prefect-down")
    assert_recovered(fault_home, server, before)
    report(
        record_property,
        "prefect server kill -9 during training",
        cycle_exit=rc,
        restarted_after_s=restarted_after,
        left=left,
        recovery_cycle=recovery.last_result(),
        time_to_recover_s=time.monotonic() - killed_at,
    )
