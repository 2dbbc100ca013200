"""The `recops` command as a user runs it: train, evaluate, bench, and its errors."""

import json
import subprocess
import sys

import pytest

from tests.helpers import cycle_events

pytestmark = pytest.mark.e2e

SMALL = ["--set", "sasrec.max_len=10", "--set", "sasrec.hidden=16", "--set", "train.batch_size=64"]


def recops(*args, check=True):
    done = subprocess.run(
        [sys.executable, "-m", "recops.cli.main", *args], capture_output=True, text=True, timeout=600
    )
    if check and done.returncode != 0:
        raise AssertionError(f"recops {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture
def events_csv(tmp_path):
    path = tmp_path / "events.csv"
    cycle_events(n_sessions=120).to_csv(path, index=False)
    return path


@pytest.mark.slow  # trains SASRec through the CLI
def test_train_then_evaluate_a_csv(tmp_path, events_csv):
    out = tmp_path / "run"
    done = recops(
        "train",
        "--dataset",
        f"csv:{events_csv}",
        "--model",
        "sasrec",
        "--epochs",
        "2",
        "--out",
        str(out),
        *SMALL,
    )
    assert "epoch   2" in done.stderr and "valid ndcg@10" in done.stderr  # progress is shown
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and len(metrics["history"]) == 2
    assert set(metrics["test"]) >= {"ndcg@10", "hr@10", "mrr@10"}
    assert metrics["data_fingerprint"].startswith("sha256:")

    evaluated = recops("evaluate", str(out / "checkpoint.pt"), "--dataset", f"csv:{events_csv}", "--json")
    figures = json.loads(evaluated.stdout)
    assert figures["ndcg@10"] == pytest.approx(metrics["test"]["ndcg@10"])
    # without --dataset: the data the checkpoint was trained on, not the built-in sessions
    own = recops("evaluate", str(out / "checkpoint.pt"), "--json")
    assert json.loads(own.stdout)["dataset"] == f"csv:{events_csv}" and "differs" not in own.stderr
    assert json.loads(own.stdout)["ndcg@10"] == pytest.approx(figures["ndcg@10"])


def test_bench_quality_prints_one_json_object(events_csv):
    done = recops(
        "bench",
        "quality",
        "--dataset",
        f"csv:{events_csv}",
        "--models",
        "popular,gru4rec",
        "--epochs",
        "1",
        "--json",
        "--set",
        "gru4rec.max_len=10",
    )
    result = json.loads(done.stdout)
    for model in ("popular", "gru4rec"):
        entry = result["models"][model]
        assert set(entry) >= {"ndcg@10", "hr@10", "mrr@10", "epochs", "train_seconds", "seconds_per_epoch"}
    assert result["models"]["gru4rec"]["epochs"] == 1
    assert result["best_baseline"] == "popular"  # the only one asked for
    ratio = result["models"]["gru4rec"]["ndcg@10"] / result["models"]["popular"]["ndcg@10"]
    assert result["models"]["gru4rec"]["vs_best_baseline"] == pytest.approx(ratio, abs=1e-4)
    assert "vs_best_baseline" not in result["models"]["popular"]


def test_bench_quality_sets_losses_side_by_side(events_csv):
    done = recops(
        "bench", "quality", "--dataset", f"csv:{events_csv}", "--models", "popular,gru4rec",
        "--losses", "ce,sampled", "--epochs", "1", "--json", "--set", "gru4rec.max_len=10",
        "--set", "train.negatives=8",
    )  # fmt: skip
    models = json.loads(done.stdout)["models"]
    assert set(models) == {"popular", "gru4rec/ce", "gru4rec/sampled"}  # a baseline has no loss
    ratio = models["gru4rec/sampled"]["ndcg@10"] / models["gru4rec/ce"]["ndcg@10"]
    assert models["gru4rec/sampled"]["vs_ce"] == pytest.approx(ratio, abs=1e-4)
    bad = recops("bench", "quality", "--losses", "ce,softmax", check=False)
    assert bad.returncode != 0 and "--losses: unknown softmax" in bad.stderr


@pytest.mark.slow
def test_bench_scale_measures_each_point_in_its_own_process():
    done = recops("bench", "scale", "--grid", "3k:300,6k:300", "--steps", "2", "--json")
    result = json.loads(done.stdout)
    small, large = result["points"]
    assert (small["target_events"], large["target_events"]) == (3000, 6000)
    for point in (small, large):
        assert 0.9 * point["target_events"] <= point["events"] <= 1.1 * point["target_events"]
        assert point["items"] == 300 and point["loss"] == "ce" and point["train_steps"] == 2
        assert 0 < point["items_in_events"] <= 300
        for key in (
            "train_seconds_per_1m_events",
            "eval_seconds_per_1000",
            "serve_p50_ms",
            "model_load_seconds",
        ):
            assert point[key] > 0
        assert point["serve_p99_ms"] >= point["serve_p50_ms"]
        assert point["peak_rss_mb"] >= point["load_peak_rss_mb"] > 0
    assert set(result["slope_log_epoch_seconds_vs_log_events"]) == {"items=300"}
    bad = recops("bench", "scale", "--grid", "3k", check=False)
    assert bad.returncode != 0 and "'3k' is not EVENTS:ITEMS" in bad.stderr


def test_invalid_data_is_a_clear_error_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("session_id,item_id,timestamp\n1,10,5\n1,,6\n")
    out = tmp_path / "run"
    done = recops("train", "--dataset", f"csv:{bad}", "--model", "popular", "--out", str(out), check=False)
    assert done.returncode == 2
    assert "column 'item_id' has null values" in done.stderr and "line 3" in done.stderr  # the file's line
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [bad]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--model", "bert4rec"], "--model must be one of"),
        (["train", "--dataset", "nope"], "unknown dataset 'nope'"),
        (["train", "--dataset", "csv:/does/not/exist.csv"], "file not found"),
        (["train", "--set", "sasrec.lr=fast"], "sasrec.lr: expected float"),
        (["train", "--set", "train.nope=1"], "unknown config key(s) train.nope"),
        (["evaluate", "/no/such/checkpoint.pt"], "checkpoint not found"),
        (["retrain", "--config", "/no/such.toml"], "config file not found: /no/such.toml"),
        (["retrain", "--model", "bert4rec"], "unknown model 'bert4rec'"),
        (["simulate-events", "out.csv", "--dataset", "nope"], "unknown dataset 'nope'"),
    ],
)
def test_bad_arguments_name_what_is_wrong(args, message, recops_home):
    done = recops(*args, check=False)
    assert done.returncode == 2
    assert message in done.stderr
    assert not recops_home.exists()  # nothing written: no Prefect state, no failed run recorded


