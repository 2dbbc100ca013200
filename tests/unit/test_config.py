import pickle
from pathlib import Path

import pytest
from pydantic import ValidationError

from recops.config import (
    Config,
    ConfigError,
    GateConfig,
    SASRecConfig,
    SyntheticConfig,
    TrainConfig,
    config_from_dict,
    load_config,
    parse_override,
)
from recops.errors import RecopsError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_default_toml_documents_exactly_the_defaults():
    assert load_config(ROOT / "configs" / "default.toml") == Config()


def test_overrides_are_typed():
    cfg = load_config(overrides={"sasrec.lr": "0.01", "sasrec.history_bias": "false", "train.epochs": 3})
    assert cfg.sasrec.lr == 0.01 and cfg.sasrec.history_bias is False and cfg.train.epochs == 3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sasrec.lr": "fast"}, "sasrec.lr: expected float"),
        ({"train.epochs": "1.5"}, "train.epochs: expected int"),
        ({"train.nope": 1}, "unknown config key(s) train.nope"),
        ({"sasrec.hidden": 63, "sasrec.n_heads": 2}, "divisible by n_heads"),
        ({"train.device": "tpu"}, "train.device must be auto, cpu or cuda"),
        ({"sasrec.dropout": 1.0}, "sasrec.dropout must be in [0, 1)"),
    ],
)
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=overrides)
    assert message in str(err.value)


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochs = 'x'\n")
    with pytest.raises(ConfigError, match=r"bad.toml: train.epochs"):
        load_config(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml")


def test_parse_override():
    assert parse_override("train.lr=0.1") == ("train.lr", "0.1")
    with pytest.raises(ConfigError):
        parse_override("train.lr")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # nan and ±inf: nan compares false with everything, so a range check alone lets it through
        ({"gate.margin": "nan"}, "gate.margin must be a finite number, got nan"),
        ({"gate.margin": float("nan")}, "gate.margin must be a finite number"),
        ({"sasrec.lr": "+inf"}, "sasrec.lr must be a finite number, got inf"),
        ({"gate.latency_budget_ms": "-inf"}, "gate.latency_budget_ms must be a finite number, got -inf"),
        ({"drift.unseen_share": float("inf")}, "drift.unseen_share must be a finite number"),
        # out of range
        ({"train.batch_size": "-1"}, "train.batch_size must be >= 1, got -1"),
        ({"data.synthetic.n_items": 0}, "data.synthetic.n_items must be >= 1, got 0"),
        ({"data.synthetic.successor_prob": 1.5}, "data.synthetic.successor_prob must be in [0, 1], got 1.5"),
        ({"gate.margin": -0.1}, "gate.margin must be >= 0"),
        ({"gate.confidence": "1"}, "gate.confidence must be in (0, 1)"),
        ({"drift.popularity_js": 0}, "drift.popularity_js must be in (0, 1]"),
        ({"sasrec.lr": 0}, "sasrec.lr must be > 0"),
        ({"train.seed": -1}, "train.seed must be in [0, 4294967295]"),
        ({"resources.gpu": -1}, "resources.gpu must be >= 0"),
        ({"gru4rec.max_len": 1}, 'gru4rec.max_len must be a whole number of at least 2, or "auto" (set'),
        ({"sasrec.max_len": "long"}, 'sasrec.max_len must be a whole number of at least 2, or "auto"'),
        ({"sasrec.max_len": True}, "sasrec.max_len must be a whole number of at least 2"),
        # wrong type
        ({"train.epochs": 1.5}, "train.epochs: expected int, got 1.5"),
        ({"train.epochs": True}, "train.epochs: expected int, got True"),
        ({"sasrec.history_bias": "yes"}, "sasrec.history_bias: expected bool"),
        ({"train.device": 3}, "train.device: expected str, got 3"),
        ({"retrain.model": "bert4rec"}, "retrain.model must be sasrec, gru4rec, popular, markov, sr or"),
        ({"tune.models": ["sasrec", "bert4rec"]}, "tune.models names unknown model bert4rec; choose from"),
        ({"tune.models": []}, "tune.models must name at least one model"),
        ({"vsknn.recency": "log"}, "vsknn.recency must be div, linear or same"),
        ({"data.synthetic.order": 3}, "data.synthetic.order"),
        (
            {"data.synthetic.structure": "markov"},
            "data.synthetic.structure must be successors, intent or scale",
        ),
        (
            {"data.synthetic.structure": "intent", "data.synthetic.order": 2},
            'data.synthetic.order = 2 applies to structure = "successors" only',
        ),
        (
            {"store.uri": "gs://bucket/recops"},
            "store.uri must be a local folder or s3://bucket[/prefix] (the scheme gs:// is not "
            "supported), got 'gs://bucket/recops'",
        ),
        (
            {"store.uri": "s3://"},
            "store.uri must be a local folder or s3://bucket[/prefix] (it names no bucket)",
        ),
        ({"store.uri": 3}, "store.uri: expected str, got 3"),
        # unknown keys, in a section and at the top level
        ({"gate.nope": 1, "gate.other": 2}, "unknown config key(s) gate.nope, gate.other in [gate]"),
        ({"data.synthetic.nope": 1}, "unknown config key(s) data.synthetic.nope in [data.synthetic]"),
        ({"nope": 1}, "unknown config key(s) nope in top level"),
        # a section given as a scalar
        ({"gate": 3}, "gate: expected a table, got 3"),
        ({"data.synthetic": "big"}, "data.synthetic: expected a table, got 'big'"),
    ],
)
def test_every_value_is_typed_finite_and_in_range(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=overrides)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[gate]\nmargin = nan\n", "bad.toml: gate.margin must be a finite number, got nan"),
        ("[gate]\nmargin = -inf\n", "bad.toml: gate.margin must be a finite number, got -inf"),
        ("[train]\nbatch_size = -1\n", "bad.toml: train.batch_size must be >= 1, got -1"),
        ("[train]\nepochs = 3.0\n", "bad.toml: train.epochs: expected int, got 3.0"),
        ("[sasrec]\nhistory_bias = 1\n", "bad.toml: sasrec.history_bias: expected bool"),
        ("gate = 1\n", "bad.toml: gate: expected a table, got 1"),
        ("[train]\nnope = 1\n", "bad.toml: unknown config key(s) train.nope in [train]"),
    ],
)
def test_file_values_are_checked_the_same_way(tmp_path, toml, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert message in str(err.value)


def test_a_toml_int_is_accepted_for_a_float():
    assert load_config(overrides={"gate.margin": 1}).gate.margin == 1.0


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: GateConfig(margin=float("nan")), "gate.margin must be a finite number"),
        (lambda: GateConfig(margin=-1), "gate.margin must be >= 0"),
        (lambda: TrainConfig(batch_size=0), "train.batch_size must be >= 1"),
        (lambda: SASRecConfig(hidden=63, n_heads=2), "sasrec.hidden must be divisible by n_heads"),
        (lambda: SyntheticConfig(nope=1), "unknown config key(s) data.synthetic.nope"),
        (lambda: Config(gate={"k": 0}), "gate.k must be >= 1"),
        (lambda: config_from_dict({"train": {"epochs": "x"}}), "train.epochs: expected int"),
    ],
)
def test_sections_built_in_code_raise_a_config_error(build, message):
    with pytest.raises(ConfigError) as err:
        build()
    assert message in str(err.value)
    assert isinstance(err.value, RecopsError) and not isinstance(err.value, ValueError)


