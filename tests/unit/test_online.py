"""Online figures: served lists joined with the session's next event, measured with the offline
metric code; the champion's degradation against its baseline."""

import time

import numpy as np
import pandas as pd
import pytest

from recops.config import load_config
from recops.continuous.online import join_next_events, online_report
from recops.continuous.online_check import degradation
from recops.registry.versions import ModelVersionInfo
from recops.serving.bench import synthetic_checkpoint
from recops.serving.recommender import Recommendation, Recommender
from recops.serving.served_log import ServedLog, ServedRecord
from recops.store import Store
from recops.training.metrics import summarize


def served(
    log: ServedLog,
    i: int,
    at: float,
    session,
    answer: Recommendation,
    session_id,
    version="7",
    role="champion",
):
    log.record(
        ServedRecord(
            f"r{i}",
            at,
            session_id,
            session,
            answer,
            {"name": "session-recommender", "version": version},
            role,
            300,
            "recommend",
        )
    )


def write_events(store: Store, name: str, rows: list[tuple]) -> None:
    frame = pd.DataFrame(rows, columns=["session_id", "item_id", "timestamp"])
    path = store.url(f"incoming/{name}")
    import pathlib

    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def test_the_online_metric_equals_the_offline_function_on_the_same_pairs(tmp_path):
    config = load_config(overrides={"sasrec.max_len": 20, "sasrec.hidden": 16})
    recommender = Recommender(synthetic_checkpoint(300, config, seed=3))
    rng = np.random.default_rng(0)
    sessions = [[int(i) for i in rng.integers(1, 301, rng.integers(1, 8))] for _ in range(400)]
    sessions[:5] = [[] for _ in range(5)]  # cold sessions: popularity, online and offline
    targets = [int(t) for t in rng.integers(1, 301, len(sessions))]
    # make a share of targets hits, so the figures are not all zero
    for i in range(0, len(sessions), 3):
        targets[i] = recommender.recommend(sessions[i], 10, exclude_seen=False).items[i % 10][0]
    offline = summarize(recommender.rank_targets(sessions, targets), ks=(10,))
    assert 0.1 < offline["hr@10"] < 0.9

    store = Store(tmp_path)
    log = ServedLog(store, flush_seconds=3600)
    now = time.time() - 3600
    for i, session in enumerate(sessions):
        served(log, i, now + i, session, recommender.recommend(session, 10, exclude_seen=False), f"s{i}")
    log.close()
    # the next event of each session, a few seconds after its answer, plus noise: the same
    # session earlier, another session, and a later event of the same session
    rows = [(f"s{i}", t, now + i + 2) for i, t in enumerate(targets)]
    rows += [(f"s{i}", 1, now + i - 1) for i in range(0, len(sessions), 7)]
    rows += [(f"s{i}", 2, now + i + 50) for i in range(0, len(sessions), 5)]
    write_events(store, "follow-ups.csv", rows)
    report = online_report(config, store=store, since=now - 10, until=time.time(), offline={"7": 0.5})
    figures = report.figures("7")
    assert figures.pairs == len(sessions) == report.pairs
    assert figures.metrics == pytest.approx(offline, abs=1e-12)
    assert figures.offline_ndcg_at_10 == 0.5
    # per slice, the same code on the same ranks: the five cold sessions, the short ones
    offline_ranks = recommender.rank_targets(sessions, targets)
    assert figures.slices["cold"]["n"] == 5
    assert figures.slices["cold"]["ndcg@10"] == pytest.approx(
        summarize(offline_ranks[:5], ks=(10,))["ndcg@10"]
    )
    short = np.array([len(s) <= 2 for s in sessions])
    assert figures.slices["short_sessions"]["n"] == short.sum()
    assert figures.slices["short_sessions"]["ndcg@10"] == pytest.approx(
        summarize(offline_ranks[short], ks=(10,))["ndcg@10"]
    )
    assert 0 < figures.coverage <= 1 and 0 <= figures.popular_share <= 1
    assert "| 7 | champion | 400 | 400 |" in report.markdown(min_pairs=100)


def test_the_join_takes_the_sessions_next_event_within_the_window():
    served_rows = pd.DataFrame(
        {"session_id": ["a", "a", "b", None, "c"], "served_at": [100.0, 200.0, 100.0, 100.0, 100.0]}
    )
    events = pd.DataFrame(
        {
            "sequence_id": ["a", "a", "a", "b", "c", "c"],
            "item_id": [1, 2, 3, 9, 5, 6],
            "timestamp": [100.0, 150.0, 260.0, 100.0 + 1801, 99.0, 1000.0],
        }
    )
    targets = join_next_events(served_rows, events, follow_up_s=1800)
    # a@100: the event at 100 is not after it, 150 is; a@200: 260; b: past the window;
    # no id: never; c: the event before does not count, the one at 1000 does
    assert list(targets) == ["2", "3", None, None, "6"]


def champion(tags):
    return ModelVersionInfo("session-recommender", 4, "run", ("champion",), tags)


@pytest.mark.parametrize(
    ("tags", "observed", "degraded", "source"),
    [
        ({"test_ndcg_10": "0.30"}, 0.25, False, "offline"),
        ({"test_ndcg_10": "0.30"}, 0.19, True, "offline"),
        ({"test_ndcg_10": "0.30", "online_baseline_ndcg_at_10": "0.20"}, 0.19, False, "online"),
        ({}, 0.01, False, ""),
    ],
)
def test_degradation_compares_with_the_champions_own_baseline(tags, observed, degraded, source):
    from recops.continuous.online import OnlineReport, VersionFigures

    report = OnlineReport(0, 1, 10, 1800, 500, 500, 0, 0, 0, 1)
    report.versions = [VersionFigures("m", "4", "champion", 500, 500, {"ndcg@10": observed}, 0.1, 0.5)]
    settings = load_config(overrides={"online.max_drop": 0.3}).online
    judged = degradation(report, champion(tags), settings)
    assert (judged.degraded, judged.baseline_source) == (degraded, source)
    assert ("degraded" in judged.summary()) == degraded


def test_too_few_pairs_are_never_acted_on():
    from recops.continuous.online import OnlineReport, VersionFigures

    report = OnlineReport(0, 1, 10, 1800, 50, 50, 0, 0, 0, 1)
    report.versions = [VersionFigures("m", "4", "champion", 50, 50, {"ndcg@10": 0.0}, 0.1, 0.5)]
    judged = degradation(report, champion({"test_ndcg_10": "0.3"}), load_config().online)
    assert not judged.degraded and "too few to judge" in judged.summary()


def test_rank_biased_overlap():
    from recops.continuous.shadow import rbo

    a = [str(i) for i in range(10)]
    assert rbo(a, a) == pytest.approx(1.0)
    assert rbo(a, [str(i) for i in range(10, 20)]) == 0.0
    swapped = a[1:2] + a[:1] + a[2:]
    reversed_ = a[::-1]
    assert 0 < rbo(a, reversed_) < rbo(a, swapped) < 1  # agreement at the top weighs most
    assert rbo(a, swapped) == pytest.approx(rbo(swapped, a))