def test_train_refuses_an_out_folder_with_other_files(tmp_path, events_csv):
    """`--out` over a folder that is not an earlier run: exit 2 before training, nothing touched."""
    out = tmp_path / "project"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    args = ["train", "--dataset", f"csv:{events_csv}", "--model", "popular", "--out", str(out)]
    done = recops(*args, check=False)
    assert done.returncode == 2, done.stderr
    assert f"error: cannot write a run to {out}" in done.stderr and "notes.txt" in done.stderr
    assert "Traceback" not in done.stderr and " events, " not in done.stderr  # before loading data
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"

    (out / "notes.txt").unlink()  # now empty: written; then replaced as an earlier run
    assert " events, " in recops(*args).stderr  # what a run that got past the check logs
    recops(*args)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "metrics.json"]


@pytest.mark.slow
def test_bench_retrain_compares_warm_start_with_scratch():
    done = recops(
        "bench",
        "retrain",
        "--json",
        "--seeds",
        "1",
        *("--set", "data.synthetic.n_sessions=300", "--set", "data.synthetic.n_items=60"),
        *("--set", "train.epochs=3", "--set", "train.warm_epochs=1", "--set", "sasrec.hidden=16"),
    )
    result = json.loads(done.stdout)
    (run,) = result["runs"]
    assert run["warm_start"]["from"] == "champion" and run["warm_start"]["kept_items"] > 50
    assert run["warm_start"]["new_items"] > 0  # new sessions bring items the champion never saw
    assert run["warm"]["epochs"] == result["max_warm_epochs"] == 1 and run["scratch"]["epochs"] == 3
    assert result["new_events"] > result["old_events"]
    assert result["ndcg_ratio"] == pytest.approx(run["warm"]["ndcg@10"] / run["scratch"]["ndcg@10"], abs=1e-4)
    assert result["time_ratio"] == pytest.approx(
        run["warm"]["train_seconds"] / run["scratch"]["train_seconds"], abs=1e-3
    )
    refused = recops("bench", "retrain", "--model", "markov", check=False)
    assert refused.returncode != 0 and "choose sasrec or gru4rec, not 'markov'" in refused.stderr


@pytest.mark.slow  # two bento servers and a load generator for half a minute
def test_bench_serve_soak_swaps_models_under_load_without_5xx():
    """A short soak: 32 clients for 20 s against a served bento, the deployed model swapped
    every 5 s; no 5xx, every swap confirmed by the answers' model version."""
    done = recops(
        "bench", "serve", "--soak", "20", "--swap-every", "5", "--catalogs", "1000", "--json", check=False
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert "confirmed" not in done.stderr  # --json: no progress lines
    assert result["benchmark"] == "serve-soak" and result["concurrency"] == 32
    assert (
        result["requests"] > 0 and result["answered_200"] + result["errors"]["shed_503"] <= result["requests"]
    )
    assert set(result["errors"]) >= {"by_status", "shed_503", "server_5xx", "transport"}
    assert result["errors"]["server_5xx"] == 0 and result["errors"]["transport"] == 0, result["errors"]
    for window in ("first", "last"):
        assert result["latency"][window]["requests"] > 0 and result["latency"][window]["p99_ms"] > 0
    memory = result["memory"]
    assert memory["rss_mib_start"] > 0 and memory["rss_mib_end"] > 0 and memory["processes"][0] >= 2
    swaps = result["swaps"]
    assert swaps["done"] == swaps["planned"] == 3 and swaps["confirmed"] >= 2, swaps
    versions = {swap["to_version"] for swap in swaps["details"]}
    assert len(versions) == 2 and versions == set(result["models"].values())  # the two models alternate
    assert result["ok"] == (done.returncode == 0)
