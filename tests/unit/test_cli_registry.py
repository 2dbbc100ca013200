"""The registry listing's dataset column."""

import pytest

from recops.cli.registry import short_dataset

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
