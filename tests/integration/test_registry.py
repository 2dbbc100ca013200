"""The registry against real stores: embedded SQLite, and an mlflow server on PostgreSQL.

Two models trained on the cycle data: ``trained`` (learns the successor pattern, NDCG@10 near
1) and ``untrained`` (freshly initialised weights), so every gate outcome is clear-cut.
"""

import logging

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient
from typer.testing import CliRunner

from recops import registry
from recops.cli.registry import registry_app
from recops.config import GateConfig, load_config
from recops.registry import CHALLENGER, CHAMPION, MODEL_NAME, RegistryError
from recops.serving.recommender import Recommender
from recops.training.experiment import PreparedData, TrainingReport, train_and_evaluate
from tests.helpers import (
    GATE,
    LINEAGE,
    TINY,
    cycle_events,
    delete_registered_model,
    module_registry_home,
    prepared,
    register,
    require_tool,
    untrained_report,
)
from tests.integration import pg_mlflow

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def recops_home(tmp_path_factory):
    """One embedded store per module (overrides conftest's per-test home): MLflow's schema
    migrations take seconds. Each test starts from an empty registry (``empty_registry``)."""
    with module_registry_home(tmp_path_factory.mktemp("registry") / "recops-home") as home:
        yield home


@pytest.fixture(autouse=True)
def empty_registry(recops_home):
    delete_registered_model()


@pytest.fixture(scope="module")
def data() -> PreparedData:
    return prepared()


@pytest.fixture(scope="module")
def trained(data) -> TrainingReport:
    return train_and_evaluate(data, "sasrec", load_config(overrides={**TINY, "train.epochs": 2}))


@pytest.fixture(scope="module")
def untrained(data) -> TrainingReport:
    return untrained_report(data)


def aliases() -> dict[str, int]:
    return {alias: v.version for v in registry.list_versions() for alias in v.aliases}


