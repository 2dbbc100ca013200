"""The step cache's pure parts: digests, config-section tracing, the ledger and the report."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import torch

from recops.config import Config, ConfigError, load_config
from recops.errors import RecopsError
from recops.pipeline import cache, cache_trace
from recops.pipeline.cache_audit import cache_report, parse_since
from recops.pipeline.cache_trace import config_digests
from recops.pipeline.digest import stable_digest


@dataclass
class Epoch:
    epoch: int
    loss: float
    seconds: float


def test_stable_digest_sees_content_and_ignores_durations():
    frame = pd.DataFrame({"item_id": [1, 2, 3], "timestamp": [1.0, 2.0, 3.0]})
    value = {"weights": torch.arange(6.0).reshape(2, 3), "ranks": np.array([1, 5]), "events": frame}
    assert stable_digest(value) == stable_digest(
        {"weights": torch.arange(6.0).reshape(2, 3), "ranks": np.array([1, 5]), "events": frame.copy()}
    )
    changed = {**value, "weights": value["weights"] + 1e-6}
    assert stable_digest(changed) != stable_digest(value)
    assert stable_digest({**value, "ranks": np.array([1, 6])}) != stable_digest(value)
    # how long an epoch took is not what it computed; its loss is
    assert stable_digest([Epoch(1, 0.5, 3.0)]) == stable_digest([Epoch(1, 0.5, 9.9)])
    assert stable_digest([Epoch(1, 0.5, 3.0)]) != stable_digest([Epoch(1, 0.6, 3.0)])
    assert stable_digest({"train_seconds": 1}) == stable_digest({"train_seconds": 2})


def test_a_traced_config_records_the_sections_read_and_switches_back():
    config = load_config()
    tracer = cache_trace._Tracer(flow=None)
    value = tracer.loaded("settings", config)
    assert isinstance(value, Config) and type(value) is not Config
    assert value.model_section("sasrec").max_len == "auto" and value.train.epochs > 0
    assert cache_trace._CONFIG_READS[id(value)] == {"sasrec", "train"}
    value.to_dict()
    assert "*" in cache_trace._CONFIG_READS[id(value)]  # a dump of the whole tree reads every section
    cache_trace._CONFIG_READS.pop(id(value))
    value.__class__ = Config
    assert type(config) is Config


def test_config_digests_change_only_with_their_section():
    base = load_config()
    gate = load_config(overrides={"gate.k": 5})
    assert config_digests(base, ["train", "sasrec"]) == config_digests(gate, ["train", "sasrec"])
    assert config_digests(base, ["gate"]) != config_digests(gate, ["gate"])
    assert config_digests(base, ["*"]) != config_digests(gate, ["*"])


def test_enabled_switches():
    assert cache.enabled()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECOPS_CACHE", "off")
        assert not cache.enabled()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECOPS_INJECT_FAULT", "train")
        assert not cache.enabled(step_name="train") and cache.enabled(step_name="evaluate")

    class Flow:
        no_cache = True

    assert not cache.enabled(Flow())


def test_ledger_totals_and_line():
    ledger = {
        "split": {"hit": True, "cached_from": "F/1/split/2", "seconds_saved": 3.0, "cost_saved": 0.001},
        "train": {"hit": True, "cached_from": "F/1/train/3", "seconds_saved": 60.0, "cost_saved": None},
        "evaluate": {"hit": False, "seconds": 4.0},
    }
    totals = cache.ledger_totals(ledger)
    assert totals == {"hits": ["split", "train"], "seconds_saved": 63.0, "cost_saved": 0.001}
    assert cache.ledger_line(ledger) == "step cache: reused split, train; saved 63.0 s, $0.0010"
    assert (
        cache.ledger_line({"train": {"hit": False, "seconds": 2.0}})
        == "step cache: no hits (1 cached steps ran)"
    )


def test_parse_since_and_the_report():
    assert parse_since("7d") == timedelta(days=7) and parse_since("90s") == timedelta(seconds=90)
    for bad in ("7", "d", "7x", "-1d", ""):
        with pytest.raises(RecopsError, match="--since must be a number and a unit"):
            parse_since(bad)
    now = datetime.now(UTC)
    hits = [
        {"flow": "F", "step": "train", "seconds_saved": 60.0, "cost_saved": 0.0168, "time": now.isoformat()},
        {"flow": "F", "step": "train", "seconds_saved": 40.0, "cost_saved": None, "time": now.isoformat()},
        {"flow": "F", "step": "split", "seconds_saved": 2.0, "cost_saved": None,
         "time": (now - timedelta(days=10)).isoformat()},
    ]  # fmt: skip
    everything = cache_report(None, hits)
    assert everything["hits"] == 3 and everything["seconds_saved"] == 102.0
    recent = cache_report(timedelta(days=7), hits)
    assert recent["hits"] == 2 and recent["seconds_saved"] == 100.0 and recent["cost_saved"] == 0.0168
    assert recent["steps"] == [
        {"flow": "F", "step": "train", "hits": 2, "seconds_saved": 100.0, "cost_saved": 0.0168}
    ]


def test_the_config_prices_instance_types():
    prices = Config().cache
    assert prices.price("local") == 0.0 and prices.price("g5.xlarge") > prices.price("m5.large") > 0
    assert prices.price("z1.nano") is None
    table = load_config(overrides={"cache.instance_prices": {"m5.large": 0.1, "local": 0}}).cache
    assert table.price("m5.large") == 0.1 and table.price("g5.xlarge") is None and hash(table)
    with pytest.raises(ConfigError, match=r"cache.instance_prices needs a price >= 0 .* for 'm5.large'"):
        load_config(overrides={"cache.instance_prices": {"m5.large": -1.0}})
