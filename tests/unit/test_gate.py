"""The champion/challenger gate: paired bootstrap, behavioural checks and the decision rule."""

import numpy as np
import pytest

from recops.config import ConfigError, GateConfig, SASRecConfig
from recops.data.interactions import ItemVocab
from recops.models import build_model
from recops.registry.gate_checks import (
    CheckResult,
    Latency,
    behavioural_checks,
    catalogue_mismatch,
    latency_check,
    leak_refusal,
    leaked_test_sequences,
)
from recops.registry.gate_rules import BaselineRanks, decide, paired_bootstrap
from recops.serving.recommender import Recommendation, Recommender
from recops.training.checkpoint import Checkpoint

pytestmark = pytest.mark.unit

PASSING = [CheckResult("top_k_well_formed", True, "ok"), CheckResult("latency_p95", True, "ok")]
RNG = np.random.default_rng(0)
GOOD_RANKS = RNG.integers(1, 3, size=400)  # held-out item mostly first or second
BAD_RANKS = RNG.integers(5, 40, size=400)


def test_identical_arrays_give_zero_difference_and_a_ci_around_it():
    values = np.random.default_rng(1).random(200)
    result = paired_bootstrap(values, values.copy())
    assert result.mean_diff == 0.0
    assert result.low <= 0.0 <= result.high
    assert result.resamples == 1000


def test_a_clearly_better_array_has_a_ci_above_zero():
    champion = np.random.default_rng(2).random(300) * 0.5
    result = paired_bootstrap(champion + 0.1, champion, resamples=500)
    assert result.mean_diff == pytest.approx(0.1)
    assert 0.0 < result.low <= 0.1 <= result.high


def test_the_bootstrap_is_reproducible_under_a_seed():
    rng = np.random.default_rng(3)
    a, b = rng.random(150), rng.random(150)
    assert paired_bootstrap(a, b, seed=7) == paired_bootstrap(a, b, seed=7)
    assert paired_bootstrap(a, b, seed=7) != paired_bootstrap(a, b, seed=8)


def test_pairing_keeps_shared_difficulty_out_of_the_interval():
    """Sequences easy or hard for both models: a paired CI stays tight around the true gap."""
    difficulty = np.random.default_rng(4).random(300)
    result = paired_bootstrap(difficulty + 0.01, difficulty)
    assert result.low == pytest.approx(0.01) and result.high == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        (np.ones(3), np.ones(4), "same sequences"),
        (np.ones((2, 2)), np.ones((2, 2)), "1-d"),
        (np.ones(0), np.ones(0), "at least one"),
    ],
)
def test_bootstrap_rejects_unpaired_input(a, b, message):
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(a, b)


@pytest.mark.parametrize(
    ("challenger", "champion", "checks", "margin", "promote", "in_reason"),
    [
        (BAD_RANKS, None, PASSING, 0.0, True, "no champion yet"),
        (GOOD_RANKS, BAD_RANKS, PASSING, 0.0, True, "promoted"),
        (GOOD_RANKS, GOOD_RANKS, PASSING, 0.0, False, "lower bound +0.0000 is not above -0.0000"),
        (GOOD_RANKS, GOOD_RANKS, PASSING, 0.01, True, "mean difference +0.0000"),
        (BAD_RANKS, GOOD_RANKS, PASSING, 0.0, False, "the mean difference is negative"),
        (BAD_RANKS, GOOD_RANKS, PASSING, 10.0, False, "the mean difference is negative"),
        (
            GOOD_RANKS,
            BAD_RANKS,
            [*PASSING, CheckResult("finite_scores", False, "3 of 10 sessions had a NaN")],
            0.0,
            False,
            "finite_scores (3 of 10 sessions had a NaN)",
        ),
        (BAD_RANKS, None, [CheckResult("latency_p95", False, "p95 80 ms")], 0.0, False, "latency_p95"),
    ],
    ids=[
        "no-champion",
        "better",
        "equal-needs-a-margin",
        "equal-within-margin",
        "worse",
        "worse-even-with-margin",
        "failing-check",
        "no-champion-failing-check",
    ],
)
def test_decide(challenger, champion, checks, margin, promote, in_reason):
    decision = decide(challenger, champion, checks, margin)
    assert decision.promote is promote
    assert in_reason in decision.reason
    assert decision.reason.endswith("promoted") if promote else "rejected" in decision.reason


