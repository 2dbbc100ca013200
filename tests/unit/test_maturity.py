"""recops maturity: a fresh home is level 0 with every reason named; the demo's facts give
Google level 1, Microsoft level 2 and an ML Test Score of 2.5; and every item of the three
rubrics flips with the one fact it is judged on (facts built here; the judging is real)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from recops.cicd import maturity
from recops.cicd.maturity import Facts, score
from recops.config import load_config
from recops.paths import REPO_ROOT
from tests.helpers import copy_of_the_specs

pytestmark = pytest.mark.unit

RUN = "TrainRecommenderFlow/17"
STEPS = dict.fromkeys(("start", "validate", "split", "train", "evaluate", "report", "register", "end"), True)


def deployment(name: str, paused: bool = False, active: bool = True):
    return SimpleNamespace(
        name=f"retrain/{name}",
        id="0123456789abcdef",
        paused=paused,
        readiness=None,
        work_pool=None,
        schedules=(SimpleNamespace(active=active),),
    )


def level_one_facts(root=REPO_ROOT) -> Facts:
    """What a home after `make demo` holds, as facts: a gated champion whose cycle deployed it
    and whose served lists were measured, the schedules registered."""
    champion = SimpleNamespace(
        version=3,
        run_id="37ae921ad52341ff",
        is_champion=True,
        tags={
            "metaflow_pathspec": RUN,
            "git_commit": "6f5b5e5271e4d831",
            "config_hash": "sha256:e29f",
            "data_fingerprint": "sha256:1",
            "test_ndcg_10": "0.5476",
            "gate_decision": "promoted",
            "gate_reason": "challenger NDCG@10 0.5476 vs champion 0.5099",
            "gate_history": json.dumps([{"action": "promoted", "reason": "challenger wins"}]),
            "gate_baseline": "not compared: markov is itself a simple baseline",
            "gate_check_finite_scores": "0 of 200 sessions had a NaN or infinite score",
            "gate_check_latency_p95": "p95 0.37 ms; champion p95 0.40 ms side by side",
            "gate_slice_short_sessions_n": "527",
            "promoted_by": "gate",
            "online_ndcg_at_10": "0.46",
            "online_pairs": "300",
            "online_role": "champion",
        },
    )
    return Facts(
        root=root,
        versions=[champion],
        champion=champion,
        metaflow_runs=[{"pathspec": RUN, "successful": True, "steps": dict(STEPS)}],
        tuning_runs=[],
        last_cycle={
            "outcome": "retrained, promoted",
            "plan": "retrain: drift in item popularity",
            "at": "t",
            "flow_run_id": "fcdfb9ce",
            "data": {"sources": ["synthetic", "incoming/demo-0001.csv"]},
            "quarantined": [],
            "change": {
                "champion_age_hours": 0.01,
                "online": {"baseline": 0.57, "baseline_source": "offline", "max_drop": 0.3},
            },
            "deployed": {
                "desired_version": 3,
                "deployed_version": "3",
                "bento_tag": "session_recommender:abc",
                "actions": ["deployed session_recommender:abc (local)"],
                "in_sync": True,
            },
        },
        provenance=[],
        prefect=SimpleNamespace(
            api_source="temporary API",
            deployments=(deployment("nightly-retrain"), deployment("hourly-drift-check")),
        ),
        config=load_config(None),
        git_commit="4e16841e433b0000",
    )


def items(facts: Facts) -> dict[str, maturity.Item]:
    return {item.key: item for item in score(facts).items}


def test_a_fresh_home_is_level_0_and_says_why(recops_home, monkeypatch):
    # set here, so that recops's setdefault of Prefect's home does not outlive this test
    monkeypatch.setenv("PREFECT_HOME", str(recops_home / "prefect"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    result = score(maturity.read_facts(REPO_ROOT))
    assert result.level == 0
    failed = {i.key: i.evidence for i in result.items if not i.passed}
    assert {"orchestrated_pipeline", "continuous_training", "model_validation", "pipeline_deployed"} <= set(
        failed
    )
    assert "no successful TrainRecommenderFlow run" in failed["orchestrated_pipeline"]
    assert "no Prefect API" in failed["pipeline_deployed"]
    assert "CD never ran here" in failed["cd"]


def test_the_demos_facts_are_level_1_with_cd_named_missing():
    result = score(level_one_facts())
    assert result.level == 1
    assert [i.key for i in result.items if not i.passed] == ["cd"]


def test_a_recorded_release_makes_it_level_2():
    facts = level_one_facts()
    facts.provenance = [SimpleNamespace(released_at="2026-12-04T18:00:00+00:00", stack="dev", links={})]
    assert score(facts).level == 2


@pytest.mark.parametrize(
    ("key", "break_it"),
    [
        ("orchestrated_pipeline", lambda f: setattr(f, "metaflow_runs", [])),
        ("continuous_training", lambda f: setattr(f, "last_cycle", {"outcome": "skipped", "plan": "skip"})),
        (  # pausing the schedules drops continuous training
            "continuous_training",
            lambda f: setattr(
                f.prefect,
                "deployments",
                (deployment("nightly-retrain", paused=True), deployment("hourly-drift-check", paused=True)),
            ),
        ),
        ("data_validation", lambda f: f.metaflow_runs[0]["steps"].update(validate=False)),
        ("model_validation", lambda f: f.champion.tags.update(gate_history="[]")),
        ("metadata_store", lambda f: f.champion.tags.update(git_commit="")),
        ("pipeline_deployed", lambda f: setattr(f.prefect, "deployments", ())),
        (
            "monitoring_triggers",
            lambda f: setattr(
                f.prefect,
                "deployments",
                (deployment("nightly-retrain"), deployment("hourly-drift-check", paused=True)),
            ),
        ),
    ],
)
def test_each_characteristic_flips_with_its_fact(key, break_it):
    facts = level_one_facts()
    assert items(facts)[key].passed
    break_it(facts)
    flipped = items(facts)[key]
    assert not flipped.passed and flipped.evidence


def test_an_aws_file_that_runs_something_else_drops_the_same_pipeline(tmp_path):
    copy_of_the_specs(tmp_path, "prefect.yaml", "prefect.ecs.yaml", "infra/terraform/envs")
    assert items(level_one_facts(root=tmp_path))["same_pipeline_dev_prod"].passed
    aws = tmp_path / "prefect.ecs.yaml"
    aws.write_text(aws.read_text().replace('cron: "0 2 * * *"', 'cron: "0 5 * * *"'))
    assert not items(level_one_facts(root=tmp_path))["same_pipeline_dev_prod"].passed


def test_deleting_the_workflows_drops_ci_and_cd(tmp_path):
    copy_of_the_specs(tmp_path, "prefect.yaml", "prefect.ecs.yaml", "infra/terraform/envs")
    facts = level_one_facts(root=tmp_path)
    facts.provenance = [SimpleNamespace(released_at="t", stack="dev", links={})]
    judged = items(facts)
    assert not judged["ci"].passed and not judged["cd"].passed
    assert score(facts).level == 1


# --- Microsoft's levels and the ML Test Score ------------------------------------------------------

# Every file an item of the rubrics cites, copied, so that a test can delete or edit one.
EVIDENCE = (
    ".github",
    "prefect.yaml",
    "prefect.ecs.yaml",
    "infra/terraform/envs",
    "infra/terraform/modules/s3_bucket/main.tf",
    "infra/docker/training/Dockerfile",
    "constraints.txt",
    "README.md",
    "tests",
)


def demo_facts(tmp_path) -> Facts:
    return level_one_facts(root=copy_of_the_specs(tmp_path / "checkout", *EVIDENCE))


def drop(path: str):
    return lambda f: (f.root / path).unlink()


def edit(path: str, old: str, new: str):
    def change(f):
        target = f.root / path
        text = target.read_text()
        assert old in text, f"{old!r} is not in {path}"
        target.write_text(text.replace(old, new))

    return change


def configure(**overrides):
    return lambda f: setattr(f, "config", load_config(None, {f"gate.{k}": v for k, v in overrides.items()}))


def points_of(facts: Facts) -> dict[str, float]:
    return {t.key: t.points for t in score(facts).ml_tests.tests}


def test_a_fresh_home_has_an_ml_test_score_of_0_and_no_mlops_beyond_devops(recops_home, monkeypatch):
    monkeypatch.setenv("PREFECT_HOME", str(recops_home / "prefect"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    result = score(maturity.read_facts(REPO_ROOT))
    # the checkout is under git and CI tests it (Microsoft 1); nothing has trained, served or been gated
    assert result.microsoft.level == 1
    assert result.ml_tests.score == 0 and result.ml_tests.sections["model"] == 0
    assert result.ml_tests.readiness == "more of a research project than a productionized system"
    zero = {t.key: t.evidence for t in result.ml_tests.tests if t.points == 0}
    assert zero["validated_before_serving"] == "no champion"
    assert "no cycle has" in zero["data_invariants"]


def test_the_demos_facts_are_microsoft_2_and_an_ml_test_score_of_2_5(tmp_path):
    result = score(demo_facts(tmp_path))
    assert result.microsoft.level == 2
    assert [i.key for i in result.microsoft.items if not i.passed] == ["ab_testing"]
    assert result.ml_tests.sections == {"data": 5.5, "model": 2.5, "infrastructure": 5.5, "monitoring": 7.0}
    assert result.ml_tests.score == 2.5
    # the copy judges as the checkout does: the flips below start from the truth
    assert points_of(level_one_facts()) == points_of(demo_facts(tmp_path / "again"))
    report = maturity.render(result)
    assert "## Microsoft's MLOps maturity: level 2 (automated training)" in report
    assert "## ML Test Score: 2.5 (reasonably tested;" in report
    as_json = json.loads(json.dumps(result.to_dict()))
    assert as_json["ml_test_score"]["score"] == 2.5 and len(as_json["ml_test_score"]["tests"]) == 28


def test_a_shadow_canary_makes_it_microsoft_4():
    facts = level_one_facts()
    configure(require_shadow=True)(facts)
    assert score(facts).microsoft.level == 4


MICROSOFT_FLIPS = [
    ("version_control", lambda f: setattr(f, "git_commit", None)),
    ("automated_builds_and_tests", drop(".github/workflows/ci.yml")),
    ("automated_training", lambda f: setattr(f, "metaflow_runs", [])),
    ("training_tracked", lambda f: f.champion.tags.pop("test_ndcg_10")),
    ("model_management", lambda f: setattr(f, "champion", None)),
    (
        "recurring_training",
        lambda f: setattr(f.prefect, "deployments", (deployment("nightly-retrain", True),)),
    ),
    ("managed_environments", drop("constraints.txt")),
    ("automatic_release", lambda f: f.last_cycle.update(deployed=None)),
    ("traceable_to_data", lambda f: f.champion.tags.pop("data_fingerprint")),
    ("ab_testing", configure(require_shadow=True)),  # fails in the demo: the flip passes it
    (
        "release_tests",
        lambda f: [f.champion.tags.pop(k) for k in list(f.champion.tags) if "gate_check" in k],
    ),
    ("production_triggers", lambda f: f.last_cycle.update(plan="retrain: 480 new events")),
    ("deployed_metrics", lambda f: f.champion.tags.pop("online_ndcg_at_10")),
    ("policy_promotion", lambda f: f.champion.tags.update(promoted_by="hand")),
]


@pytest.mark.parametrize(("key", "flip"), MICROSOFT_FLIPS, ids=[key for key, _ in MICROSOFT_FLIPS])
def test_each_microsoft_characteristic_flips_with_its_fact(tmp_path, key, flip):
    facts = demo_facts(tmp_path)
    before = {i.key: i.passed for i in score(facts).microsoft.items}[key]
    flip(facts)
    after = {i.key: i for i in score(facts).microsoft.items}[key]
    assert after.passed is not before and after.evidence


def test_every_microsoft_characteristic_has_a_flip_test():
    flipped = {key for key, _ in MICROSOFT_FLIPS}
    assert flipped == {key for key, *_ in maturity.MICROSOFT}


CORRELATED = ((1, "0.50", "0.40"), (2, "0.55", "0.46"), (3, "0.60", "0.47"))


def version_measured(number: int, offline: str, online: str):
    tags = {"online_role": "champion", "test_ndcg_10": offline, "online_ndcg_at_10": online}
    return SimpleNamespace(version=number, run_id=f"run{number}", is_champion=number == 3, tags=tags)


UP = 1  # the demo scores it 0: the flip shows what earns the point
DOWN = -1

ML_FLIPS = [
    ("feature_expectations_schema", DOWN, edit("tests/unit/test_data.py", "def test_schema_errors", "def x")),
    ("feature_cost", DOWN, edit("README.md", "recops bench scale", "recops bench sc@le")),
    (
        "meta_level_requirements",
        DOWN,
        edit("tests/unit/test_data_contract.py", "def test_columns_beyond", "def x"),
    ),
    (
        "privacy_controls",
        DOWN,
        edit(
            "infra/terraform/modules/s3_bucket/main.tf",
            "aws_s3_bucket_public_access_block",
            "aws_s3_bucket_x",
        ),
    ),
    ("new_features_quickly", DOWN, drop("tests/e2e/test_promote_flow.py")),
    ("feature_code_tested", DOWN, drop(".github/workflows/ci.yml")),  # a test nothing runs by itself: 0.5
    ("specs_reviewed", DOWN, drop(".github/workflows/ci.yml")),
    (
        "offline_online_correlate",
        UP,
        lambda f: setattr(f, "versions", [version_measured(n, off, on) for n, off, on in CORRELATED]),
    ),
    (
        "hyperparameters_tuned",
        UP,
        lambda f: setattr(
            f, "tuning_runs", [{"pathspec": "TuneRecommenderFlow/5", "successful": True, "steps": {}}]
        ),
    ),
    ("simpler_model_not_better", DOWN, configure(require_beat_baseline=False)),  # compared, not enforced
    ("quality_on_slices", DOWN, lambda f: f.champion.tags.pop("gate_slice_short_sessions_n")),
    ("training_reproducible", DOWN, drop("tests/integration/test_training.py")),
    ("model_specs_unit_tested", DOWN, drop("tests/unit/test_chunked_ce.py")),
    ("pipeline_integration_tested", DOWN, drop("tests/integration/test_pipeline_level2.py")),
    ("validated_before_serving", DOWN, lambda f: f.champion.tags.update(promoted_by="hand")),
    ("debuggable", DOWN, edit("README.md", "card get", "card")),
    ("canaried", UP, configure(require_shadow=True)),
    ("rollback", DOWN, drop("tests/integration/test_reconcile.py")),
    ("dependency_changes", DOWN, drop(".github/dependabot.yml")),
    ("data_invariants", DOWN, lambda f: f.last_cycle.update(data=None)),
    ("training_serving_skew", DOWN, drop("tests/integration/test_bento_service.py")),
    ("not_stale", DOWN, lambda f: f.last_cycle["change"].pop("champion_age_hours")),
    ("numerically_stable", DOWN, lambda f: f.champion.tags.pop("gate_check_finite_scores")),
    ("performance_not_regressed", DOWN, lambda f: f.champion.tags.pop("gate_check_latency_p95")),
    (  # the degradation check judged by hand only: half a point
        "quality_not_regressed",
        DOWN,
        lambda f: setattr(f.prefect, "deployments", (deployment("hourly-drift-check", paused=True),)),
    ),
]
# Zero on any recops system, whatever its state: the data has no user attributes to test
# inclusion on, no ablation of inputs exists, and no experiment measures staleness.
ALWAYS_ZERO = {"all_features_beneficial", "inclusion", "staleness_impact_known"}


@pytest.mark.parametrize(("key", "direction", "flip"), ML_FLIPS, ids=[key for key, *_ in ML_FLIPS])
def test_each_ml_test_flips_with_its_fact(tmp_path, key, direction, flip):
    facts = demo_facts(tmp_path)
    before = points_of(facts)[key]
    flip(facts)
    after = next(t for t in score(facts).ml_tests.tests if t.key == key)
    assert (after.points - before) * direction > 0, (before, after)
    assert after.evidence


def test_every_ml_test_has_a_flip_test_or_says_why_it_scores_0(tmp_path):
    keys = [key for key, *_ in maturity.ML_TESTS]
    assert len(keys) == 28 and len(set(keys)) == 28
    assert {key for key, *_ in ML_FLIPS} | ALWAYS_ZERO == set(keys)
    judged = {t.key: t for t in score(demo_facts(tmp_path)).ml_tests.tests}
    assert all(judged[key].points == 0 and len(judged[key].evidence) > 40 for key in ALWAYS_ZERO)


def test_each_section_has_seven_tests():
    sections = [section for _, section, *_ in maturity.ML_TESTS]
    assert {s: sections.count(s) for s in set(sections)} == dict.fromkeys(
        ("data", "model", "infrastructure", "monitoring"), 7
    )


def test_the_monitoring_evidence_says_whether_a_failed_cycle_alerts_anyone():
    facts = level_one_facts()
    assert "no webhook set" in items(facts)["monitoring_triggers"].evidence
    facts.webhook = True
    assert "alerts the webhook" in items(facts)["monitoring_triggers"].evidence


def test_a_registry_that_is_down_is_a_note_not_minutes_of_retries(recops_home, monkeypatch):
    import os
    import time

    from recops.localproc import free_port

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")  # nothing listens
    started = time.monotonic()
    facts = maturity.read_facts(REPO_ROOT, prefect=False)
    assert facts.versions is None and "Max retries" in facts.notes["registry"]
    assert time.monotonic() - started < 60  # MLflow's own retries (7, backoff 2) took 4 minutes
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # this process's settings restored
