"""max_len = "auto": the shortest standard length that holds 95% of the training sequences."""

from __future__ import annotations

import numpy as np
import pytest

from recops.config import GRU4RecConfig, SASRecConfig
from recops.models import AUTO_LENGTHS, auto_max_len, build_model, resolve_config

pytestmark = pytest.mark.unit


def sessions(*lengths: int) -> list[np.ndarray]:
    return [np.arange(1, n + 1) for n in lengths]


@pytest.mark.parametrize(
    ("lengths", "longest", "expected"),
    [
        ((5,) * 99 + (400,), 200, 10),  # one long outlier does not stretch every window
        ((11,) * 100, 200, 10),  # 11 events are 10 inputs: 10 holds them whole
        ((12,) * 100, 200, 20),
        ((30,) * 50 + (150,) * 50, 200, 200),  # user histories: the longest the family takes
        ((30,) * 50 + (150,) * 50, 50, 50),
        ((400,) * 10, 1000, 500),
        ((600,) * 10, 1000, 1000),  # past the last standard length: the longest
        ((1,) * 10, 200, 200),  # nothing to learn from: the family's longest
    ],
)
def test_auto_max_len(lengths, longest, expected):
    assert auto_max_len(sessions(*lengths), longest) == expected
    assert expected in (*AUTO_LENGTHS, longest)


def test_no_sequences_take_the_longest():
    assert auto_max_len(None, 200) == auto_max_len([], 200) == 200


def test_the_model_holds_the_number_not_auto():
    assert SASRecConfig().max_len == GRU4RecConfig().max_len == "auto"  # the defaults
    model = build_model("sasrec", SASRecConfig(hidden=8), n_items=10, sequences=sessions(*(8,) * 20))
    assert model.max_len == model.config.max_len == 10
    assert build_model("gru4rec", GRU4RecConfig(), n_items=10).config.max_len == 50  # untrained
    fixed = SASRecConfig(max_len=7)
    assert resolve_config(fixed, sessions(300)) is fixed  # a number is kept as it is
