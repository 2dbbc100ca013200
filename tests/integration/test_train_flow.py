"""TrainRecommenderFlow on the real Metaflow runtime (local datastore and metadata)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import TINY_CONFIG, isolated_flow_env, metaflow_client

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
FLOW = ROOT / "flows" / "train_recommender.py"


REPORT_MARKER = "This copy of the report template was read at launch."


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("flow")
    (path / "tiny.toml").write_text(TINY_CONFIG)
    # the report notebook with one more cell: the report step must run the file given at launch
    notebook = json.loads((ROOT / "notebooks" / "03_evaluation_report.ipynb").read_text())
    notebook["cells"].append({"cell_type": "markdown", "metadata": {}, "source": [REPORT_MARKER]})
    (path / "report.ipynb").write_text(json.dumps(notebook))
    return path


isolated_env = isolated_flow_env


def run_flow(workdir, *args, env=None, check=True, config_file="tiny.toml"):
    full_env = {**isolated_env(workdir), **(env or {})}
    config = ["--config", "config", config_file] if args[0] == "run" else []  # resume keeps the run's
    cmd = [sys.executable, str(FLOW), "--no-pylint", *config, *args]
    done = subprocess.run(cmd, cwd=workdir, env=full_env, capture_output=True, text=True, timeout=900)
    if check and done.returncode != 0:
        raise AssertionError(f"flow failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


def client(workdir, code):
    return metaflow_client(workdir, code, isolated_env(workdir))


@pytest.fixture(scope="module")
def finished_run(workdir):
    run_flow(workdir, "run", "--model", "sasrec", "--report_template", "report.ipynb")
    return client(
        workdir,
        "r = Flow('TrainRecommenderFlow').latest_successful_run\n"
        "from metaflow.cards import get_cards\n"
        "nb = r['report'].task.data.report_notebook\n"
        "errors = [o for c in nb['cells'] for o in c.get('outputs', []) if o.get('output_type') == 'error']\n"
        "print(json.dumps({'pathspec': r.pathspec, 'metrics': r.data.metrics,"
        " 'fingerprint': r.data.data_fingerprint, 'model': r.data.checkpoint.model_name,"
        " 'ckpt_fingerprint': r.data.checkpoint.data_fingerprint, 'history': r['train'].task.data.history,"
        " 'n_ranks': len(r['evaluate'].task.data.ranks), 'decision': r.data.decision['action'],"
        " 'train_log': r['train'].task.stdout,"
        " 'reason': r.data.decision['reason'],"
        " 'cards': {s: [c.id for c in get_cards(r[s].task)] for s in ('train', 'evaluate', 'report')},"
        " 'report_errors': len(errors), 'report_sources': [''.join(c['source']) for c in nb['cells']],"
        " 'report_outputs': sum(len(c.get('outputs', [])) for c in nb['cells'])}))",
    )


def test_artifacts_are_readable_with_the_client(finished_run):
    from recops.config import SyntheticConfig
    from recops.data import build_interactions, validate_events
    from recops.data.synthetic import generate_sessions

    expected = build_interactions(
        validate_events(generate_sessions(SyntheticConfig(n_sessions=300, n_items=60)))
    ).fingerprint
    assert finished_run["fingerprint"] == finished_run["ckpt_fingerprint"] == expected
    assert finished_run["model"] == "sasrec"
    assert 0.0 < finished_run["metrics"]["ndcg@10"] <= 1.0
    assert len(finished_run["history"]) == 2  # --config's train.epochs reached the step
    # the train step says what it is doing: one progress line per epoch, in Metaflow's log
    epochs = re.findall(r"epoch +(\d+) +loss [\d.]+ +valid ndcg@10 [\d.]+", finished_run["train_log"])
    assert epochs == ["1", "2"], finished_run["train_log"][-2000:]
    assert finished_run["n_ranks"] > 0
    # the first registered version: no champion yet
    assert finished_run["decision"] == "promoted", finished_run["reason"]


def test_cards_and_the_executed_report(finished_run):
    assert finished_run["cards"] == {"train": ["training"], "evaluate": ["evaluation"], "report": ["report"]}
    assert finished_run["report_errors"] == 0 and finished_run["report_outputs"] >= 4
    # the notebook named at launch ran (stored with the run, so a remote step needs no copy)
    assert finished_run["report_sources"][-1] == REPORT_MARKER


def test_resume_after_a_failed_step(workdir, finished_run):
    failed = run_flow(workdir, "run", env={"RECOPS_INJECT_FAULT": "train"}, check=False)
    assert failed.returncode != 0
    assert "fault injected into step 'train'" in failed.stdout + failed.stderr
    resumed = run_flow(workdir, "resume")
    assert (
        "Cloning" in resumed.stdout + resumed.stderr or "cloned" in (resumed.stdout + resumed.stderr).lower()
    )
    result = client(
        workdir,
        "r = Flow('TrainRecommenderFlow').latest_run\n"
        "print(json.dumps({'ok': r.successful, 'origin': r['start'].task.origin_pathspec,"
        " 'ndcg': r.data.metrics['ndcg@10'], 'decision': r.data.decision}))",
    )
    assert result["ok"] and result["origin"]  # start was reused from the failed run, not re-run
    assert result["ndcg"] == pytest.approx(finished_run["metrics"]["ndcg@10"])  # same seed, same model
    # registered as a second version; the gate rejects a challenger that is no better
    assert result["decision"]["action"] == "rejected"
    assert "rejected" in result["decision"]["reason"]


def test_a_gate_only_config_change_reuses_every_step_before_register(workdir, finished_run):
    """The step cache (recops.pipeline.cache): the steps read no [gate] key, so a run that
    changes only the gate reuses them; register reads the new gate."""
    # [gate] is last; [cache] prices the hours saved (the first run's tasks ran "local"), and no
    # step reads it
    gate_and_price = "confidence = 0.9\n\n[cache]\ninstance_prices = { local = 3.6 }\n"
    (workdir / "tiny-gate.toml").write_text(TINY_CONFIG + gate_and_price)
    done = run_flow(workdir, "run", config_file="tiny-gate.toml")
    out = done.stdout + done.stderr
    assert set(re.findall(r"step cache: (\w+) reused", out)) == {"validate", "split", "train", "evaluate"}
    assert "step cache: reused evaluate, split, train, validate; saved" in out  # the end step's ledger
    found = client(
        workdir,
        "r = Flow('TrainRecommenderFlow').latest_run\n"
        "print(json.dumps({'ledger': r.data.step_cache, 'reason': r.data.decision['reason'],"
        " 'confidence': r['register'].task.data.settings.gate.confidence}))",
    )
    ledger = found["ledger"]
    # register judged with this run's config, not with the one the reused steps were run under
    assert found["confidence"] == 0.9 and "90% CI" in found["reason"], found
    assert ledger["train"]["hit"] and ledger["train"]["seconds_saved"] > 0
    # priced from this run's typed config: $3.60 an hour is $0.001 a second
    assert ledger["train"]["cost_saved"] == pytest.approx(ledger["train"]["seconds_saved"] / 1000, abs=1e-5)


def test_invalid_data_fails_naming_column_and_row(workdir):
    bad = workdir / "bad.csv"
    bad.write_text("session_id,item_id,timestamp\n1,10,1\n1,,2\n1,11,3\n")
    done = run_flow(workdir, "run", "--dataset", f"csv:{bad}", check=False)
    assert done.returncode != 0
    assert "column 'item_id' has null values in 1 row(s): line 3 (file lines; the header is line 1)" in (
        done.stdout + done.stderr
    )


def test_unmet_expectations_fail_in_validate(workdir):
    short = workdir / "short.csv"
    short.write_text("session_id,item_id,timestamp\n1,10,1\n1,11,2\n2,10,3\n")
    done = run_flow(workdir, "run", "--dataset", f"csv:{short}", check=False)
    assert done.returncode != 0
    assert "no sequence has 3 or more events" in done.stdout + done.stderr


def test_a_report_template_that_is_not_a_notebook_fails_before_training(workdir):
    done = run_flow(workdir, "run", "--report_template", "tiny.toml", check=False)
    assert done.returncode != 0
    assert "--report_template is not a Jupyter notebook" in done.stdout + done.stderr
    assert "/validate/" not in done.stdout + done.stderr  # stopped in start: no later step ran


def test_bad_config_is_refused_at_launch(workdir):
    (workdir / "bad.toml").write_text("[train]\nepochz = 3\n")
    cmd = [sys.executable, str(FLOW), "--no-pylint", "--config", "config", "bad.toml", "run"]
    env = isolated_env(workdir)
    done = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert "Invalid --config" in out and "unknown config key(s) train.epochz" in out
    assert "Traceback" not in out and "Internal error" not in out, out  # one clean error
