"""TuneRecommenderFlow on the real Metaflow runtime and MLflow store: a 3-trial search whose best
trial is registered as challenger with the search in its lineage."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import isolated_flow_env, metaflow_client

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
FLOW = ROOT / "flows" / "tune_recommender.py"

# Tiny data, small models, one epoch a trial: the flow is under test, not the search.
TUNE_CONFIG = """
[data.synthetic]
n_sessions = 300
n_items = 60
[sasrec]
max_len = 20
hidden = 32
n_layers = 1
[gate]
latency_budget_ms = 5000.0  # latency is the benchmark's business; CI shares two cores
resamples = 200
sessions = 30
require_beat_baseline = false  # this test is about registration, not promotion
[tune]
trials = 3
max_epochs = 1
parallel = 2
[tune.sasrec]
lr = { low = 0.001, high = 0.01, log = true }
dropout = { low = 0.1, high = 0.4 }
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tune")
    (path / "tune.toml").write_text(TUNE_CONFIG)
    return path


isolated_env = isolated_flow_env


def run_flow(workdir, config, *args):
    cmd = [sys.executable, str(FLOW), "--no-pylint", "--config", "config", config, "run", *args]
    return subprocess.run(
        cmd, cwd=workdir, env=isolated_env(workdir), capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def finished_run(workdir):
    done = run_flow(workdir, "tune.toml")
    if done.returncode != 0:
        raise AssertionError(f"flow failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    code = (
        "r = Flow('TuneRecommenderFlow').latest_successful_run\n"
        "print(json.dumps({'pathspec': r.pathspec, 'search': r.data.search, 'version': r.data.model_version,"
        " 'decision': r.data.decision, 'metrics': r.data.metrics, 'model': r.data.checkpoint.model_name,"
        " 'trial_tasks': len(list(r['trial'])), 'plan': [t.params for t in r.data.plan]}))"
    )
    found = metaflow_client(workdir, code, isolated_env(workdir))
    return {**found, "log": done.stdout + done.stderr}


@pytest.fixture
def registry_home(workdir, monkeypatch):
    monkeypatch.setenv("RECOPS_HOME", str(workdir / "home"))


def test_each_trial_is_a_task_and_the_first_is_the_config(finished_run):
    assert finished_run["trial_tasks"] == 3
    assert finished_run["plan"][0] == {"lr": 0.002, "dropout": 0.2}  # sasrec's own values (its defaults)
    assert [t["number"] for t in finished_run["search"]["trials"]] == [0, 1, 2]
    assert "search  3 trials (qmc)" in finished_run["log"]


def test_the_best_trial_is_registered_with_the_search_as_lineage(finished_run, registry_home):
    from recops import registry
    from recops.registry.search import load_search

    number = finished_run["version"]["version"]
    version = registry.get_version(number)
    assert version.tags["metaflow_pathspec"] == finished_run["pathspec"]
    assert finished_run["decision"]["action"] == "promoted"  # the first version: no champion yet
    assert version.tags["search_trials"] == "3"

    search = load_search(number)
    assert len(search["trials"]) == 3
    assert set(search["space"]["sasrec"]) == {"lr", "dropout"}
    best = max(search["trials"], key=lambda t: t["valid_ndcg"])
    assert search["best"]["number"] == best["number"] == int(version.tags["search_best_trial"])
    assert json.loads(version.tags["search_best_params"]) == best["params"] == search["best"]["params"]
    assert search == finished_run["search"]

    # the registered checkpoint is the winner's: its config holds the best params
    checkpoint, _ = registry.load_checkpoint(number)
    assert checkpoint.model_name == "sasrec"
    for key, value in best["params"].items():
        assert checkpoint.model_config[key] == value
    assert checkpoint.metrics["test"]["ndcg@10"] == pytest.approx(finished_run["metrics"]["ndcg@10"])


def test_a_bad_space_fails_at_launch(workdir):
    (workdir / "bad.toml").write_text("[tune.sasrec]\ndepth = { choices = [1, 2] }\n")
    done = run_flow(workdir, "bad.toml")
    assert done.returncode != 0
    assert "unknown config key(s) tune.sasrec.depth in [tune.sasrec]" in done.stdout + done.stderr
