"""Faults of the cycle process itself, on the embedded default (SQLite registry, Prefect's
temporary API per `recops retrain`):

1. ``kill -9`` of a running ``recops retrain`` during a step (load-data, the Metaflow train
   step, the register step between logging the model and the gate, deploy): the whole process
   tree dies at once, as when the machine dies. One normal cycle afterwards recovers.
5. Two cycles started at once on the same RECOPS_HOME: one trains and registers, the other
   waits for the cycle lock, then skips, saying why.
"""

from __future__ import annotations

import re
import time

import pytest

from recops.localproc import wait_until
from tests.faults.conftest import (
    METAFLOW_STEP_STARTED,
    TASK_STARTED,
    add_incoming,
    assert_recovered,
    describe,
    healthy_now,
    new_versions,
    registry_state,
    report,
    run_cycle,
    start_cycle,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

# step -> the log line that says the cycle is in it, and seconds to wait after it before the kill
KILL_AT = {
    "load-data": (TASK_STARTED.format("load-data"), 0.0),
    # inside the Metaflow run: its train step has started (the step process imports and trains)
    "train": (METAFLOW_STEP_STARTED.format("train"), 2.0),
    # inside the register step, once the version exists and before the gate has decided: the
    # kill waits for an ungated version in the registry (see below)
    "register": (METAFLOW_STEP_STARTED.format("register"), 0.0),
    "deploy": (TASK_STARTED.format("deploy"), 0.0),
}


def kill_once_registered_before_the_gate(cycle, before) -> bool:
    """Poll the registry until the cycle's version exists without a gate decision, then kill;
    True when that window was hit (False: the gate had decided when the version was seen)."""

    def registered() -> str | None:
        fresh = new_versions(before)
        if not fresh:
            return None
        return "gated" if "gate_decision" in fresh[0].tags else "ungated"

    seen = wait_until(registered, 120, interval=0.02, what="the cycle's version in the registry")
    cycle.kill()
    return seen == "ungated"


@pytest.mark.parametrize("step", list(KILL_AT))
def test_kill_9_during_a_step_then_one_cycle_recovers(step, fault_home, server, record_property):
    add_incoming(fault_home, f"kill-{step}")
    before = registry_state()
    cycle = start_cycle(fault_home, f"killed-during-{step}")
    pattern, delay = KILL_AT[step]
    cycle.wait_for(pattern)
    time.sleep(delay)
    if step == "register":
        hit_the_window = kill_once_registered_before_the_gate(cycle, before)
    killed_at = cycle.kill()  # (again, for register: a no-op on the dead tree)
    left = describe(fault_home)
    healthy_right_after = healthy_now(fault_home)

    recovery = run_cycle(fault_home, f"after-kill-during-{step}")
    assert_recovered(fault_home, server, before)
    recovered_in = time.monotonic() - killed_at

    new = sorted(set(registry_state().tags) - set(before.tags))
    assert len(new) == 1, f"versions registered for one new file: {new}"
    outcome = recovery.last_result()
    if step == "register":
        assert hit_the_window, "the gate decided before the kill; the ungated window was missed"
        assert left["stuck"] == [("ungated", new[0])], left
        assert "gated now" in recovery.text(), recovery.tail()  # the repair step gated it
        assert outcome.startswith("skipped"), recovery.tail()  # and nothing was trained again
    if step == "deploy":  # the killed cycle had trained, gated, promoted: serving lagged behind
        assert left["champion"] == new[0] != int(left["deployed"]), left
        assert not healthy_right_after
        assert re.search(rf"unchanged since version {new[0]} was trained", outcome), recovery.tail()
    report(
        record_property,
        f"kill -9 during {step}",
        left=left,
        healthy_right_after_kill=healthy_right_after,
        recovery_cycle=outcome,
        time_to_recover_s=recovered_in,
    )


def test_two_cycles_started_at_once_register_one_version(fault_home, server, record_property):
    add_incoming(fault_home, "two-at-once")
    before = registry_state()
    started = time.monotonic()
    twins = [start_cycle(fault_home, "twin-a"), start_cycle(fault_home, "twin-b")]
    for twin in twins:
        assert twin.wait() == 0, twin.tail()
    both_done = time.monotonic() - started

    new = sorted(set(registry_state().tags) - set(before.tags))
    assert len(new) == 1, f"two cycles on the same inputs registered {new}"
    [first] = [c for c in twins if c.last_result().startswith("retrained")]
    [other] = [c for c in twins if c is not first]
    # the other began its flow run while the first held the lock, and started its first step only
    # after the first's last step had finished (the lock is released right after it)
    first_done = first.log_time(r"Task run 'gc-\w+' - Finished in state")
    assert other.log_time(r"Beginning flow run") < first_done < other.log_time(TASK_STARTED.format("repair"))
    assert other.last_result().startswith("skipped"), other.tail()
    assert f"unchanged since version {new[0]} was trained on them" in other.last_result(), other.tail()
    assert_recovered(fault_home, server, before)
    report(
        record_property,
        "two cycles at once",
        trained=first.name,
        waited_then=other.last_result(),
        both_done_s=both_done,
    )
