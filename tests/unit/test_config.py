from pathlib import Path

import pytest

from recops.config import Config, ConfigError, load_config, parse_override

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
