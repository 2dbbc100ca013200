"""Provenance: a release's record links git commit -> pipeline image -> Prefect deployments ->
model version -> bento -> serving image -> terraform apply; missing links are named, never
guessed; a record is written whole and never replaced. Real MLflow store and a real Prefect API
(the test harness)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from recops import registry
from recops.cicd import provenance
from recops.cli.main import app
from recops.config import GateConfig, load_config
from recops.paths import REPO_ROOT, use_local_prefect_home
from recops.store import StoreConflictError, open_store
from recops.training.experiment import PreparedData, train_and_evaluate
from tests.helpers import TINY, delete_registered_model, module_registry_home, prepared, register

pytestmark = pytest.mark.integration

APPLY_LOG = "module.recops: Creating...\n\nApply complete! Resources: 3 added, 1 changed, 0 destroyed.\n"
GATE = GateConfig(sessions=5, latency_budget_ms=10_000.0)


@pytest.fixture(scope="module", autouse=True)
def recops_home(tmp_path_factory):
    with module_registry_home(tmp_path_factory.mktemp("provenance") / "recops-home") as home:
        yield home


@pytest.fixture(scope="module")
def data() -> PreparedData:
    return prepared()


@pytest.fixture(scope="module")
def champion(data) -> int:
    delete_registered_model()
    report = train_and_evaluate(data, "sasrec", load_config(overrides={**TINY, "train.epochs": 1}))
    version = register(report, data).version
    assert registry.gate(config=GATE).promote
    return version


@pytest.fixture
def build_dir(tmp_path):
    """What infra/cd.sh leaves in infra/.build/cd/<env>/ after a whole release."""
    folder = tmp_path / "cd" / "dev"
    folder.mkdir(parents=True)
    (folder / "training-image").write_text(
        "123.dkr.ecr.eu-west-1.amazonaws.com/recops-dev-training@sha256:aa\n"
    )
    (folder / "bento-tag").write_text("session_recommender:abc123\n")
    (folder / "bento-image").write_text("123.dkr.ecr.eu-west-1.amazonaws.com/recops-dev-bento@sha256:bb\n")
    (folder / "apply.log").write_text(APPLY_LOG)
    return folder


def test_a_recorded_release_is_the_chain_that_is_shown(champion, build_dir, monkeypatch):
    monkeypatch.setenv("GITHUB_SHA", "f00dfeed" * 5)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    key = provenance.record(provenance.collect("dev", build_dir))
    shown = provenance.chain(champion)
    assert shown.recorded and shown.stack == "dev" and shown.model_version == champion
    assert shown.links["git_commit"] == "f00dfeed" * 5
    assert shown.links["pipeline_image"].endswith("training@sha256:aa")
    assert shown.links["bento"] == "session_recommender:abc123"
    assert shown.links["serving_image"].endswith("bento@sha256:bb")
    assert shown.links["terraform_apply"]["result"].startswith("Apply complete! Resources: 3 added")
    assert shown.links["model"]["aliases"] == ["champion"]
    # the one link this release could not read is named, with why
    assert set(shown.missing) == {"prefect_deployments"}
    assert "PREFECT_API_URL" in shown.missing["prefect_deployments"]
    text = provenance.render(shown)
    assert f"version {champion} (champion)" in text and "MISSING: no Prefect API" in text
    assert json.loads(open_store().read_text(key))["links"]["bento"] == "session_recommender:abc123"


def test_without_a_release_the_live_chain_names_every_missing_link(champion, monkeypatch):
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    live = provenance.collect("local", version=champion)
    assert not live.recorded
    assert live.links["git_commit"] == "0123abc"  # the version's own git_commit tag
    # what only a release makes: named missing, with the make target that makes it
    assert {"pipeline_image", "prefect_deployments", "serving_image", "terraform_apply"} <= set(live.missing)
    assert "make cd-image-training" in live.missing["pipeline_image"]
    # a bento of this version, if BentoML's store (fixed per process) holds one, else the hint
    assert ("bento" in live.links) != ("bento" in live.missing)
    if "bento" in live.missing:
        assert "recops bento build" in live.missing["bento"]
    text = provenance.render(live)
    assert text.startswith("no release recorded") and text.count("MISSING") == len(live.missing)


def test_a_record_is_never_replaced(champion, build_dir, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    release = provenance.collect("dev", build_dir)
    key = provenance.record(release)
    before = open_store().read_text(key)
    with pytest.raises(StoreConflictError):
        provenance.record(release)  # the same release again: refused, the first one kept
    assert open_store().read_text(key) == before


def test_an_unknown_version_is_a_clear_error(champion):
    result = CliRunner().invoke(app, ["provenance", "999"])
    assert result.exit_code == 2 and "999" in result.output, result.output


@pytest.mark.slow
def test_the_prefect_link_is_read_from_the_api(champion, build_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    use_local_prefect_home()
    from prefect.testing.utilities import prefect_test_harness

    from recops.continuous.flow import retrain
    from recops.continuous.maturity_flow import maturity_report

    with prefect_test_harness(server_startup_timeout=120):
        for name in ("nightly-retrain", "hourly-drift-check"):
            retrain.to_deployment(name=name, version="v-test").apply()
        # a deployment of another flow: read as maturity-report/<name>, not retrain/<name>
        maturity_report.to_deployment(name="weekly-maturity-report", version="v-test").apply()
        release = provenance.collect("dev", build_dir, prefect_file=REPO_ROOT / "prefect.ecs.yaml")
    assert set(release.links["prefect_deployments"]) == {
        "nightly-retrain",
        "hourly-drift-check",
        "weekly-maturity-report",
    }
    assert {d["version"] for d in release.links["prefect_deployments"].values()} == {"v-test"}
    assert not release.missing


@pytest.mark.slow
def test_the_live_chain_reads_the_deployments_registered_here(champion, tmp_path, monkeypatch):
    # `recops schedule deploy` with no Prefect server registers them in the home's Prefect history;
    # the live chain reads them back through the temporary API, as `recops maturity` does, quietly
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("RECOPS_STORE", str(tmp_path / "store"))  # no release recorded there
    recops = [sys.executable, "-m", "recops"]
    deployed = subprocess.run([*recops, "schedule", "deploy"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert deployed.returncode == 0, deployed.stderr
    assert "Prefect's temporary API" in deployed.stdout and "temporary server" not in deployed.stderr
    shown = subprocess.run([*recops, "provenance", str(champion), "--json"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    release = json.loads(shown.stdout)
    assert "prefect_deployments" not in release["missing"], release["missing"]
    assert set(release["links"]["prefect_deployments"]) == {
        "nightly-retrain",
        "hourly-drift-check",
        "weekly-maturity-report",
    }
    assert "temporary server" not in shown.stderr, shown.stderr
