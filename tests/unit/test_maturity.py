"""recops maturity, Google's levels: a fresh home is level 0 with every reason named, and each
characteristic flips with the one fact it is judged on (facts built here; the judging is real)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from recops.cicd import maturity
from recops.cicd.maturity import Facts, score
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
    """What a home after `make demo` and `recops schedule deploy` holds, as facts."""
    champion = SimpleNamespace(
        version=3,
        is_champion=True,
        tags={
            "metaflow_pathspec": f"{RUN}/register/8",
            "git_commit": "abc",
            "data_fingerprint": "sha256:1",
            "gate_history": json.dumps([{"action": "promoted", "reason": "no champion yet"}]),
        },
    )
    return Facts(
        root=root,
        versions=[champion],
        champion=champion,
        metaflow_runs=[{"pathspec": RUN, "successful": True, "steps": dict(STEPS)}],
        last_cycle={"outcome": "retrained, promoted", "plan": "retrain: drift in item popularity", "at": "t"},
        provenance=[],
        prefect=SimpleNamespace(
            api_source="temporary API",
            deployments=(deployment("nightly-retrain"), deployment("hourly-drift-check")),
        ),
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
