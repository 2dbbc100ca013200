"""The step cache (recops.pipeline.cache) on the real Metaflow runtime: which changes invalidate
which steps, what a hit copies, --no-cache, a crash between the index entry and the artifacts,
and `recops cache report` / `audit` (Metaflow spin) on tests/fixtures/cache_flow."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recops.config import load_config
from tests.helpers import metaflow_client

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "cache_flow"
CACHED_STEPS = {"double", "total", "noisy"}


@pytest.fixture
def flowdir(tmp_path):
    path = tmp_path / "flowdir"
    shutil.copytree(FIXTURE, path)
    return path


def env_for(flowdir, **extra):
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("METAFLOW_", "RECOPS_CACHE", "CACHE_TEST"))
    }
    return {**env, "USERNAME": "pytest", "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(flowdir), **extra}


def run(flowdir, *args, check=True, **extra):
    """Run the flow; returns (the steps that reused an earlier task, the finished process)."""
    done = subprocess.run(
        [sys.executable, "cacheflow.py", "--no-pylint", "run", *args],
        cwd=flowdir,
        env=env_for(flowdir, **extra),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"flow failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    hits = set(re.findall(r"step cache: (\w+) reused", done.stdout + done.stderr))
    return hits, done


def client(flowdir, code):
    return metaflow_client(flowdir, code, env_for(flowdir))


def recops(flowdir, *args):
    return subprocess.run(
        [sys.executable, "-m", "recops", *args],
        cwd=flowdir,
        env=env_for(flowdir),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_second_run_reuses_every_cached_step_with_the_same_artifacts(flowdir):
    assert run(flowdir)[0] == set()
    hits, _ = run(flowdir)
    assert hits == CACHED_STEPS
    runs = client(
        flowdir,
        "runs = list(Flow('CacheFlow').runs())\n"
        "new, old = runs[0], runs[1]\n"
        "same = {s: all(new[s].task[a].sha == old[s].task[a].sha for a in ('doubled', 'total', 'sample')"
        " if a in new[s].task) for s in ('double', 'total', 'noisy')}\n"
        "print(json.dumps({'same': same, 'ledger': new['end'].task['step_cache'].data,"
        " 'old': old.pathspec, 'total': new.data.total}))",
    )
    assert runs["same"] == {"double": True, "total": True, "noisy": True}  # the very same artifacts
    assert runs["total"] == 12 * load_config().train.epochs  # (2+4+6) * scale 1 * train.epochs
    for step in CACHED_STEPS:
        entry = runs["ledger"][step]
        assert entry["hit"] and entry["cached_from"].startswith(runs["old"] + f"/{step}/")
        assert entry["seconds_saved"] >= 0


def test_a_helper_change_invalidates_the_steps_that_call_it_and_no_others(flowdir):
    run(flowdir)
    (flowdir / "helper_b.py").write_text("def add(numbers):\n    return sum(numbers)  # changed\n")
    assert run(flowdir)[0] == {"double", "noisy"}  # only `total` calls helper_b
    # helper_a changes but computes the same: `double` runs again, its output is the same
    # content, so `total` (which reads it) is reused
    (flowdir / "helper_a.py").write_text("def double(numbers):\n    return [n + n for n in numbers]\n")
    assert run(flowdir)[0] == {"total", "noisy"}


def test_upstream_artifacts_parameters_data_files_and_config_sections_invalidate_their_readers(flowdir):
    run(flowdir)
    assert run(flowdir, CACHE_TEST_NUMBERS="1,2,4")[0] == {"noisy"}  # start's output changed
    assert run(flowdir, "--scale", "2", CACHE_TEST_NUMBERS="1,2,4")[0] == {"double", "noisy"}
    data = flowdir / "events.csv"
    data.write_text("session_id,item_id,timestamp\n1,2,3\n")
    events = ["--events", f"csv:{data}", "--scale", "2"]
    # a parameter `double` reads; `total` reads none of what changed in double's outputs
    assert run(flowdir, *events, CACHE_TEST_NUMBERS="1,2,4")[0] == {"total", "noisy"}
    assert run(flowdir, *events, CACHE_TEST_NUMBERS="1,2,4")[0] == CACHED_STEPS
    data.write_text("session_id,item_id,timestamp\n1,2,3\n1,3,4\n")  # same name, new content
    assert run(flowdir, *events, CACHE_TEST_NUMBERS="1,2,4")[0] == {"total", "noisy"}
    # a config change outside the sections `total` reads (train) reuses it; inside, it does not
    gate_only = flowdir / "gate.toml"
    gate_only.write_text("[gate]\nk = 5\n")
    assert run(flowdir, *events, CACHE_TEST_NUMBERS="1,2,4", CACHE_TEST_CONFIG=str(gate_only))[0] == (
        CACHED_STEPS
    )
    epochs = flowdir / "epochs.toml"
    epochs.write_text("[train]\nepochs = 3\n")
    assert run(flowdir, *events, CACHE_TEST_NUMBERS="1,2,4", CACHE_TEST_CONFIG=str(epochs))[0] == {
        "double",
        "noisy",
    }


def test_no_cache_and_recops_cache_off_run_everything(flowdir):
    run(flowdir)
    hits, done = run(flowdir, "--no-cache")
    assert hits == set() and "step cache" not in done.stdout + done.stderr
    assert run(flowdir, RECOPS_CACHE="off")[0] == set()
    assert run(flowdir)[0] == CACHED_STEPS  # and on again


def test_an_entry_whose_task_died_before_its_artifacts_is_never_used(flowdir):
    _, died = run(flowdir, check=False, CACHE_TEST_DIE="double")
    assert died.returncode != 0
    entries = list((flowdir / ".metaflow" / "CacheFlow" / "_recops_step_cache" / "double").rglob("*.json"))
    assert len(entries) == 1  # the entry was written, the task never finished
    hits, done = run(flowdir)
    assert hits == set() and done.returncode == 0  # double ran again instead of reusing a dead task
    assert run(flowdir)[0] == CACHED_STEPS


def test_report_sums_the_ledger_and_the_audit_catches_the_nondeterministic_step(flowdir):
    run(flowdir)
    run(flowdir)
    report = recops(flowdir, "cache", "report", "--since", "1h", "--json")
    assert report.returncode == 0, report.stderr
    figures = json.loads(report.stdout)
    assert figures["hits"] == 3 and {r["step"] for r in figures["steps"]} == CACHED_STEPS
    assert figures["seconds_saved"] == pytest.approx(sum(r["seconds_saved"] for r in figures["steps"]))

    honest = recops(flowdir, "cache", "audit", "--sample", "2", "--step", "total")
    assert honest.returncode == 0, honest.stdout + honest.stderr
    assert "1 of 1 re-executed hits match" in honest.stdout
    caught = recops(flowdir, "cache", "audit", "--sample", "3", "--seed", "0")
    assert caught.returncode == 1, caught.stdout + caught.stderr
    assert "step 'noisy'" in caught.stdout and "artifact 'sample' differs" in caught.stdout
    assert "2 of 3 re-executed hits match" in caught.stdout
