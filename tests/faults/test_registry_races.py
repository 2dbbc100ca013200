"""People and storage acting on the registry and serving while the system runs, on the embedded
default (SQLite registry). The tests build on each other's versions, in this order:

6. ``recops registry rollback`` while a cycle trains and promotes version 2: the rollback waits
   for the cycle lock, then rolls back from 2 to 1 and reconciles; a later cycle does not
   promote 2 again.
7. ``recops registry promote 2 --force`` while a cycle trains and promotes version 3: the
   promotion waits, then makes 2 champion (previous champion 3); a later cycle leaves it.
9. ``kill -9`` of one ``bentoml serve`` worker while ``recops deploy`` swaps the served model
   (to version 3, promoted by hand) under load: BentoML restarts the worker, the server ends up
   answering with the champion, and no answer after the swap is confirmed is from another model.
8. The champion's stored checkpoint corrupted (bytes flipped in the MLflow artifact store): the
   next cycle's repair rolls back to the previous champion, alerts, and serving follows.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from recops.continuous.lock import current_holder
from recops.localproc import http_ok, wait_until
from tests.faults.conftest import (
    add_incoming,
    assert_recovered,
    champion_version,
    new_versions,
    recops_status,
    registry_state,
    report,
    run_cycle,
    run_recops,
    start_cycle,
    start_recops,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]


def wait_while_a_cycle_holds_the_lock(cycle) -> None:
    def held() -> bool:
        holder = current_holder() or {}
        if cycle.process.poll() is not None:
            pytest.fail(f"the cycle ended before it was seen holding the lock\n{cycle.tail()}")
        return str(holder.get("what", "")).startswith("retrain flow run")

    wait_until(held, 300, interval=0.1, what="the cycle holding the lock")


def race_a_cycle(fault_home, label: str, *command: str):
    """Start a cycle that trains on a new file; once it holds the cycle lock, start ``recops
    COMMAND``. Returns (cycle, command process, seconds from the command's start to its end)."""
    add_incoming(fault_home, label)
    cycle = start_cycle(fault_home, f"cycle-racing-{label}")
    wait_while_a_cycle_holds_the_lock(cycle)
    started = time.monotonic()
    racer = start_recops(fault_home, label, *command)
    assert cycle.wait() == 0, cycle.tail()
    rc = racer.process.wait(timeout=300)
    assert rc == 0, racer.log_tail()
    return cycle, racer, time.monotonic() - started


def test_rollback_during_a_cycle_waits_for_the_lock_then_rolls_back(
    fault_home, server, champion, record_property
):
    before = registry_state()
    cycle, rollback, took = race_a_cycle(fault_home, "rollback", "registry", "rollback")
    [trained] = new_versions(before)
    assert trained.tags["gate_decision"] == "promoted", cycle.tail()
    # it waited: it rolled back the version the cycle had just promoted
    text = rollback.log_tail()
    assert f"rolled back from version {trained.version} to version {champion}" in text, text
    assert f"serving answers with champion version {champion}" in text, text
    report_ = assert_recovered(fault_home, server, before, trained=False)
    assert report_["champion"]["version"] == champion

    later = run_cycle(fault_home, "after-rollback")  # does not promote the rolled-back version again
    assert later.last_result().startswith("skipped"), later.tail()
    assert_recovered(fault_home, server, before, trained=False)
    assert champion_version() == champion
    report(
        record_property, "registry rollback during a cycle", rollback_done_s=took, cycle=cycle.last_result()
    )


def test_promote_force_racing_a_cycle_waits_then_wins(fault_home, server, champion, record_property):
    before = registry_state()
    hand_picked = max(before.tags)  # the version rolled back above
    assert hand_picked != before.champion
    cycle, promote, took = race_a_cycle(
        fault_home, "promote-force", "registry", "promote", str(hand_picked), "--force"
    )
    [trained] = new_versions(before)
    assert trained.tags["gate_decision"] == "promoted", cycle.tail()
    text = promote.log_tail()
    assert f"version {hand_picked} is now the champion (previous champion: version {trained.version})" in text
    assert_recovered(fault_home, server, before, trained=False, moved_by_hand=(hand_picked,))

    later = run_cycle(fault_home, "after-promote")  # leaves the hand-picked champion alone
    assert later.last_result().startswith("skipped"), later.tail()
    assert champion_version() == hand_picked
    assert_recovered(fault_home, server, before, trained=False, moved_by_hand=(hand_picked,))
    report(record_property, "registry promote --force racing a cycle", promote_done_s=took)


class SteadyClient(threading.Thread):
    """Asks the server without pause; records (time, version) answers and failures."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop = url, threading.Event()
        self.answers: list[tuple[float, str]] = []
        self.failures: list[tuple[float, str]] = []

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                try:
                    response = client.post(f"{self.url}/recommend", json={"session": [], "k": 1})
                    response.raise_for_status()
                    self.answers.append((time.monotonic(), str(response.json()["model"]["version"])))
                except httpx.HTTPError as exc:
                    self.failures.append((time.monotonic(), repr(exc)))
                time.sleep(0.005)


def bento_workers(served) -> list:
    """The live worker processes of the server (a killed one is a zombie until reaped)."""
    import psutil

    workers = []
    for child in psutil.Process(served.server.process.pid).children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "_bentoml_impl.worker" in " ".join(child.cmdline()):
                workers.append(child)
        except psutil.Error:  # gone meanwhile
            continue
    return workers


def test_a_worker_killed_during_a_model_swap_under_load(fault_home, server, record_property):
    from recops.serving.deployment import read_deployment

    before = registry_state()
    target = max(before.tags)  # trained by the last cycle, not what the server started with
    assert target != before.champion
    done = run_recops(fault_home, "registry", "promote", str(target), "--force", "--no-deploy")
    assert done.returncode == 0, done.stdout + done.stderr
    workers = bento_workers(server)
    assert len(workers) == 2, workers

    client = SteadyClient(server.url)
    client.start()
    try:
        time.sleep(1.0)
        deploy = start_recops(fault_home, "deploy-under-load", "deploy", "--timeout", "120")
        wait_until(
            lambda: ((read_deployment() or {}).get("labels") or {}).get("model_version") == str(target),
            180,
            interval=0.02,
            what=f"the deployment record naming version {target}",
        )
        victim = workers[0]
        victim.kill()  # the swap is under way: each worker reads the record every 0.5 s
        killed_at = time.monotonic()
        assert deploy.process.wait(timeout=300) == 0, deploy.log_tail()
        confirmed_at = time.monotonic()

        def restarted() -> bool:
            now = bento_workers(server)
            return len(now) == 2 and victim.pid not in {p.pid for p in now}

        wait_until(restarted, 180, what="BentoML restarting the killed worker")
        wait_until(lambda: http_ok(f"{server.url}/readyz"), 60, what="the server ready again")
        restarted_in = time.monotonic() - killed_at
        time.sleep(3.0)  # both workers answer for a while
    finally:
        client.stop.set()
        client.join(30)

    wrong_after_confirmed = [(t, v) for t, v in client.answers if t > confirmed_at and v != str(target)]
    assert not wrong_after_confirmed, wrong_after_confirmed[:5]
    assert client.answers[-1][1] == str(target)
    assert_recovered(fault_home, server, before, trained=False, moved_by_hand=(target,))
    recovered_in = time.monotonic() - killed_at
    report(
        record_property,
        "bento worker kill -9 during a model swap under load",
        answers=len(client.answers),
        failed_requests=len(client.failures),
        failures_sample=sorted({f for _, f in client.failures})[:3],
        worker_restarted_s=restarted_in,
        time_to_recover_s=recovered_in,
    )


def corrupt_stored_checkpoint(fault_home, version) -> int:
    """Flip the last 64 bytes of the version's checkpoint in the MLflow artifact store (found by
    the sha256 recorded at registration, as tests/integration/test_reconcile.py does)."""
    from recops.paths import file_sha256

    corrupted = 0
    for path in (fault_home.home / "mlflow").rglob("checkpoint.pt"):
        if file_sha256(path) == version.tags["checkpoint_sha256"]:
            path.write_bytes(path.read_bytes()[:-64] + bytes(b ^ 0xFF for b in path.read_bytes()[-64:]))
            corrupted += 1
    return corrupted


def test_a_corrupt_champion_checkpoint_is_rolled_back_by_the_next_cycle(
    fault_home, server, webhook, record_property
):
    from recops import registry

    before = registry_state()
    champion = registry.get_version(registry.CHAMPION)
    previous = int(champion.tags["previous_champion"])
    assert corrupt_stored_checkpoint(fault_home, champion) >= 1
    corrupted_at = time.monotonic()
    code, status = recops_status(fault_home)
    assert code == 1 and [s["kind"] for s in status["stuck"]] == ["corrupt_champion"], status
    alerts = len(webhook.received)

    run_cycle(fault_home, "after-corruption")
    alert = webhook.wait_for("stuck", since=alerts)
    assert f"rolled back to version {previous}" in alert["message"], alert
    assert_recovered(fault_home, server, before, trained=False)
    assert champion_version() == previous
    report(
        record_property,
        "corrupt champion checkpoint",
        alert=alert["message"][-120:],
        time_to_recover_s=time.monotonic() - corrupted_at,
    )