def test_config_is_frozen_hashable_and_pickles():
    cfg = load_config(overrides={"train.epochs": "3"})
    with pytest.raises(ValidationError, match="frozen"):
        cfg.train.epochs = 4  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        cfg.train = TrainConfig()  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert hash(cfg) == hash(load_config(overrides={"train.epochs": 3}))
    assert cfg != Config()


def test_to_dict_is_plain_nested_data():
    tree = Config().to_dict()
    assert list(tree) == [
        "data",
        "train",
        "sasrec",
        "gru4rec",
        "popular",
        "markov",
        "sr",
        "vsknn",
        "resources",
        "gate",
        "drift",
        "retrain",
        "online",
        "tune",
        "store",
        "cache",
    ]
    assert tree["data"]["synthetic"]["n_items"] == 800 and tree["gate"]["margin"] == 0.0
    assert config_from_dict(tree) == Config()


def test_model_section():
    cfg = Config()
    assert cfg.model_section("gru4rec") is cfg.gru4rec
    with pytest.raises(ConfigError, match="unknown model 'bert4rec'"):
        cfg.model_section("bert4rec")


@pytest.mark.parametrize(
    "uri", ["", "s3://bucket", "s3://bucket/recops/prod", "/srv/recops", "file:///srv/recops"]
)
def test_a_store_is_a_folder_or_an_s3_uri(uri):
    assert load_config(overrides={"store.uri": uri}).store.uri == uri
