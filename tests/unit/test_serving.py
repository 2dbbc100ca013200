"""Serving pieces that need no server and no trained model: id matching, lineage labels, the
bento build's argument checks, and the serving bench's arithmetic."""

import pytest

from recops.config import load_config
from recops.data.interactions import ItemVocab
from recops.serving.build import build_bento
from recops.serving.model_store import lineage_labels, lineage_metadata
from recops.serving.recommender import Recommender
from recops.serving.runtime import match_item_ids
from tests.helpers import TINY

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def checkpoint():
    """An untrained 50-item SASRec checkpoint: lineage and shapes, no learning needed."""
    from recops.serving.bench import synthetic_checkpoint

    return synthetic_checkpoint(50, load_config(overrides=TINY))


def test_alias_errors_from_the_registry_reach_the_caller(monkeypatch):
    from recops import registry

    def missing(alias):
        raise registry.RegistryError(f"no version has alias {alias!r}")

    monkeypatch.setattr(registry, "load_checkpoint", missing)
    with pytest.raises(registry.RegistryError, match="no version has alias 'champion'"):
        build_bento(alias="champion")


def test_registry_lineage_becomes_labels(checkpoint):
    from recops import registry

    info = registry.ModelVersionInfo(
        name="session-recommender",
        version=7,
        run_id="0123456789abcdef0123456789abcdef",
        aliases=("champion",),
        tags={"metaflow_pathspec": "TrainRecommenderFlow/12/train/3", "git_commit": "abc123"},
    )
    labels = lineage_labels(checkpoint, info, source="alias-champion")
    assert labels["model_name"] == "session-recommender" and labels["model_version"] == "7"
    assert labels["run_id"] == info.run_id and labels["aliases"] == "champion"
    assert labels["metaflow_pathspec"] == "TrainRecommenderFlow-12-train-3"
    assert all(
        len(v) <= 63 and v.replace("-", "").replace("_", "").replace(".", "").isalnum()
        for v in labels.values()
    )
    metadata = lineage_metadata(checkpoint, info)
    assert metadata["registry"]["tags"]["metaflow_pathspec"] == "TrainRecommenderFlow/12/train/3"
    assert metadata["data_fingerprint"] == checkpoint.data_fingerprint


def test_build_needs_exactly_one_source():
    with pytest.raises(ValueError, match="exactly one"):
        build_bento()


@pytest.mark.parametrize(
    ("items", "session", "expected"),
    [
        ((1, 2, 42), ["42", 1, "042", "x"], [42, 1, "042", "x"]),
        (("1", "a"), [1, "a", 2], ["1", "a", 2]),
        ((5, "5"), ["5", 5], ["5", 5]),  # both exist: each id keeps its own type
    ],
)
def test_ids_are_matched_across_int_and_str(items, session, expected):
    assert match_item_ids(ItemVocab(items), session) == expected


def test_bench_pieces_measure_and_judge():
    from recops.serving.bench import _checks, bench_sessions, in_process_latency, synthetic_checkpoint

    checkpoint = synthetic_checkpoint(50, load_config(overrides=TINY))
    assert len(checkpoint.vocab) == 50 and len(checkpoint.item_counts) == 50
    floor = in_process_latency(Recommender(checkpoint), bench_sessions(50, 30))
    assert floor["requests"] == 30 and 0 < floor["p50_ms"] <= floor["p99_ms"]
    level = {"errors": 0, "p50_ms": 3.0, "throughput_rps": 100.0}
    checks = _checks({"p50_ms": 1.0}, {"1": level, "32": {**level, "throughput_rps": 350.0}})
    assert checks == {
        "zero_errors": True,
        "p50_c1_limit_ms": 4.0,
        "p50_c1_ok": True,
        "throughput_c32_over_c1": 3.5,
        "throughput_scaling_ok": True,
    }
    slow = _checks({"p50_ms": 1.0}, {"1": {**level, "p50_ms": 8.0}}, paced={"p50_ms": 3.5})
    assert not slow["p50_c1_ok"] and slow["p50_c1_vs_paced_limit_ms"] == 9.0 and slow["p50_c1_vs_paced_met"]


def test_the_same_checkpoint_is_imported_once(checkpoint, tmp_path, monkeypatch):
    """`bento build` imported an identical model into BentoML's store on every build; the same
    checkpoint bytes for the same registry version are now one model."""
    from recops.serving.model_store import import_checkpoint, load_bentoml

    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    path = checkpoint.save(tmp_path / "a" / "checkpoint.pt")
    first = import_checkpoint(path)
    # a Checkpoint object (as a registry alias gives it) saves to the same bytes: the same model
    assert import_checkpoint(checkpoint) == first
    assert import_checkpoint(checkpoint.save(tmp_path / "b.pt"), {"source": "path"}) == first
    other_version = import_checkpoint(checkpoint, {"model_version": "8"})
    assert other_version != first
    retrained = import_checkpoint(
        type(checkpoint)(**{**checkpoint.__dict__, "metrics": {"ndcg@10": 0.5}})  # other bytes
    )
    assert retrained not in (first, other_version)
    assert len(load_bentoml().models.list("session_recommender")) == 3
