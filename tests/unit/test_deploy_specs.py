"""The deploy specs pass their offline checks, and each check fails on the mistake it is for."""

from __future__ import annotations

from pathlib import Path

import pytest

from recops.cicd import specs
from recops.paths import REPO_ROOT
from tests.helpers import copy_of_the_specs

pytestmark = pytest.mark.unit


@pytest.fixture
def tree(tmp_path) -> Path:
    """A copy of the specs (workflows, Prefect files, bento folder), the sources linked in."""
    return copy_of_the_specs(tmp_path, ".github", "bentos", *specs.PREFECT_FILES)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_the_projects_specs_pass_every_check():
    assert specs.check_all() == {name: [] for name in specs.CHECKS}


def test_the_workflows_are_the_ones_the_issue_names():
    names = {p.name for p in specs.workflow_files()}
    assert {"ci.yml", "cd.yml", "release.yml"} <= names


CHECKOUT = "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2"


@pytest.mark.parametrize(
    ("file", "old", "new", "check", "says"),
    [
        ("ci.yml", CHECKOUT, "actions/checkout@v4", "pins", "not pinned"),
        ("ci.yml", CHECKOUT, "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683", "pins", "version"),
        ("ci.yml", "permissions: {}", "permissions: write-all", "permissions", "grant nothing"),
        ("ci.yml", "    permissions:\n      contents: read # checkout\n", "", "permissions", "names no"),
        ("ci.yml", "run: make lint", "run: ruff check .", "logic_in_make", "logic in YAML"),
        (
            "release.yml",
            "role-to-assume: ${{ vars.AWS_DEPLOY_ROLE_ARN }}",
            "aws-access-key-id: ${{ secrets.AWS_KEY }}",
            "no_static_keys",
            "static AWS key",
        ),
        # zizmor: a checkout that keeps its token in .git/config for later steps to find
        ("ci.yml", "        with:\n          persist-credentials: false\n", "", "zizmor", "artipacked"),
        # zizmor: an attacker-controlled value expanded into a shell script
        (
            "ci.yml",
            "run: make lint",
            "run: make lint TITLE=${{ github.event.pull_request.title }}",
            "zizmor",
            "template-injection",
        ),
        # actionlint: a job that needs one that does not exist
        ("release.yml", "needs: images", "needs: imagez", "actionlint", "imagez"),
    ],
)
def test_each_check_catches_its_mistake(tree, file, old, new, check, says):
    edit(tree / ".github" / "workflows" / file, old, new)
    problems = getattr(specs, check)(tree)
    assert problems and says in "\n".join(problems), problems


def test_zizmor_audits_dependabot_too(tree):
    # an update proposed the hour it is published, before a bad release can be yanked
    edit(tree / ".github" / "dependabot.yml", "    cooldown:\n      default-days: 7  #", "    #")
    assert "dependabot-cooldown" in "\n".join(specs.zizmor(tree))


def test_the_aws_prefect_file_must_run_what_the_local_one_runs(tree):
    edit(tree / "prefect.ecs.yaml", 'cron: "0 2 * * *"', 'cron: "0 3 * * *"')
    assert "differ" in "\n".join(specs.prefect_files(tree))


def test_a_prefect_parameter_the_flow_lacks_is_named(tree):
    edit(tree / "prefect.ecs.yaml", "retrain_on_new_data: false", "retrain_on_new_dta: false")
    assert "retrain_on_new_dta" in "\n".join(specs.prefect_files(tree))


def test_a_bentofile_naming_a_missing_service_is_refused(tree):
    edit(
        tree / specs.BENTOFILE, 'service: "service:SessionRecommender"', 'service: "serv:SessionRecommender"'
    )
    assert "serv.py" in "\n".join(specs.bentofile(tree))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["plan", "staging"], "no such environment: infra/terraform/envs/staging"),
        (["ship", "dev"], "unknown step: ship"),
        (["plan", "dev"], "TF_STATE_BUCKET is not set"),
        (["apply", "dev"], "no saved plan"),
    ],
)
def test_a_cd_step_refuses_bad_input_by_name(args, says, tmp_path):
    """infra/cd.sh (make cd-<step>) says what is missing before it touches AWS or Terraform."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in ("TF_STATE_BUCKET", "AWS_REGION")}
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "infra" / "cd.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and says in done.stderr, done.stderr