def test_a_rejection_states_the_figures():
    decision = decide(BAD_RANKS, GOOD_RANKS, PASSING)
    figures = decision.figures
    assert figures["champion_ndcg"] > figures["challenger_ndcg"]
    assert figures["ci_low"] <= figures["mean_diff"] <= figures["ci_high"] < 0
    assert f"challenger NDCG@10 {figures['challenger_ndcg']:.4f}" in decision.reason
    assert f"vs champion {figures['champion_ndcg']:.4f}" in decision.reason
    assert f"95% CI [{figures['ci_low']:+.4f}, {figures['ci_high']:+.4f}]" in decision.reason


def test_a_small_loss_within_the_margin_is_still_rejected_when_the_mean_drops():
    """The margin tolerates noise in the interval, never a lower mean."""
    champion = np.ones(200, dtype=np.int64)
    challenger = champion.copy()
    challenger[0] = 2  # one sequence slightly worse
    assert not decide(challenger, champion, PASSING, margin=0.5).promote


@pytest.mark.parametrize("champion", [None, BAD_RANKS], ids=["no-champion", "worse-champion"])
def test_a_challenger_the_baseline_beats_is_rejected_whatever_the_champion(champion):
    """A challenger must beat the best simple baseline as well as the champion."""
    decision = decide(BAD_RANKS, champion, PASSING, baseline=BaselineRanks("markov", GOOD_RANKS))
    figures = decision.figures
    assert not decision.promote
    assert figures["baseline_model"] == "markov"
    assert figures["baseline_ndcg"] > figures["challenger_ndcg"]
    assert figures["baseline_ci_low"] <= figures["baseline_mean_diff"] <= figures["baseline_ci_high"] < 0
    assert (
        f"rejected: markov beats it: NDCG@10 {figures['baseline_ndcg']:.4f} vs "
        f"{figures['challenger_ndcg']:.4f}, 95% CI of the difference "
        f"[{figures['baseline_ci_low']:+.4f}, {figures['baseline_ci_high']:+.4f}]"
    ) in decision.reason


def test_a_challenger_clearly_above_the_baseline_and_the_champion_is_promoted():
    worse = np.random.default_rng(5).integers(3, 12, size=400)  # between GOOD and BAD
    decision = decide(GOOD_RANKS, worse, PASSING, baseline=BaselineRanks("sr", BAD_RANKS))
    assert decision.promote, decision.reason
    assert decision.figures["baseline_ci_low"] > 0
    assert "beats the best simple baseline sr (NDCG@10" in decision.reason
    assert decision.reason.endswith("promoted")


def test_matching_the_baseline_is_not_enough():
    """No margin for the baseline: a tie (lower bound 0) rejects."""
    decision = decide(GOOD_RANKS, None, PASSING, baseline=BaselineRanks("vsknn", GOOD_RANKS.copy()))
    assert not decision.promote
    assert "it does not clearly beat vsknn" in decision.reason
    assert "lower bound is not above 0" in decision.reason


def test_the_baseline_is_reported_before_the_champion_and_the_checks():
    failing = [CheckResult("latency_p95", False, "p95 80 ms")]
    decision = decide(BAD_RANKS, GOOD_RANKS, failing, baseline=BaselineRanks("markov", GOOD_RANKS))
    problems = decision.reason.split("; rejected: ")[1]
    assert problems.index("markov beats it") < problems.index("mean difference is negative")
    assert problems.index("mean difference is negative") < problems.index("latency_p95")


def test_the_baseline_is_ignored_when_not_required():
    baseline = BaselineRanks("markov", GOOD_RANKS)
    decision = decide(BAD_RANKS, None, PASSING, baseline=baseline, require_beat_baseline=False)
    assert decision.promote, decision.reason
    assert "markov" not in decision.reason and "baseline_model" not in decision.figures
    assert decision.figures["baseline"] == "not required (gate.require_beat_baseline = false)"
    assert decision == decide(BAD_RANKS, None, PASSING, require_beat_baseline=False)


def test_without_a_recorded_baseline_the_decision_is_as_before_and_says_so():
    decision = decide(GOOD_RANKS, BAD_RANKS, PASSING)
    assert decision.promote and decision.figures["baseline"] == "none recorded at registration"
    assert "baseline" not in decision.reason


