"""A challenger in shadow against a real MLflow registry: gate.require_shadow holds it back,
the online check promotes or rejects it on what shoppers did next, and finishes a promotion a
crash interrupted.

Served lists are written through the served-list log exactly as the service writes them (the
service's own shadow scoring is tested in test_bento_service.py); follow-up events are an
ordinary incoming file.
"""

import time

import pandas as pd
import pytest

from recops import registry
from recops.config import load_config
from recops.continuous.online_check import check_online
from recops.registry import CHAMPION
from recops.registry.store import MODEL_NAME
from recops.serving.recommender import Recommender
from recops.serving.served_log import ServedLog, ServedRecord
from recops.store import Store
from recops.training.experiment import train_and_evaluate
from tests.helpers import (
    GATE,
    TINY,
    delete_registered_model,
    module_registry_home,
    prepared,
    register,
    untrained_report,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_ITEMS = 12  # the cycle data: item 100 + i is always followed by 100 + (i + 1) % 12


@pytest.fixture(scope="module", autouse=True)
def recops_home(tmp_path_factory):
    with module_registry_home(tmp_path_factory.mktemp("shadow") / "recops-home") as home:
        yield home


@pytest.fixture(autouse=True)
def empty_registry(recops_home):
    """An empty registry, and no served lists or events of an earlier test (whose version
    numbers the next registrations reuse)."""
    import shutil

    delete_registered_model()
    for folder in ("served", "incoming"):
        shutil.rmtree(recops_home / folder, ignore_errors=True)


@pytest.fixture(scope="module")
def data():
    return prepared()


@pytest.fixture(scope="module")
def trained(data):
    return train_and_evaluate(data, "sasrec", load_config(overrides={**TINY, "train.epochs": 2}))


@pytest.fixture(scope="module")
def untrained(data):
    return untrained_report(data)


def serve_in_shadow(recops_home, champion, shadow, champion_version: int, shadow_version: int, n: int = 120):
    """What a server with ``shadow`` in its shadow slot logs for ``n`` shoppers, and each
    shopper's next event (the successor of the last item) in an incoming file."""
    store = Store(recops_home)
    log = ServedLog(store, flush_seconds=3600)
    start = time.time() - 600
    events = []
    for i in range(n):
        session = [100 + (i + j) % N_ITEMS for j in range(3)]
        at = start + i
        for role, model, version in (
            ("champion", champion, champion_version),
            ("shadow", shadow, shadow_version),
        ):
            answer = Recommender(model.checkpoint).recommend(session, 10)
            info = {"name": MODEL_NAME, "version": str(version)}
            log.record(ServedRecord(f"r{i}", at, f"s{i}", session, answer, info, role, N_ITEMS, "recommend"))
        events.append((f"s{i}", 100 + (i + 3) % N_ITEMS, at + 1))
    log.close()
    folder = recops_home / "incoming"
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(events, columns=["session_id", "item_id", "timestamp"]).to_csv(
        folder / f"f-{time.time()}.csv", index=False
    )


def config():
    return load_config(
        overrides={"online.min_pairs": 50, "gate.latency_budget_ms": 2000.0, "gate.sessions": 30}
    )


def test_require_shadow_holds_a_better_challenger_back_until_the_online_check_promotes_it(
    recops_home, trained, untrained, data
):
    first = register(untrained, data)
    assert registry.gate(config=GATE).promote  # no champion yet: nothing to shadow against
    second = register(trained, data)
    decision = registry.gate(config=config().gate.model_copy(update={"require_shadow": True}))
    assert decision.action.value == "shadow" and "scored in shadow" in decision.reason
    assert registry.get_version(first.version).is_champion  # the alias did not move
    assert registry.get_version(second.version).tags["gate_decision"] == "shadow"

    serve_in_shadow(recops_home, untrained, trained, first.version, second.version)
    checked = check_online(config())
    [settled] = checked.shadow_decisions
    assert (settled.version, settled.action) == (second.version, "promoted"), settled.reason
    now = registry.get_version(second.version)
    assert now.is_champion and now.tags["gate_decision"] == "promoted" and "passes" in now.tags["gate_reason"]
    assert int(now.tags["shadow_pairs"]) == 120 and float(now.tags["shadow_ci_low"]) > 0
    assert now.tags["promoted_by"] == "shadow"


def test_a_challenger_worse_online_is_rejected_and_the_champion_stays(recops_home, trained, untrained, data):
    first = register(trained, data)
    assert registry.gate(config=GATE).promote
    second = register(untrained, data)
    with registry.mlflow_client() as client:  # it passed offline (say) and waits in shadow
        client.set_model_version_tag(MODEL_NAME, str(second.version), "gate_decision", "shadow")
    serve_in_shadow(recops_home, trained, untrained, first.version, second.version)
    [settled] = check_online(config()).shadow_decisions
    assert settled.action == "rejected" and "fails" in settled.reason
    assert registry.get_version(first.version).is_champion
    assert registry.get_version(second.version).tags["gate_decision"] == "rejected"


def test_a_promotion_interrupted_after_the_alias_moved_is_finished(recops_home, trained, untrained, data):
    register(untrained, data)
    assert registry.gate(config=GATE).promote
    second = register(trained, data)
    with registry.mlflow_client() as client:
        client.set_model_version_tag(MODEL_NAME, str(second.version), "gate_decision", "shadow")
        client.set_registered_model_alias(MODEL_NAME, CHAMPION, str(second.version))  # then the crash
    [finished] = check_online(config()).shadow_decisions
    assert (finished.version, finished.action) == (second.version, "promoted")
    assert registry.get_version(second.version).tags["gate_decision"] == "promoted"
