"""The event data contract: ids keep their identity, timestamps in range, exact duplicates dropped."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from recops.data import DataValidationError, load_events, validate_events
from recops.data.schema import check_events
from recops.errors import RecopsError

pytestmark = pytest.mark.unit

NOW = datetime(2025, 6, 1, tzinfo=UTC).timestamp()
T0 = datetime(2025, 5, 1, tzinfo=UTC).timestamp()


def csv_events(tmp_path, text: str) -> pd.DataFrame:
    path = tmp_path / "events.csv"
    path.write_text(text)
    return load_events(f"csv:{path}")


def incoming(**columns) -> pd.DataFrame:
    base = {"session_id": [1, 1, 2], "item_id": [10, 11, 10], "timestamp": [T0, T0 + 1, T0 + 2]}
    base.update(columns)
    return pd.DataFrame(base)


def test_validation_errors_are_recops_errors():
    assert issubclass(DataValidationError, RecopsError)


def test_leading_zeros_keep_an_item_apart(tmp_path):
    events = csv_events(tmp_path, "session_id,item_id,timestamp\n1,007,1\n1,7,2\n2,007,3\n")
    assert events["item_id"].tolist() == ["007", "7", "007"]
    assert events["item_id"].nunique() == 2
    assert events["sequence_id"].dtype == np.int64  # canonical integers stay integers


def test_canonical_integer_text_becomes_int64(tmp_path):
    events = csv_events(tmp_path, "user_id,item_id,timestamp\n-3,0,1\n5,9223372036854775807,2\n")
    assert events["item_id"].dtype == np.int64 and events["item_id"].tolist() == [0, 2**63 - 1]
    assert events["sequence_id"].tolist() == [-3, 5]


@pytest.mark.parametrize("odd", ["1e20", "7.0", "99999999999999999999", "9223372036854775808", "-0", "+7"])
def test_non_canonical_or_overflowing_ids_stay_text(tmp_path, odd):
    events = csv_events(tmp_path, f"session_id,item_id,timestamp\n1,{odd},1\n1,7,2\n")
    assert events["item_id"].tolist() == [odd, "7"]


def test_one_e_twenty_stays_text_not_a_negative_integer(tmp_path):
    events = csv_events(tmp_path, "session_id,item_id,timestamp\n1,1e20,1\n")
    assert events["item_id"].tolist() == ["1e20"]


def test_empty_id_cell_is_still_a_null(tmp_path):
    with pytest.raises(DataValidationError, match="column 'item_id' has null values in 1 row"):
        csv_events(tmp_path, "session_id,item_id,timestamp\n1,7,1\n1,,2\n")


def test_object_ids_follow_the_text_rule():
    events = validate_events(incoming(item_id=["10", "010", "x"]))
    assert events["item_id"].tolist() == ["10", "010", "x"]
    assert validate_events(incoming(item_id=["10", "11", "12"]))["item_id"].dtype == np.int64


def test_whole_float_ids_are_integers_within_2_to_the_53():
    events = validate_events(incoming(item_id=[10.0, 11.0, float(2**53)]))
    assert events["item_id"].dtype == np.int64 and events["item_id"].tolist() == [10, 11, 2**53]


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (
            [10.0, 10.5, 11.0],
            "column 'item_id' has float ids that are not whole numbers in 1 row(s), first at row 1",
        ),
        ([10.0, 1e20, 11.0], "column 'item_id' has float ids beyond ±2**53 in 1 row(s), first at row 1"),
    ],
)
def test_float_ids_that_are_not_exact_integers_are_refused(ids, message):
    with pytest.raises(DataValidationError) as err:
        validate_events(incoming(item_id=ids), source="in.parquet")
    assert message in str(err.value)


def test_integer_dtypes_stay_int64():
    events = validate_events(incoming(item_id=pd.array([10, 11, 10], dtype="Int32")))
    assert events["item_id"].dtype == np.int64


def test_epoch_milliseconds_are_named_with_the_fix():
    ms = [T0 * 1000, (T0 + 1) * 1000, (T0 + 2) * 1000]
    with pytest.raises(DataValidationError) as err:
        validate_events(incoming(timestamp=ms), source="in.csv", check_time_range=True, now=NOW)
    text = str(err.value)
    assert "looks like epoch milliseconds in 3 row(s)" in text and "divide the column by 1000" in text


def test_milliseconds_as_text_are_named_too():
    ms = [str(int(T0 * 1000)), str(int(T0 * 1000) + 5), str(int(T0 * 1000) + 9)]
    with pytest.raises(DataValidationError, match="milliseconds"):
        validate_events(incoming(timestamp=ms), check_time_range=True, now=NOW)


@pytest.mark.parametrize(
    ("times", "rows"),
    [
        ([T0, -5.0, T0 + 1], "1 row(s), first at row 1"),  # negative
        ([T0, T0 + 1, 86_400 * 365 * 25], "1 row(s), first at row 2"),  # 1994
        (["2025-05-01", "1999-12-31T23:59:59Z", "1998-01-01"], "2 row(s), first at row 1, 2"),
    ],
)
def test_timestamps_before_2000_are_refused_with_the_rows(times, rows):
    with pytest.raises(DataValidationError) as err:
        validate_events(incoming(timestamp=times), source="in.csv", check_time_range=True, now=NOW)
    assert "column 'timestamp' has values before 2000-01-01 in " + rows in str(err.value)


def test_base_data_from_1997_still_validates():
    movielens_era = [874_965_758.0, 874_965_800.0, 875_000_000.0]  # MovieLens-100k, 1997
    events = validate_events(incoming(timestamp=movielens_era))
    assert events["timestamp"].tolist() == movielens_era


def test_a_future_timestamp_is_refused():
    with pytest.raises(DataValidationError) as err:
        validate_events(incoming(timestamp=[T0, NOW + 2 * 86_400, T0 + 1]), check_time_range=True, now=NOW)
    assert "more than a day in the future" in str(err.value) and "first at row 1" in str(err.value)
    # within the day's allowance for clock drift: accepted
    validate_events(incoming(timestamp=[T0, NOW + 3600, T0 + 1]), check_time_range=True, now=NOW)


def test_exact_duplicates_are_dropped_counted_and_logged(caplog):
    frame = pd.DataFrame(
        {
            "session_id": [1, 1, 1, 1, 2],
            "item_id": [10, 10, 10, 11, 10],
            "timestamp": [T0, T0, T0, T0, T0],
            "event_type": ["view", "view", "cart", "view", "view"],
        }
    )
    with caplog.at_level(logging.INFO, logger="recops.data.schema"):
        events = validate_events(frame, source="in.csv")
    assert events.attrs["duplicates_dropped"] == 1
    assert events["event_type"].tolist() == ["view", "cart", "view", "view"]  # the first kept
    assert "in.csv: dropped 1 exact duplicate event(s)" in caplog.text
    assert check_events(frame).duplicates_dropped == 1
    assert check_events(frame.drop(columns="event_type")).duplicates_dropped == 2


def test_no_duplicates_no_log(caplog):
    with caplog.at_level(logging.INFO, logger="recops.data.schema"):
        events = validate_events(incoming())
    assert events.attrs["duplicates_dropped"] == 0 and caplog.text == ""
