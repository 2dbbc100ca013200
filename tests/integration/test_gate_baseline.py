"""The gate against the best simple baseline, on a real (embedded SQLite) registry.

Cycle data (each item is followed by the next one): a Markov chain predicts every held-out item
exactly, so an untrained SASRec is a challenger it clearly beats, and a trained one ties with it.
"""

from dataclasses import replace

import numpy as np
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from recops import registry
from recops.cli.registry import registry_app
from recops.config import BASELINES, load_config
from recops.pipeline.steps import register_and_gate
from recops.registry import CHALLENGER, CHAMPION, RegistryError
from recops.registry.versions import download_evaluation, version_info
from recops.training.baselines import BaselineResult, baseline_to_beat
from recops.training.evaluate import EvalResult, evaluate_model
from recops.training.experiment import PreparedData, fit, train_and_evaluate
from tests.helpers import (
    GATE,
    TINY,
    delete_registered_model,
    module_registry_home,
    prepared,
    register,
    untrained_report,
)

pytestmark = pytest.mark.integration

SETTINGS = load_config(overrides={**TINY, "gate.latency_budget_ms": 2000.0, "gate.sessions": 30})


@pytest.fixture(scope="module", autouse=True)
def recops_home(tmp_path_factory):
    """One embedded store per module (MLflow's schema migrations take seconds); each test starts
    from an empty registry (``empty_registry``)."""
    with module_registry_home(tmp_path_factory.mktemp("gate-baseline") / "recops-home") as home:
        yield home


@pytest.fixture(autouse=True)
def empty_registry(recops_home):
    delete_registered_model()


@pytest.fixture(scope="module")
def data() -> PreparedData:
    return prepared()


@pytest.fixture(scope="module")
def markov_wins(data) -> BaselineResult:
    baseline = baseline_to_beat("sasrec", data, SETTINGS)
    assert baseline is not None
    return baseline


def register_like_the_flow(report, data, baseline):
    """What TrainRecommenderFlow's register step does, in this process."""
    version, decision = register_and_gate(
        report.checkpoint,
        [],
        report.test,
        data.split.test,
        "TrainRecommenderFlow/1",
        SETTINGS,
        baseline=baseline,
    )
    return registry.get_version(version["version"]), registry.GateDecision.from_dict(decision)


def test_the_best_baseline_is_chosen_on_validation_and_ranked_on_the_same_test_split(data, markov_wins):
    assert list(markov_wins.valid_ndcg) == list(BASELINES)
    assert markov_wins.name == "markov"  # ties with sr at 1.0: the first, the simpler, wins
    assert markov_wins.valid_ndcg["markov"] == max(markov_wins.valid_ndcg.values()) == pytest.approx(1.0)
    assert markov_wins.test.sequence_ids == data.split.test.sequence_ids
    assert markov_wins.test.metrics["ndcg@10"] == pytest.approx(1.0)
    assert markov_wins.seconds < 30


def test_no_baseline_for_a_simple_model_or_when_the_gate_does_not_ask(data):
    assert all(baseline_to_beat(name, data, SETTINGS) is None for name in BASELINES)
    off = load_config(overrides={**TINY, "gate.require_beat_baseline": False})
    assert baseline_to_beat("sasrec", data, off) is None