def test_gate_config_validates():
    with pytest.raises(ConfigError, match=r"gate\.margin must be >= 0"):
        GateConfig(margin=-0.1)
    with pytest.raises(ConfigError, match=r"gate\.confidence must be in \(0, 1\)"):
        GateConfig(confidence=1.0)


def _recommender(n_items: int = 8) -> Recommender:
    vocab = ItemVocab(tuple(range(100, 100 + n_items)))
    model = build_model("sasrec", SASRecConfig(max_len=5, hidden=8, n_heads=1, n_layers=1), n_items)
    return Recommender(Checkpoint.from_model(model, "sasrec", vocab, data_fingerprint="test"))


def test_behavioural_checks_pass_for_a_sound_recommender():
    sessions = [[100, 101], [105], [999], [102, 103, 104, 105, 106, 107]]
    results = behavioural_checks(_recommender(), sessions, k=10, latency_budget_ms=10_000)
    assert [r.name for r in results] == ["top_k_well_formed", "finite_scores", "latency_p95"]
    assert all(r.passed for r in results), results


def test_behavioural_checks_catch_duplicates_nan_scores_and_slowness():
    recommender = _recommender()

    def broken(session, k=10, exclude_seen=True):
        return Recommendation([(100, float("nan")), (100, 1.0)])

    recommender.recommend = broken  # type: ignore[method-assign]
    results = {r.name: r for r in behavioural_checks(recommender, [[101]], k=5, latency_budget_ms=1e-9)}
    assert not results["top_k_well_formed"].passed
    assert not results["finite_scores"].passed
    assert not results["latency_p95"].passed and "ceiling" in results["latency_p95"].detail


def test_the_gate_reports_ndcg_per_slice_of_the_challengers_split():
    """Short sessions, sessions with items the champion does not know, and next items new to
    it: each slice's size and both models' NDCG@10 over it, from the ranks the gate compares."""
    import numpy as np

    from recops.data.interactions import ItemVocab
    from recops.registry.gate import _slice_figures
    from recops.registry.versions import SavedEvaluation

    histories = [[1, 2], [1, 2, 3, 4], [1, 9], [3, 4, 5]]
    targets = [3, 5, 2, 99]  # 99: new since the champion's data
    mine = SavedEvaluation(
        np.array([1, 2, 1, 1]), [0, 1, 2, 3], None, {"histories": histories, "targets": targets}
    )
    theirs = SavedEvaluation(np.array([1, 1, 20, 101]), [0, 1, 2, 3], None, None)
    champion_vocab = ItemVocab((1, 2, 3, 4, 5))  # knows neither 9 nor 99
    figures = _slice_figures(mine, theirs, champion_vocab, k=10)
    assert figures["slice_short_sessions_n"] == 2  # [1, 2] and [1, 9]
    assert figures["slice_short_sessions_challenger_ndcg"] == 1.0
    assert figures["slice_short_sessions_champion_ndcg"] == 0.5  # ranks 1 and 20
    assert figures["slice_unknown_items_n"] == 1 and figures["slice_unknown_items_champion_ndcg"] == 0.0
    assert figures["slice_new_items_n"] == 1 and figures["slice_new_items_challenger_ndcg"] == 1.0
    assert _slice_figures(mine, theirs, None, k=10) == {
        "slice_short_sessions_n": 2,
        "slice_short_sessions_challenger_ndcg": 1.0,
        "slice_short_sessions_champion_ndcg": 0.5,
    }


def test_latency_is_timed_beside_the_champion_on_the_same_sessions():
    challenger, champion = _recommender(), _recommender()
    calls = []
    for name, model in (("challenger", challenger), ("champion", champion)):
        inner = model.recommend

        def timed(session, k=10, exclude_seen=True, name=name, inner=inner):
            calls.append((name, tuple(session)))
            return inner(session, k, exclude_seen)

        model.recommend = timed  # type: ignore[method-assign]
    sessions = [[100], [101, 102], [103]]
    results = behavioural_checks(challenger, sessions, k=5, latency_budget_ms=10_000, champion=champion)
    latency = results[-1]
    assert latency.passed and "champion p95" in latency.detail, latency.detail
    timing = calls[2:8]  # after one warm-up call each: interleaved, the first to go alternating
    order = ["challenger", "champion", "champion", "challenger", "challenger", "champion"]
    assert [name for name, _ in timing] == order
    assert [s for _, s in timing[::2]] == [s for _, s in timing[1::2]] == [(100,), (101, 102), (103,)]


