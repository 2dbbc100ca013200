"""The hyperparameter search's library: planning trials, a trial's config, choosing the best."""

from __future__ import annotations

import pytest

from recops.config import ConfigError, load_config
from recops.training.checkpoint import Checkpoint
from recops.training.experiment import fit
from recops.training.tune import (
    Trial,
    TrialResult,
    best_trial,
    launch_order,
    parse_models,
    plan_trials,
    run_trial,
    search_lineage,
    search_space,
    trial_config,
    trial_threads,
    trials_per_family,
)
from tests.helpers import prepared

pytestmark = pytest.mark.unit

SASREC_KEYS = ("max_len", "hidden", "n_layers", "dropout", "lr")


def config(**overrides):
    return load_config(overrides={"tune.trials": 6, **overrides})


@pytest.mark.parametrize("sampler", ["qmc", "random", "tpe"])
def test_the_plan_is_deterministic_for_a_seed(sampler):
    first = plan_trials(config(**{"tune.sampler": sampler}))
    again = plan_trials(config(**{"tune.sampler": sampler}))
    other_seed = plan_trials(config(**{"tune.sampler": sampler, "tune.seed": 1}))
    assert first == again
    assert [t.params for t in first[1:]] != [t.params for t in other_seed[1:]]
    assert [t.number for t in first] == list(range(6))


def test_the_first_trial_is_the_config_itself():
    cfg = config(**{"sasrec.lr": 0.003, "sasrec.hidden": 32})
    first = plan_trials(cfg)[0]
    assert first.model == "sasrec"
    assert first.params == {key: getattr(cfg.sasrec, key) for key in SASREC_KEYS}
    assert first.params["lr"] == 0.003 and first.params["hidden"] == 32


def test_sampled_params_lie_in_the_space():
    cfg = config(**{"tune.trials": 16})
    space = search_space(cfg, "sasrec")
    for trial in plan_trials(cfg)[1:]:
        assert set(trial.params) == set(SASREC_KEYS)
        for key, value in trial.params.items():
            dim = space[key]
            if dim.choices is not None:
                assert value in dim.choices
            else:
                assert dim.low <= value <= dim.high
    lrs = {t.params["lr"] for t in plan_trials(cfg)}
    assert len(lrs) == 16  # one wave spread over the range, no repeats


def test_a_default_outside_the_space_widens_it():
    cfg = config(**{"sasrec.max_len": 10, "sasrec.lr": 0.05})
    space = search_space(cfg, "sasrec")
    assert space["max_len"].choices == (20, 50, 200, 10)
    assert space["lr"].low == 5e-4 and space["lr"].high == 0.05
    assert plan_trials(cfg)[0].params["max_len"] == 10


def test_families_split_the_trials_each_starting_with_its_defaults():
    cfg = config(**{"tune.models": ["sasrec", "popular", "sr"], "tune.trials": 6})
    assert trials_per_family(cfg) == {"sasrec": 3, "popular": 1, "sr": 2}
    trials = plan_trials(cfg)
    assert [t.model for t in trials] == ["sasrec"] * 3 + ["popular"] + ["sr"] * 2
    assert trials[3].params == {}  # popular has nothing to search
    assert trials[4].params == {"steps": cfg.sr.steps, "smoothing": cfg.sr.smoothing}
    assert isinstance(trials[5].params["steps"], int)  # an integer key is sampled as one


def test_the_costliest_trials_start_first():
    cfg = config(**{"tune.models": ["markov", "sasrec", "popular"], "tune.trials": 8})
    planned = plan_trials(cfg)
    ordered = launch_order(planned, cfg)
    assert sorted(ordered, key=lambda t: t.number) == planned  # the same trials, numbers kept
    neural = [t for t in ordered if t.model == "sasrec"]
    assert ordered[: len(neural)] == neural  # the counting baselines (cost 0) last
    sizes = [t.params["hidden"] ** 2 * t.params["n_layers"] for t in neural]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    assert [t.model for t in ordered[len(neural) :]] == ["markov"] * 4 + ["popular"]  # planned order


def test_a_family_table_replaces_its_default_space():
    cfg = load_config(overrides={"tune.trials": 3, "tune.sasrec": {"lr": {"low": 0.001, "high": 0.01}}})
    assert [set(t.params) for t in plan_trials(cfg)] == [{"lr"}] * 3


def test_params_land_in_a_validated_config():
    cfg = config(**{"tune.max_epochs": 3, "tune.patience": 2, "train.patience": 7})
    trial = plan_trials(cfg)[1]
    tuned = trial_config(cfg, trial)
    for key, value in trial.params.items():
        assert getattr(tuned.sasrec, key) == value
    assert (tuned.train.epochs, tuned.train.patience) == (3, 2)
    assert tuned.gru4rec == cfg.gru4rec and tuned.data == cfg.data  # nothing else moved
    with pytest.raises(ConfigError, match="divisible by n_heads"):
        trial_config(cfg, Trial(0, "sasrec", {"hidden": 63, "n_heads": 2}))


