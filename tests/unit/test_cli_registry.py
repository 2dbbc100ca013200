"""The registry listing's columns: dataset, lineage and the latest gate decision."""

import json

import pytest

from recops.cli.registry import gate_column, lineage, short_dataset
from recops.registry.history import decision_history

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        ("synthetic", "synthetic"),
        ("ml-100k:recbole", "ml-100k:recbole"),
        ("parquet:/home/u/.recops/snapshots/c0651be770a7d3e1.parquet", "parquet:c0651be…"),
        ("csv:data/events.csv", "csv:events"),
        ("a-very-long-dataset-name", "a-very-long-dat…"),
    ],
)
def test_dataset_column_is_short(spec, shown):
    assert short_dataset(spec) == shown
    assert len(short_dataset(spec)) <= 16


@pytest.mark.parametrize(
    ("tags", "shown"),
    [
        (
            {
                "metaflow_pathspec": "TrainRecommenderFlow/7",
                "git_commit": "0123abcdef",
                "data_fingerprint": "sha256:c0651be770a7d3e1",
                "warm_started_from": "version 3",
            },
            "TrainRecommenderFlow/7 @0123abc data c0651be7 warm:version 3",
        ),
        ({"data_fingerprint": "c0651be770a7d3e1"}, "- data c0651be7"),
        ({}, "-"),
    ],
)
def test_lineage_column_names_run_commit_data_and_warm_start(tags, shown):
    assert lineage(tags) == shown


def decided(action: str, at: str, history: list | None = None) -> dict[str, str]:
    tags = {"gate_decision": action, "gate_reason": f"{action} because", "gate_at": at}
    if history is not None:
        tags["gate_history"] = json.dumps(history)
    return tags


def test_the_decision_history_ends_with_the_latest_decision_even_after_a_crash():
    first = {"action": "promoted", "reason": "r", "at": "2026-01-01T00:00:00+00:00", "champion": ""}
    complete = decided("rejected", "2026-01-02T00:00:00+00:00", [first, {"at": "2026-01-02T00:00:00+00:00"}])
    assert len(decision_history(complete)) == 2
    # died after gate_decision was written, before the record was appended: completed on reading
    short = decision_history(decided("rejected", "2026-01-02T00:00:00+00:00", [first]))
    assert [r["action"] for r in short] == ["promoted", "rejected"]
    # gated before histories were kept: the tags are its one decision
    assert [r["action"] for r in decision_history(decided("promoted", "2026-01-01T00:00:00+00:00"))] == [
        "promoted"
    ]
    assert decision_history({}) == []
    assert gate_column(decided("rejected", "2026-01-02T00:00:00+00:00", [first])) == "rejected (2 decisions)"
    assert gate_column(decided("promoted", "2026-01-01T00:00:00+00:00")) == "promoted"