def test_a_challenger_the_markov_chain_beats_is_rejected_with_the_figures_in_its_tags(
    data, markov_wins, tmp_path
):
    untrained = untrained_report(data)
    version, decision = register_like_the_flow(untrained, data, markov_wins)

    assert not decision.promote  # though there is no champion yet
    figures = decision.figures
    assert figures["baseline_model"] == "markov" and figures["baseline_ndcg"] == pytest.approx(1.0)
    expected = (
        f"rejected: markov beats it: NDCG@10 1.0000 vs {figures['challenger_ndcg']:.4f}, "
        f"95% CI of the difference [{figures['baseline_ci_low']:+.4f}, {figures['baseline_ci_high']:+.4f}]"
    )
    assert expected in decision.reason
    tags = registry.get_version(version.version).tags
    assert tags["gate_decision"] == "rejected" and tags["gate_reason"] == decision.reason
    assert tags["gate_baseline_model"] == "markov" and float(tags["gate_baseline_ci_high"]) < 0
    # the registration's own figures: how far below the simple model this version stands
    assert tags["baseline_model"] == "markov" and float(tags["baseline_ndcg_10"]) == pytest.approx(1.0)
    assert float(tags["baseline_hr_10"]) == pytest.approx(1.0)
    lift = untrained.test.metrics["ndcg@10"] - 1.0
    assert float(tags["baseline_lift_ndcg_10"]) == pytest.approx(lift, abs=1e-5)
    assert tags["baseline_candidates"].startswith("markov=1.0000,sr=1.0000,vsknn=")
    run = MlflowClient(registry.tracking_uri()).get_run(version.run_id)
    assert run.data.params["baseline.model"] == "markov"
    assert run.data.metrics["baseline_test_ndcg_10"] == pytest.approx(1.0)
    assert registry.list_versions()[0].aliases == (CHALLENGER,)  # no champion moved

    # `recops registry gate N` later: only what registration saved, the same decision
    with registry.mlflow_client() as client:
        saved = download_evaluation(client, version_info(client, version.version), tmp_path)
    assert saved.baseline is not None and saved.baseline.name == "markov"
    np.testing.assert_array_equal(saved.baseline.ranks, markov_wins.test.ranks)
    assert registry.gate(version.version, SETTINGS.gate).reason == decision.reason
    listing = CliRunner().invoke(registry_app, ["list"])
    assert listing.exit_code == 0 and f"{lift:+.4f} markov" in listing.stdout

    # the switch: without the requirement it is gated as before (no champion: promoted)
    relaxed = CliRunner().invoke(
        registry_app,
        [
            "gate",
            "--version",
            str(version.version),
            "--latency-budget-ms",
            "2000",
            "--no-require-beat-baseline",
        ],
    )
    assert relaxed.exit_code == 0, relaxed.output
    assert "PROMOTED" in relaxed.stdout and "not required" in relaxed.stdout
    tags = registry.get_version(version.version).tags
    assert tags["gate_baseline"].startswith("not required") and "gate_baseline_model" not in tags


def test_a_challenger_clearly_above_the_baseline_is_promoted(data):
    """A trained SASRec against a weak baseline (most popular), through the registry."""
    trained = train_and_evaluate(data, "sasrec", load_config(overrides={**TINY, "train.epochs": 1}))
    popular = fit(data, "popular", SETTINGS)
    weak = BaselineResult(
        "popular",
        popular.train.valid_metrics,
        evaluate_model(popular.train.model, data.split.test),
        0.0,
        {"popular": popular.train.valid_metrics["ndcg@10"]},
    )
    version, decision = register_like_the_flow(trained, data, weak)
    assert decision.promote, decision.reason
    assert "beats the best simple baseline popular (NDCG@10" in decision.reason
    assert registry.get_version(CHAMPION).version == version.version
    assert float(registry.get_version(version.version).tags["gate_baseline_ci_low"]) > 0


def test_a_simple_model_challenger_is_not_compared_with_baselines(data):
    markov = train_and_evaluate(data, "markov", SETTINGS)
    baseline = baseline_to_beat("markov", data, SETTINGS)
    version, decision = register_like_the_flow(markov, data, baseline)
    assert decision.promote, decision.reason
    assert decision.figures["baseline"] == "not compared: markov is itself a simple baseline"
    tags = registry.get_version(version.version).tags
    assert tags["gate_baseline"] == decision.figures["baseline"]
    assert "baseline_model" not in tags and "gate_baseline_model" not in tags


def test_a_version_registered_without_a_baseline_is_gated_as_before(data):
    version = register(untrained_report(data), data)
    decision = registry.gate(version.version, GATE)
    assert decision.promote and decision.reason.startswith("no champion yet")
    assert registry.get_version(version.version).tags["gate_baseline"] == "none recorded at registration"


def test_a_baseline_over_other_sequences_is_refused_before_anything_is_registered(data, markov_wins):
    test = markov_wins.test
    foreign = replace(markov_wins, test=EvalResult(test.metrics, test.ranks[1:], test.sequence_ids[1:]))
    with pytest.raises(RegistryError, match="not evaluated on the same test sequences"):
        register_like_the_flow(untrained_report(data), data, foreign)
    assert registry.list_versions() == []


def test_a_failed_registration_with_a_baseline_leaves_nothing_behind(data, markov_wins, monkeypatch):
    import mlflow.pyfunc

    def fail(*args, **kwargs):
        raise OSError("disk full (injected)")

    monkeypatch.setattr(mlflow.pyfunc, "log_model", fail)
    with pytest.raises(RegistryError, match=r"nothing was registered \(run \w+ marked FAILED\)"):
        register_like_the_flow(untrained_report(data), data, markov_wins)
    monkeypatch.undo()
    assert registry.list_versions() == []