@pytest.mark.parametrize(
    ("challenger_ms", "champion_ms", "passed", "why"),
    [
        (1.5, None, True, "no champion: only the ceiling"),
        (150.0, None, True, "a loaded machine, still under the ceiling"),
        (250.0, None, False, "over the ceiling"),
        (9.0, 0.1, True, "a champion faster than the floor counts as the floor (2 x 5 ms)"),
        (11.0, 0.1, False, "over 2 x the floor"),
        (180.0, 100.0, True, "both slowed alike by load: the ratio holds"),
        (190.0, 40.0, False, "4.75 x the champion"),
        (210.0, 150.0, False, "within the ratio but over the ceiling"),
    ],
)
def test_the_latency_check_is_relative_to_the_champion_under_a_ceiling(
    challenger_ms, champion_ms, passed, why
):
    check = latency_check(Latency(challenger_ms, champion_ms, 200), ceiling_ms=200, ratio=2.0, floor_ms=5.0)
    assert check.passed is passed, why
    assert ("champion p95" in check.detail) is (champion_ms is not None)


def test_the_latency_defaults_are_documented_and_validated():
    gate = GateConfig()
    assert (gate.latency_budget_ms, gate.latency_ratio, gate.latency_floor_ms) == (200.0, 2.0, 5.0)
    with pytest.raises(ConfigError, match=r"gate\.latency_ratio must be >= 1"):
        GateConfig(latency_ratio=0.5)


def _leak(histories, targets, earlier=None):
    return leaked_test_sequences(histories, targets, list(range(len(targets))), earlier)


@pytest.mark.parametrize(
    ("history", "target", "leaked"),
    [
        ([1, 2, 3, 4], 5, False),
        ([1, 1, 2, 2, 3], 3, True),  # every event twice: the held-out one repeats the input's last
        ([9, 1, 1, 2, 2, 3], 3, True),  # a saved tail that starts mid-pair
        ([1, 2, 3, 3], 4, False),  # one double click is no duplication
        ([1, 2, 3, 1, 2], 3, True),  # the session again: 1, 2 -> 3 is in its training part
        ([1, 2, 3, 4, 2], 3, False),  # 2 -> 3 once before, without the same item before it
    ],
)
def test_test_sequences_whose_held_out_item_the_model_trained_on_are_found(history, target, leaked):
    assert _leak([history], [target]) == ([0] if leaked else [])


def test_a_warm_start_sources_training_data_counts_as_the_challengers():
    """Its weights carry what the source learnt: a test sequence the source trained on leaks."""
    histories, targets = [[1, 2, 3], [4, 5, 6]], [7, 8]
    assert _leak(histories, targets) == []
    earlier = {0: [1, 2, 3, 7, 9], 1: [4, 5]}  # sequence 0 went on past 7 in the source's data
    assert _leak(histories, targets, earlier) == [0]


def test_a_few_leaked_sequences_are_tolerated_a_share_above_five_percent_is_refused():
    assert leak_refusal(5, 100) == ""
    refusal = leak_refusal(60, 100, "version 3")
    assert "60 of 100 test sequences (60%" in refusal and "warm-started from" in refusal
    assert "version 3" in refusal


@pytest.mark.parametrize(
    ("mine", "items", "theirs", "known", "problem"),
    [
        (
            "ml-100k",
            range(1, 1683),
            "synthetic",
            range(1, 801),
            "trained on ml-100k, the champion on synthetic",
        ),
        (
            "synthetic",
            range(1, 801),
            "ml-100k",
            range(1, 1683),
            "trained on synthetic, the champion on ml-100k",
        ),
        ("parquet:/s/a.parquet", range(500, 600), "synthetic", range(1, 801), ""),
        ("csv:x.csv", range(900, 1000), "synthetic", range(1, 801), "knows only 0 of the challenger's 100"),
        ("synthetic", range(1, 801), "synthetic", range(1, 781), ""),  # new items since: one catalogue
        ("ml-100k:recbole", range(1, 100), "ml-100k", range(1, 100), ""),
    ],
)
def test_different_catalogues_are_named(mine, items, theirs, known, problem):
    known = set(known)
    found = catalogue_mismatch(mine, list(items), theirs, known.__contains__)
    assert (problem in found) if problem else found == ""
