"""The retrain policy: which changes make a cycle train, and the reason it gives."""

import pytest

from recops.config import Config, RetrainConfig
from recops.continuous.drift import DriftReport
from recops.continuous.online_check import Degradation
from recops.continuous.policy import ChangeReport, PriorVersion, plan_retrain

pytestmark = pytest.mark.unit


def change(**kwargs) -> ChangeReport:
    base = {"fingerprint": "sha256:new", "code_hash": "c", "config_hash": "k"}
    return ChangeReport(**{**base, **kwargs})


CHAMPION = {"champion_version": 3, "champion_fingerprint": "sha256:new", "champion_age_hours": 2.0}
DRIFT = DriftReport(
    window="new",
    new_events=900,
    popularity_js=0.4,
    unseen_share=0.0,
    length_js=0.0,
    mean_length_reference=9.0,
    mean_length_new=9.0,
    drifted=["item popularity"],
)

NOT_JUDGED = DriftReport("new", 0, 0.0, 0.0, 0.0, 9.0, 0.0, judged=False, reference_last=0.0)


@pytest.mark.parametrize(
    ("report", "kwargs", "retrain", "says"),
    [
        (change(), {}, True, "no champion yet"),
        (change(**CHAMPION), {}, False, "data, code and config unchanged"),
        (change(**CHAMPION), {"force": True}, True, "forced"),
        (  # forced on inputs already trained: it says the gate will hardly promote the result
            change(**CHAMPION, trained_as=PriorVersion(3, "promoted", is_champion=True)),
            {"force": True},
            True,
            "forced, on the inputs version 3 was trained on: the gate promotes only a model significantly",
        ),
        (change(**{**CHAMPION, "champion_fingerprint": "sha256:old"}), {}, True, "new data"),
        (
            change(**{**CHAMPION, "champion_fingerprint": "sha256:old"}),
            {"on_new_data": False},
            False,
            "retrain.on_new_data is off",
        ),
        (
            change(**{**CHAMPION, "champion_fingerprint": "sha256:old", "drift": DRIFT}),
            {"on_new_data": False},
            True,
            "drift in item popularity",
        ),
        (  # no new events: drift was not judged, which is not "no drift"
            change(**{**CHAMPION, "champion_fingerprint": "sha256:old", "drift": NOT_JUDGED}),
            {"on_new_data": False},
            False,
            "retrain.on_new_data is off (no new events since the champion's data",
        ),
        (change(**{**CHAMPION, "code_changed": True}), {}, True, "code changed"),
        (change(**{**CHAMPION, "champion_age_hours": 500.0}), {}, True, "500.0 h old"),
        (
            change(**CHAMPION, trained_as=PriorVersion(4, "rejected", is_champion=False)),
            {},
            False,
            "version 4 was trained on them (gate: rejected)",
        ),
    ],
)
def test_plan_retrain(report, kwargs, retrain, says):
    plan = plan_retrain(report, Config(retrain=RetrainConfig(max_champion_age_hours=168)), **kwargs)
    assert plan.retrain is retrain
    assert says in plan.text()


def degraded() -> Degradation:
    return Degradation(3, observed=0.02, pairs=150, baseline=0.5, baseline_source="offline", max_drop=0.3)


@pytest.mark.parametrize(
    ("trained_as", "retrain", "says"),
    [
        (None, True, "online NDCG@10 of champion version 3 degraded"),
        # the champion's own inputs: trained once more (a model that serves worse than it tested)
        (PriorVersion(3, "promoted", is_champion=True), True, "degraded: 0.0200 vs offline baseline 0.5000"),
        # a version trained on them since and not promoted: no hourly repeat
        (PriorVersion(4, "rejected", is_champion=False), False, "and retraining on these inputs was done"),
    ],
)
def test_online_degradation_retrains_once_per_inputs(trained_as, retrain, says):
    report = change(**CHAMPION, trained_as=trained_as, online=degraded())
    plan = plan_retrain(report, Config(), on_new_data=False)
    assert plan.retrain is retrain
    assert says in plan.text()


def test_the_cycle_summary_says_what_the_online_check_found():
    from recops.continuous.cycle_result import CycleOutcome, CycleResult, summary_markdown

    report = change(**CHAMPION, online=degraded())
    result = CycleResult(
        CycleOutcome.SKIPPED, plan_retrain(report, Config(), on_new_data=False), change=report
    )
    assert "| online | online NDCG@10 of champion version 3 degraded: 0.0200 vs offline baseline 0.5000" in (
        summary_markdown(result)
    )