def test_first_version_becomes_champion_and_the_run_is_complete(trained, data):
    version = register(trained, data)
    assert version.aliases == (CHALLENGER,)
    for key, value in LINEAGE.items():
        assert version.tags[key] == value
    assert version.tags["data_fingerprint"] == data.interactions.fingerprint
    assert version.tags["model"] == "sasrec" and version.tags["dataset"] == data.dataset

    run = MlflowClient(registry.tracking_uri()).get_run(version.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.hidden"] == "32" and run.data.params["train.epochs"] == "2"
    assert run.data.metrics["test_ndcg_10"] == pytest.approx(trained.test.metrics["ndcg@10"])
    assert run.data.metrics["test_slice_short_sessions_n"] == trained.test.slices["short_sessions"]["n"]
    losses = MlflowClient(registry.tracking_uri()).get_metric_history(version.run_id, "train_loss")
    assert [m.step for m in losses] == [1, 2]

    slow = registry.gate(config=GateConfig(latency_budget_ms=1e-6, sessions=5))
    assert not slow.promote and "latency_p95" in slow.reason
    assert registry.get_version(version.version).tags["gate_decision"] == "rejected"

    decision = registry.gate(config=GATE)
    assert decision.promote, decision.reason
    assert decision.reason.startswith("no champion yet")
    champion = registry.get_version(CHAMPION)
    assert champion.version == version.version and champion.aliases == (CHAMPION,)
    assert champion.tags["gate_decision"] == "promoted" and champion.tags["gate_reason"] == decision.reason
    assert "champion_since" in champion.tags and "previous_champion" not in champion.tags

    checkpoint, info = registry.load_checkpoint(CHAMPION)
    assert info.version == version.version and checkpoint.vocab == data.interactions.vocab
    for key, tensor in trained.checkpoint.state_dict.items():
        assert torch.equal(tensor, checkpoint.state_dict[key]), key


def test_worse_challenger_is_rejected_and_only_force_promotes_it(trained, untrained, data):
    first = register(trained, data)
    assert registry.gate(config=GATE).promote
    second = register(untrained, data)

    decision = registry.gate(config=GATE)
    assert not decision.promote
    assert "rejected: the mean difference is negative" in decision.reason
    assert decision.figures["ci_high"] < 0 and decision.figures["champion_version"] == first.version
    tags = registry.get_version(second.version).tags
    assert tags["gate_decision"] == "rejected" and tags["gate_reason"] == decision.reason
    assert float(tags["gate_mean_diff"]) == pytest.approx(decision.figures["mean_diff"], abs=1e-6)
    assert float(tags["gate_ci_low"]) <= float(tags["gate_ci_high"]) < 0
    assert aliases() == {CHAMPION: first.version, CHALLENGER: second.version}  # champion unchanged

    with pytest.raises(RegistryError, match=r"the gate rejected it.*--force"):
        registry.promote(second.version)
    forced = registry.promote(second.version, force=True)
    assert forced.aliases == (CHAMPION,)
    assert forced.tags["promoted_by"] == "force" and forced.tags["previous_champion"] == str(first.version)
    assert registry.rollback().version == first.version


def test_better_challenger_is_promoted_and_rollback_restores_the_previous_champion(trained, untrained, data):
    first = register(untrained, data)
    assert registry.gate(config=GATE).promote
    second = register(trained, data)

    decision = registry.gate(config=GATE)
    assert decision.promote, decision.reason
    assert decision.figures["ci_low"] > 0 and decision.reason.endswith("promoted")
    assert aliases() == {CHAMPION: second.version}  # challenger alias removed from the new champion
    assert registry.get_version(second.version).tags["previous_champion"] == str(first.version)
    with pytest.raises(RegistryError, match="already the champion"):
        registry.gate(second.version, GATE)

    restored = registry.rollback()
    assert restored.version == first.version and aliases() == {CHAMPION: first.version}
    assert registry.get_version(second.version).tags["rolled_back_to"] == str(first.version)
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback()
    assert aliases() == {CHAMPION: first.version}


def test_pyfunc_model_predicts_what_the_recommender_recommends(trained, data, caplog):
    with caplog.at_level(logging.WARNING, logger="mlflow"):
        register(trained, data)
    # the model is logged as code (MLflow's models from code), nothing pickled: no CloudPickle warning
    assert not [r.getMessage() for r in caplog.records if "CloudPickle" in r.getMessage()]
    assert registry.gate(config=GATE).promote
    mlflow.set_tracking_uri(registry.tracking_uri())
    try:
        model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{CHAMPION}")
    finally:
        mlflow.set_tracking_uri(None)
    vocab = trained.checkpoint.vocab
    sessions = [vocab.decode(h[-5:]) for h in data.split.test.inputs[:4]] + [[999_999], [vocab.items[0]]]
    ks = [10, 3, 5, 1, 4, 12]
    out = model.predict(pd.DataFrame({"session": sessions, "k": ks}))
    recommender = Recommender(trained.checkpoint)
    assert len(out) == len(sessions)
    for (_, row), session, k in zip(out.iterrows(), sessions, ks, strict=True):
        expected = recommender.recommend(session, k)
        assert list(row["items"]) == [item for item, _ in expected.items]
        np.testing.assert_allclose(list(row["scores"]), [score for _, score in expected.items], rtol=1e-6)
    default_k = model.predict(pd.DataFrame({"session": sessions[:1]}))  # no k column: k = 10
    assert list(default_k.iloc[0]["items"]) == [item for item, _ in recommender.recommend(sessions[0]).items]


@pytest.mark.parametrize(
    ("target", "attribute"),
    [(mlflow.pyfunc, "log_model"), (MlflowClient, "set_registered_model_alias")],
    ids=["model-logging-fails", "alias-fails-after-the-version-exists"],
)
def test_a_failed_registration_leaves_nothing_behind(
    trained, untrained, data, monkeypatch, target, attribute
):
    champion = register(trained, data)
    assert registry.gate(config=GATE).promote
    before = [(v.version, v.aliases) for v in registry.list_versions()]

    def fail(*args, **kwargs):
        raise OSError("disk full (injected)")

    monkeypatch.setattr(target, attribute, fail)
    with pytest.raises(RegistryError, match=r"nothing was registered \(run \w+ marked FAILED\).*disk full"):
        register(untrained, data)
    monkeypatch.undo()

    assert [(v.version, v.aliases) for v in registry.list_versions()] == before
    assert aliases() == {CHAMPION: champion.version}
    client = MlflowClient(registry.tracking_uri())
    experiment = client.get_experiment_by_name(registry.EXPERIMENT_NAME)
    latest = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert latest.info.status == "FAILED"


def test_after_a_data_change_the_champion_is_ranked_on_the_challengers_split(trained, data):
    """Continuous training: a challenger trained on new data is compared with the champion on
    the challenger's held-out sequences, the champion scoring them as it would serve them."""
    from recops.serving.recommender import Recommender
    from recops.training.metrics import per_sequence

    champion = register(trained, data)
    assert registry.gate(config=GATE).promote
    other = prepared(seed=1)
    stranger = register(untrained_report(other), other)
    decision = registry.gate(config=GATE)
    assert not decision.promote and "mean difference is negative" in decision.reason
    assert "challenger's test split (data changed" in decision.figures["champion_evaluated_on"]
    test = other.split.test
    vocab = other.interactions.vocab
    ranks = Recommender(trained.checkpoint).rank_targets(
        [vocab.decode(h) for h in test.inputs], vocab.decode(test.targets)
    )
    assert decision.figures["champion_ndcg"] == pytest.approx(per_sequence("ndcg", ranks, 10).mean())
    assert decision.figures["n_sequences"] == len(test)
    # per slice: the same items (none unknown to the champion), sessions of seven events
    assert [
        decision.figures[f"slice_{name}_n"] for name in ("short_sessions", "unknown_items", "new_items")
    ] == [0] * 3
    assert aliases() == {CHAMPION: champion.version, CHALLENGER: stranger.version}


def test_the_gate_refuses_other_data_without_a_saved_test_set(trained, data):
    champion = register(trained, data)
    assert registry.gate(config=GATE).promote
    other = prepared(seed=1)
    stranger = register(untrained_report(other), other, with_sessions=False)
    with pytest.raises(RegistryError, match="no saved test set to rank the champion on"):
        registry.gate(config=GATE)
    assert aliases() == {CHAMPION: champion.version, CHALLENGER: stranger.version}
    assert "gate_decision" not in registry.get_version(stranger.version).tags


def test_lineage_that_contradicts_the_checkpoint_is_refused(trained, data):
    with pytest.raises(RegistryError, match="contradicts the checkpoint"):
        register(trained, data, data_fingerprint="sha256:other")
    assert registry.list_versions() == []


def test_cli_list_gate_promote_rollback(trained, untrained, data, tmp_path):
    runner = CliRunner()
    empty = runner.invoke(registry_app, ["list"])
    assert empty.exit_code == 0 and "no versions" in empty.stdout
    register(trained, data)
    promoted = runner.invoke(registry_app, ["gate", "--latency-budget-ms", "2000"])
    assert promoted.exit_code == 0, promoted.output
    assert "PROMOTED" in promoted.stdout and "reason: no champion yet" in promoted.stdout

    register(untrained, data, with_sessions=False)
    rejected = runner.invoke(registry_app, ["gate", "--version", "2", "--latency-budget-ms", "2000"])
    assert rejected.exit_code == 3, rejected.output
    assert "version 2 vs champion version 1: REJECTED" in rejected.stdout
    assert "mean_diff" in rejected.stdout and "rejected: the mean difference is negative" in rejected.stdout

    refused = runner.invoke(registry_app, ["promote", "2", "--no-deploy"])
    assert refused.exit_code == 2 and "error: will not promote version 2" in refused.stderr
    forced = runner.invoke(registry_app, ["promote", "2", "--force", "--no-deploy"])
    assert (
        forced.exit_code == 0
        and "version 2 is now the champion (previous champion: version 1)" in forced.stdout
    )

    listing = runner.invoke(registry_app, ["list"])
    assert listing.exit_code == 0
    assert listing.stdout.splitlines()[0].split()[-1] == "lineage"
    rows = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
    assert "champion" in rows["2"] and "rejected" in rows["2"] and "promoted" in rows["1"]
    assert rows["1"].endswith(f"TrainRecommenderFlow/7 @0123abc data {data.interactions.fingerprint[7:15]}")

    back = runner.invoke(registry_app, ["rollback", "--no-deploy"])
    assert back.exit_code == 0 and "rolled back from version 2 to version 1" in back.stdout
    again = runner.invoke(registry_app, ["rollback", "--no-deploy"])
    assert (
        again.exit_code == 2 and "error: version 1 became champion with no champion before it" in again.stderr
    )
    nothing = runner.invoke(registry_app, ["gate"])
    assert nothing.exit_code == 2 and "error: no challenger to gate" in nothing.stderr
    # --config's [gate] is the base: a latency ceiling no model meets rejects version 2 again
    strict = tmp_path / "strict.toml"
    strict.write_text("[gate]\nlatency_budget_ms = 0.000001\n")
    slow = runner.invoke(registry_app, ["gate", "--version", "2", "--config", str(strict), "--force"])
    assert slow.exit_code == 3 and "latency_p95 (p95" in slow.stdout and "ceiling 0.0 ms" in slow.stdout, (
        slow.output
    )
    missing = runner.invoke(registry_app, ["gate", "--version", "9"])
    assert missing.exit_code == 2 and "has no version 9" in missing.stderr


@pytest.mark.slow
def test_register_gate_promote_on_an_mlflow_server_backed_by_postgresql(
    trained, untrained, data, tmp_path, monkeypatch
):
    bin_dir = pg_mlflow.postgres_bin_dir()
    require_tool(
        bin_dir is not None, "PostgreSQL's initdb/pg_ctl are not on PATH nor in /usr/lib/postgresql/*/bin"
    )
    with (
        pg_mlflow.postgres_database(bin_dir) as database,
        pg_mlflow.mlflow_server(database, tmp_path) as server,
    ):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # a dead server fails fast
        assert registry.tracking_uri() == server.url

        first = register(trained, data)
        assert registry.gate(config=GATE).promote
        second = register(untrained, data)
        assert not registry.gate(config=GATE).promote
        registry.promote(second.version, force=True)
        checkpoint, info = registry.load_checkpoint(CHAMPION)
        assert info.version == second.version
        assert all(
            torch.equal(t, checkpoint.state_dict[k]) for k, t in untrained.checkpoint.state_dict.items()
        )
        assert registry.rollback().version == first.version
        assert {v.version: v.aliases for v in registry.list_versions()} == {1: (CHAMPION,), 2: ()}
        assert list(server.artifacts.rglob("checkpoint.pt"))  # artifacts went through the server's proxy


def test_a_missing_data_profile_is_none_but_an_unreadable_registry_is_an_error(trained, data, monkeypatch):
    from recops.data import validate_events
    from recops.data.profile import data_profile

    without = register(trained, data)
    assert registry.load_data_profile(without.version) is None  # registered without one
    profile = data_profile(validate_events(cycle_events()), data.interactions.fingerprint)
    with_profile = registry.log_and_register(
        trained.checkpoint, trained.train.history, trained.test, LINEAGE, data_profile=profile
    )
    assert registry.load_data_profile(with_profile.version) == profile

    def unreachable(*args, **kwargs):
        raise OSError("connection refused (injected)")

    monkeypatch.setattr(MlflowClient, "list_artifacts", unreachable)
    with pytest.raises(RegistryError, match=r"cannot read the data profile of version .*connection refused"):
        registry.load_data_profile(without.version)


def test_a_warm_started_version_names_what_it_started_from(trained, data):
    first = register(trained, data)
    assert "warm_started_from" not in first.tags
    champion, info = registry.load_checkpoint(first.version)
    cfg = load_config(overrides={**TINY, "train.warm_epochs": 1})
    warm = train_and_evaluate(data, "sasrec", cfg, warm_from=(champion, f"version {info.version}"))
    second = register(warm, data)
    assert second.tags["warm_started_from"] == f"version {first.version}"
    reloaded, _ = registry.load_checkpoint(second.version)
    assert reloaded.warm_start == warm.checkpoint.warm_start and reloaded.warm_start["kept_items"] > 0
    run = MlflowClient(registry.tracking_uri()).get_run(second.run_id)
    assert run.data.params["train.epochs"] == "1"  # the warm budget is what it trained with


def test_warm_start_choice_resolves_to_a_registered_version(trained, data):
    from recops.config import ConfigError
    from recops.pipeline.steps import warm_start_version

    assert warm_start_version("") is None
    assert warm_start_version("champion") is None  # no champion yet: from scratch
    version = register(trained, data).version
    assert registry.gate(config=GATE).promote
    assert warm_start_version("champion") == warm_start_version(str(version)) == version
    # the champion was trained on these very events: continuing it on them is pointless
    fingerprint = trained.checkpoint.data_fingerprint
    assert warm_start_version("champion", fingerprint) is None
    assert warm_start_version("champion", "sha256:other-events") == version
    assert warm_start_version(str(version), fingerprint) == version  # a version asked for by number
    with pytest.raises(registry.RegistryError, match="999"):
        warm_start_version("999")
    with pytest.raises(ConfigError, match="--warm_start must be 'champion' or a version number, got 'best'"):
        warm_start_version("best")


def test_re_gating_appends_the_decision_and_rollback_refuses_a_rejected_version(trained, untrained, data):
    from recops.registry.history import decision_history

    first = register(untrained, data)
    assert registry.gate(config=GATE).promote
    second = register(trained, data)
    assert registry.gate(config=GATE).promote
    regated = registry.gate(first.version, GATE)  # the old champion against the new one
    assert not regated.promote
    history = decision_history(registry.get_version(first.version).tags)
    assert [r["action"] for r in history] == ["promoted", "rejected"]
    assert history[0]["reason"].startswith("no champion yet") and history[1]["champion"] == str(
        second.version
    )
    listing = CliRunner().invoke(registry_app, ["list"])
    assert "rejected (2 decisions)" in listing.stdout, listing.output

    runner = CliRunner()
    refused = runner.invoke(registry_app, ["rollback", "--no-deploy"])
    assert refused.exit_code == 2, refused.output
    assert f"will not roll back to version {first.version}: the gate rejected it" in refused.stderr
    assert "--force" in refused.stderr and aliases() == {CHAMPION: second.version}
    forced = runner.invoke(registry_app, ["rollback", "--force", "--no-deploy"])
    assert forced.exit_code == 0, forced.output
    assert aliases() == {CHAMPION: first.version}


def test_rollback_walks_back_the_champion_history_instead_of_toggling(trained, untrained, data):
    one = register(untrained, data).version
    assert registry.gate(config=GATE).promote
    two = register(trained, data).version
    assert registry.gate(config=GATE).promote
    three = register(trained, data).version
    assert registry.gate(config=GateConfig(latency_budget_ms=2000.0, sessions=30, margin=0.5)).promote
    registry.promote(two)  # approved by the gate: back by hand; history 1, 2, 3, 2
    targets = []
    for _ in range(3):
        targets.append(registry.rollback_target())
        assert registry.rollback().version == targets[-1]
    assert targets == [three, two, one] and registry.rollback_target() is None
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback()
    assert registry.get_version(two).tags["rolled_back_to"] == str(one)


class Crash(BaseException):
    """The process dying at this call (not an Exception: nothing on the way catches it)."""


def crash_on(monkeypatch, attribute: str, when=lambda *args: True) -> None:
    original = getattr(MlflowClient, attribute)

    def dying(self, *args, **kwargs):
        if when(*args):
            raise Crash(attribute)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, attribute, dying)