@pytest.mark.parametrize(
    ("trial", "message"),
    [
        (Trial(0, "bert", {}), "unknown model 'bert'"),
        (Trial(0, "sasrec", {"depth": 3}), r"unknown config key\(s\) sasrec.depth"),
        (Trial(0, "sasrec", {"dropout": 1.5}), r"sasrec.dropout must be in \[0, 1\)"),
    ],
)
def test_an_unknown_family_or_param_is_a_config_error(trial, message):
    with pytest.raises(ConfigError, match=message):
        trial_config(config(), trial)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tune.models": ["bert"]}, "tune.models names unknown model bert"),
        ({"tune.bert": {}}, r"unknown config key\(s\) tune.bert in \[tune\]"),
        ({"tune.sasrec": {"depth": {"choices": [1]}}}, r"unknown config key\(s\) tune.sasrec.depth"),
        ({"tune.sasrec": {"hidden": {"choices": [64.5]}}}, "tune.sasrec.hidden: 64.5 is not a valid"),
        ({"tune.sasrec": {"lr": {"low": 0.0, "high": 0.1, "log": True}}}, "a log range needs low > 0"),
        ({"tune.sasrec": {"lr": {"low": 0.1}}}, "tune.sasrec.lr: give low and high, or choices"),
        ({"tune.sr": {"steps": {"low": 1.5, "high": 4}}}, "an integer key needs whole bounds"),
        ({"tune.vsknn": {"recency": {"low": 1, "high": 2}}}, "search it with choices"),
        ({"tune.sasrec": {"lr": {"lo": 1}}}, "tune.sasrec.lr has unknown key"),
        ({"tune.models": ["sasrec", "sr"], "tune.trials": 1}, "at least one per family"),
    ],
)
def test_a_bad_space_is_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)


def test_parse_models():
    assert parse_models(" sasrec, gru4rec ,") == ("sasrec", "gru4rec")
    assert parse_models("") is None


def result(number: int, ndcg: float, model: str = "sasrec") -> TrialResult:
    checkpoint = Checkpoint.__new__(Checkpoint)  # never looked at here
    return TrialResult(Trial(number, model, {"lr": 0.001 * (number + 1)}), ndcg, {}, 1, 1, 0.1, checkpoint)


def test_the_best_trial_has_the_highest_valid_ndcg_and_the_defaults_win_a_tie():
    results = [result(2, 0.4), result(0, 0.5), result(1, 0.5), result(3, 0.3)]
    assert best_trial(results).trial.number == 0
    assert best_trial([result(0, 0.1), result(1, 0.2)]).trial.number == 1
    with pytest.raises(ValueError):
        best_trial([])


def test_the_lineage_holds_the_space_every_trial_and_the_best():
    cfg = config()
    lineage = search_lineage(cfg, [result(1, 0.2), result(0, 0.1)])
    assert lineage["sampler"] == "qmc" and lineage["seed"] == 0
    assert set(lineage["space"]["sasrec"]) == set(SASREC_KEYS)
    assert lineage["space"]["sasrec"]["lr"] == {"low": 5e-4, "high": 1e-2, "log": True}
    assert [t["number"] for t in lineage["trials"]] == [0, 1]
    assert lineage["best"]["number"] == 1 and lineage["best"]["params"] == {"lr": 0.002}
    assert "checkpoint" not in lineage["best"]


def test_run_trial_fits_the_trial_and_scores_it_on_validation():
    data = prepared()
    trial = Trial(0, "popular", {})
    outcome = run_trial(data, trial, config())
    assert outcome.trial == trial and outcome.checkpoint.model_name == "popular"
    assert (
        outcome.valid_ndcg
        == outcome.valid_metrics["ndcg@10"]
        == outcome.checkpoint.metrics["valid"]["ndcg@10"]
    )


def test_trials_running_at_once_share_the_cpus_and_a_batch_job_uses_all(monkeypatch):
    monkeypatch.setattr("recops.localproc.os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert trial_threads(2, environ={}) == 2
    assert trial_threads(3, environ={}) == 1
    assert trial_threads(8, environ={}) == 1  # never zero
    assert trial_threads(2, environ={"AWS_BATCH_JOB_ID": "job-1"}) == 4


def test_run_trial_gives_the_process_its_torch_threads_back(monkeypatch):
    import torch

    monkeypatch.setattr("recops.training.tune.trial_threads", lambda parallel: 1)
    before = torch.get_num_threads()
    seen = []
    monkeypatch.setattr(
        "recops.training.tune.fit",
        lambda data, model, settings: seen.append(torch.get_num_threads()) or fit(data, model, settings),
    )
    run_trial(prepared(), Trial(0, "popular", {}), config())
    assert seen == [1] and torch.get_num_threads() == before
