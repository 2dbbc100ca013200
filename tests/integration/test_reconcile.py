"""Serving follows the registry: `recops deploy`, `registry promote` / `rollback` and `recops
status` against a real MLflow store (SQLite), real bentos and a real `bentoml serve` that
follows the local deployment record, and the stuck states a crash leaves, found and repaired."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from recops import registry
from recops.config import load_config
from recops.continuous.health import (
    CORRUPT_CHAMPION,
    PROMOTED_NOT_CHAMPION,
    UNGATED,
    find_stuck,
    repair_stuck,
)
from recops.localproc import free_port
from recops.paths import file_sha256
from recops.serving.deployment import deployment_file, read_deployment
from recops.serving.server import serve, server_record
from recops.training.experiment import train_and_evaluate
from tests.helpers import GATE, TINY, prepared, register, untrained_report

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def recops_home(tmp_path_factory):
    """One home for the module: the cases build on each other's versions and bentos."""
    home = tmp_path_factory.mktemp("reconcile") / "recops-home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECOPS_HOME", str(home))
        patch.setenv("BENTOML_HOME", str(home / "bentoml"))
        patch.setenv("BENTOML_DO_NOT_TRACK", "True")
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("PREFECT_API_URL", raising=False)
        yield home


@pytest.fixture(scope="module")
def data():
    return prepared()


@pytest.fixture(scope="module")
def trained(data):
    return train_and_evaluate(data, "sasrec", load_config(overrides={**TINY, "train.epochs": 2}))


def recops(*args: str) -> tuple[int, str]:
    """The command in a child process: BentoML keeps its home per process, and a pytest worker
    that ran another module in-process would otherwise build into that module's home."""
    done = subprocess.run(
        [sys.executable, "-m", "recops.cli.main", *args], capture_output=True, text=True, timeout=600
    )
    return done.returncode, done.stdout + done.stderr


def answered(url: str) -> str:
    return str(
        httpx.post(f"{url}/recommend", json={"session": [], "k": 1}, timeout=10).json()["model"]["version"]
    )


def status() -> tuple[int, dict]:
    code, output = recops("status", "--json")
    return code, json.loads(output)


@pytest.fixture(scope="module")
def champion_served(trained, data):
    """Version 1 promoted by the gate, deployed with `recops deploy`, served by a server that
    follows the deployment record (what `recops serve` runs)."""
    register(trained, data)
    assert registry.gate(config=GATE).promote
    code, output = recops("deploy")
    assert code == 0, output
    assert "built bento" in output and "serving answers with champion version 1" in output
    server = serve(
        read_deployment()["bento_tag"], port=free_port(), deployment=deployment_file(), ready_timeout=150
    )
    try:
        with server_record(server):
            yield server
    finally:
        server.stop()


def test_promote_and_rollback_change_what_answers_shoppers(champion_served, data):
    url = champion_served.url
    code, report = status()
    assert code == 0 and report["serving"]["in_sync"], (report["stuck"], report["serving"])
    assert [s["model_version"] for s in report["serving"]["services"]] == ["1"]

    register(untrained_report(data), data)  # version 2, which the gate would reject
    code, output = recops("registry", "promote", "2", "--force")
    assert code == 0, output
    assert "serving answers with champion version 2" in output and answered(url) == "2"

    code, output = recops("registry", "rollback")
    assert code == 0, output
    assert "rolled back from version 2 to version 1" in output
    assert answered(url) == "1"
    swaps = [line for line in champion_served.server.log_tail(200_000).splitlines() if "now serving" in line]
    assert len(swaps) >= 2, swaps  # each worker says which model it swapped to
    code, report = status()
    assert code == 0 and report["champion"]["version"] == 1, report["stuck"]


def test_a_move_without_deploy_is_out_of_sync_until_recops_deploy(champion_served):
    code, output = recops("registry", "promote", "2", "--force", "--no-deploy")
    assert code == 0, output
    code, report = status()
    assert code == 1 and not report["serving"]["in_sync"]
    assert report["serving"]["desired_version"] == 2 and report["serving"]["deployed_version"] == "1"
    code, output = recops("deploy")
    assert code == 0, output
    assert "deployed" in output and answered(champion_served.url) == "2"
    assert "built bento" not in output  # version 2's bento was built by the promote before: reused
    code, _ = status()
    assert code == 0


def test_an_ungated_version_is_stuck_until_the_next_cycle_gates_it(champion_served, data):
    version = register(untrained_report(data), data).version  # registered; "died" before the gate
    code, report = status()
    assert code == 1 and [(s["kind"], s["version"]) for s in report["stuck"]] == [(UNGATED, version)]
    [repaired] = repair_stuck(GATE)
    assert repaired.kind == UNGATED and repaired.repaired.startswith("gated now")
    assert registry.get_version(version).tags["gate_decision"] in ("promoted", "rejected")
    assert find_stuck() == []


def test_a_promotion_whose_alias_move_was_lost_is_finished(champion_served, data, trained):
    """The gate tagged the challenger promoted, then the process died before the alias moved."""
    champion = registry.get_version(registry.CHAMPION).version
    version = register(trained, data).version
    with registry.mlflow_client() as client:
        for key, value in {"gate_decision": "promoted", "gate_champion_version": str(champion)}.items():
            client.set_model_version_tag(registry.MODEL_NAME, str(version), key, value)
    assert [(s.kind, s.version) for s in find_stuck()] == [(PROMOTED_NOT_CHAMPION, version)]
    [repaired] = repair_stuck(GATE)
    assert repaired.repaired and registry.get_version(registry.CHAMPION).version == version
    assert registry.get_version(version).tags["previous_champion"] == str(champion)
    code, output = recops("deploy")
    assert code == 0 and answered(champion_served.url) == str(version), output


def test_a_corrupt_champion_is_found_and_rolled_back(champion_served, recops_home):
    champion = registry.get_version(registry.CHAMPION)
    corrupted = 0
    for path in (recops_home / "mlflow").rglob(
        "checkpoint.pt"
    ):  # the champion's stored checkpoint: the one whose sha256 its tag records
        if file_sha256(path) == champion.tags["checkpoint_sha256"]:
            path.write_bytes(path.read_bytes()[:-64] + b"\0" * 64)
            corrupted += 1
    assert corrupted >= 1
    [state] = find_stuck()
    assert state.kind == CORRUPT_CHAMPION and "corrupt" in state.detail
    code, output = recops("bento", "build", "--alias", "champion")
    assert code == 2 and "is corrupt" in output
    [repaired] = repair_stuck(GATE)
    assert repaired.repaired.startswith("rolled back to version")
    assert registry.get_version(registry.CHAMPION).version == int(champion.tags["previous_champion"])


def test_an_unreachable_registry_is_an_error_not_nothing_to_deploy(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    code, output = recops("deploy")
    assert code == 2 and "error: MLflow store" in output, output
