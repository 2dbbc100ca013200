"""The cycle lock: a second holder waits and is told who holds it; a holder killed with
`kill -9` frees it at once (the kernel drops its file lock), so no crash leaves cycles stuck."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from recops.continuous.lock import CycleBusyError, current_holder, cycle_lock
from recops.localproc import wait_until

pytestmark = pytest.mark.integration

HOLD = (
    "import sys, time, pathlib\n"
    "from recops.continuous.lock import cycle_lock\n"
    "with cycle_lock('test holder'):\n"
    "    pathlib.Path(sys.argv[1]).touch()\n"
    "    time.sleep(120)\n"
)


@pytest.fixture
def holder(recops_home, monkeypatch, tmp_path):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    held = tmp_path / "held"
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(held)], start_new_session=True)
    try:
        wait_until(held.exists, 30, interval=0.05, what="the holder taking the lock")
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_a_second_holder_waits_then_is_told_who_holds_the_lock(holder):
    assert current_holder()["what"] == "test holder" and current_holder()["pid"] == holder.pid
    started = time.monotonic()
    busy = rf"test holder \(pid {holder.pid} on .*\) holds the cycle lock"
    with pytest.raises(CycleBusyError, match=busy), cycle_lock("second", wait_s=1.0):
        pass
    assert time.monotonic() - started >= 1.0


def test_kill_9_of_the_holder_frees_the_lock_at_once(holder):
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait()
    wait_until(lambda: current_holder() is None, 5, what="the lock to be free")
    with cycle_lock("after the crash", wait_s=1.0):
        assert current_holder()["what"] == "after the crash"
    assert current_holder() is None