def test_a_promotion_that_dies_after_the_alias_moved_is_completed_when_read(
    trained, untrained, data, monkeypatch
):
    one = register(untrained, data).version
    assert registry.gate(config=GATE).promote
    two = register(trained, data).version
    crash_on(monkeypatch, "set_registered_model_tag")  # the history write
    with pytest.raises(Crash):
        registry.gate(config=GATE)
    monkeypatch.undo()
    assert aliases() == {CHAMPION: two}
    assert registry.get_version(two).tags["gate_decision"] == "promoted"
    assert registry.rollback().version == one  # the history was completed from the alias


def test_a_rollback_that_dies_before_the_alias_moved_is_as_if_not_started(
    trained, untrained, data, monkeypatch
):
    one = register(untrained, data).version
    assert registry.gate(config=GATE).promote
    two = register(trained, data).version
    assert registry.gate(config=GATE).promote
    crash_on(monkeypatch, "set_registered_model_alias")
    with pytest.raises(Crash):
        registry.rollback()
    monkeypatch.undo()
    assert aliases() == {CHAMPION: two} and "rolled_back_at" not in registry.get_version(two).tags
    assert registry.rollback().version == one  # run again: one step back, not two
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback()


def test_a_re_gating_that_dies_halfway_leaves_no_half_decision(trained, untrained, data, monkeypatch):
    from recops.continuous.health import UNGATED, find_stuck
    from recops.registry.history import decision_history

    register(trained, data)
    assert registry.gate(config=GATE).promote
    second = register(untrained, data).version
    assert not registry.gate(config=GATE).promote
    crash_on(
        monkeypatch, "set_model_version_tag", lambda name, version, key, value=None: key == "gate_decision"
    )
    with pytest.raises(Crash):
        registry.gate(second, GATE)
    monkeypatch.undo()
    tags = registry.get_version(second).tags
    assert "gate_decision" not in tags  # figures of a decision that never completed decide nothing
    assert [r["action"] for r in decision_history(tags)] == ["rejected"]  # the earlier one is kept
    assert (UNGATED, second) in [(s.kind, s.version) for s in find_stuck(verify_champion=False)]
    assert not registry.gate(second, GATE).promote  # what the next cycle's repair does
    assert [r["action"] for r in decision_history(registry.get_version(second).tags)] == ["rejected"] * 2


def _prepared_from(events: pd.DataFrame, name: str):
    from recops.data import build_interactions, leave_one_out_split, validate_events
    from recops.training.experiment import PreparedData

    inter = build_interactions(validate_events(events))
    return PreparedData(name, inter, leave_one_out_split(inter))


def test_the_gate_refuses_another_catalogue_unless_forced(trained, data):
    champion = register(trained, data)
    assert registry.gate(config=GATE).promote
    events = cycle_events(seed=1)
    events["item_id"] += 400  # another shop: no item in common
    other = _prepared_from(events, "cycle-other-shop")
    stranger = register(untrained_report(other), other)
    refused = registry.gate(config=GATE)
    assert not refused.promote and refused.reason.startswith("not compared: champion version 1")
    assert (
        "different item catalogues (the champion knows only 0 of the challenger's 12 items" in refused.reason
    )
    assert "ci_low" not in refused.figures and aliases()[CHAMPION] == champion.version
    forced = registry.gate(stranger.version, GATE, force=True)
    assert "not compared" not in forced.reason and "champion_ndcg" in forced.figures


def test_the_gate_refuses_a_challenger_whose_test_sequences_are_in_its_training_data():
    events = cycle_events()
    again = events.assign(timestamp=events["timestamp"] + 0.5)  # every event re-sent half a second later
    doubled = _prepared_from(pd.concat([events, again], ignore_index=True), "cycle-twice")
    register(untrained_report(doubled), doubled)
    decision = registry.gate(config=GATE)
    assert not decision.promote
    assert "300 of 300 test sequences (100%, more than 5%) appear in its own training data" in decision.reason
    assert registry.get_version(CHALLENGER).tags["gate_decision"] == "rejected"
