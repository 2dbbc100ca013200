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
            "column 'item_id' has float ids that are not whole numbers in 1 row(s): row 2 10.5",
        ),
        ([10.0, 1e20, 11.0], "column 'item_id' has float ids beyond ±2**53 in 1 row(s): row 2 1e+20"),
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
        ([T0, -5.0, T0 + 1], "1 row(s): row 2 -5.0 (rows counted from 1)"),  # negative
        ([T0, T0 + 1, 86_400 * 365 * 25], "1 row(s): row 3 788400000"),  # 1994
        (
            ["2025-05-01", "1999-12-31T23:59:59Z", "1998-01-01"],
            "2 row(s): row 2 '1999-12-31T23:59:59Z', row 3 '1998-01-01'",
        ),
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
    assert "more than a day in the future" in str(err.value) and "1 row(s): row 2 " in str(err.value)
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


def epoch_csv(tmp_path, bad: dict[int, str], rows: int = 40) -> str:
    """An epoch-seconds CSV of ``rows`` data rows, ``bad`` values at 0-based data rows."""
    lines = ["session_id,item_id,timestamp"]
    lines += [f"{i // 4},{i % 7 + 1},{bad.get(i, str(int(T0) + i))}" for i in range(rows)]
    path = tmp_path / "events.csv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_timestamp_errors_name_the_bad_csv_lines_and_quote_only_bad_values(tmp_path):
    path = epoch_csv(tmp_path, {4: "abc", 17: "12:00", 30: ""})
    with pytest.raises(DataValidationError) as err:
        load_events(f"csv:{path}")
    text = str(err.value)
    # data rows 4, 17 and 30 are file lines 6, 19 and 32 (the header is line 1); the null is
    # reported with the others, not instead of them
    assert (
        f"csv:{path}: column 'timestamp' has unparsable, missing or infinite values in 3 row(s): "
        "line 6 'abc', line 19 '12:00', line 32 null (file lines; the header is line 1); "
        "expected epoch seconds, as the column's other values"
    ) == text
    assert str(int(T0)) not in text  # no valid value quoted


def test_timestamp_errors_in_parquet_name_rows_from_1(tmp_path):
    frame = pd.read_csv(epoch_csv(tmp_path, {4: "abc", 17: ""}), dtype=str)
    frame.to_parquet(tmp_path / "events.parquet")
    with pytest.raises(DataValidationError) as err:
        load_events(f"parquet:{tmp_path / 'events.parquet'}")
    assert "in 2 row(s): row 5 'abc', row 18 null (rows counted from 1)" in str(err.value)


def test_a_numeric_parquet_column_names_its_null_and_infinite_rows(tmp_path):
    frame = incoming(timestamp=[T0, None, float("inf")])
    frame.to_parquet(tmp_path / "events.parquet")
    with pytest.raises(DataValidationError) as err:
        load_events(f"parquet:{tmp_path / 'events.parquet'}")
    assert "in 2 row(s): row 2 null, row 3 inf (rows counted from 1); expected epoch seconds" in str(
        err.value
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["2025-05-01T10:00:00Z", "soon", "", "2025-05-01 11:00"], "line 3 'soon', line 4 null"),
        (["2025-05-01", "2025-05-02", "2025-05-03", "noon"], "line 5 'noon'"),
        ([str(int(T0)), "1.5e9", "x", str(int(T0) + 5)], "line 4 'x'"),
    ],
)
def test_iso_and_epoch_text_columns_name_only_their_bad_lines(tmp_path, values, expected):
    lines = ["session_id,item_id,timestamp", *(f"1,{i},{v}" for i, v in enumerate(values))]
    (tmp_path / "e.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError) as err:
        load_events(f"csv:{tmp_path / 'e.csv'}")
    assert f"row(s): {expected} (file lines; the header is line 1)" in str(err.value)


def test_a_datetime_column_names_its_missing_rows():
    times = pd.to_datetime(["2025-05-01", None, "2025-05-02"], utc=True)
    with pytest.raises(
        DataValidationError, match=r"1 row\(s\): row 2 null \(rows counted from 1\); expected dates"
    ):
        validate_events(incoming(timestamp=times))


def test_a_glob_names_the_file_and_its_line(tmp_path):
    (tmp_path / "a.csv").write_text("session_id,item_id,timestamp\n1,1,2025-05-01\n1,2,2025-05-02\n")
    (tmp_path / "b.csv").write_text("session_id,item_id,timestamp\n2,1,2025-05-01\n2,2,later\n")
    with pytest.raises(DataValidationError) as err:
        load_events(f"csv:{tmp_path}/*.csv")
    assert f"1 row(s): {tmp_path / 'b.csv'} line 3 'later'" in str(err.value)


def test_too_many_bad_rows_are_counted_and_the_first_shown(tmp_path):
    path = epoch_csv(tmp_path, {i: "bad" for i in range(10, 20)})
    with pytest.raises(DataValidationError) as err:
        load_events(f"csv:{path}")
    assert (
        "in 10 row(s): line 12 'bad', line 13 'bad', line 14 'bad', line 15 'bad', line 16 'bad' and 5 more"
        in (str(err.value))
    )


def test_other_errors_name_csv_lines_too(tmp_path):
    (tmp_path / "e.csv").write_text("session_id,item_id,timestamp\n1,10,1\n,11,2\n")
    with pytest.raises(
        DataValidationError, match=r"'session_id' has null values in 1 row\(s\): line 3 \(file"
    ):
        load_events(f"csv:{tmp_path / 'e.csv'}")


def held(**columns) -> pd.DataFrame:
    return validate_events(incoming(**columns))


def test_a_session_reusing_an_earlier_id_is_refused_naming_the_ids():
    from recops.data.collisions import check_new_sequences

    clash = validate_events(incoming(item_id=[12, 13, 14]))  # sessions 1 and 2, at the same times
    with pytest.raises(DataValidationError) as err:
        check_new_sequences(clash, [held()], "incoming file x.csv")
    text = str(err.value)
    assert text.startswith("incoming file x.csv: session id collision: 2 sequence(s) reuse the id")
    assert (
        "with 3 event(s) not after its last event: 1 (2 event(s) from" in text
        and "Give new sessions new ids" in text
    )


def test_a_session_continued_later_and_exact_repeats_are_no_collision():
    from recops.data.collisions import check_new_sequences

    later = validate_events(incoming(timestamp=[T0 + 10, T0 + 11, T0 + 12]))  # after each session's last
    check_new_sequences(later, [held()], "x")
    check_new_sequences(held(), [held()], "x")  # exact duplicates: dropped and counted, not refused
    check_new_sequences(validate_events(incoming(session_id=[7, 7, 8])), [held()], "x")  # new ids


def test_fresh_ids_are_above_every_integer_id_integer_or_text():
    from recops.data.collisions import fresh_sequence_ids

    ints, text = pd.Series([3, 41, 7]), pd.Series(["a", "099", "120", "-5000", "99999999999999999999"])
    assert fresh_sequence_ids([ints], 3).tolist() == [42, 43, 44]
    assert fresh_sequence_ids([ints, text], 2).tolist() == [121, 122]  # "099" is text, not 99
    assert fresh_sequence_ids([pd.Series(["a", "b"])], 1).tolist() == [1]


def test_columns_beyond_the_contract_never_reach_training(tmp_path):
    # a meta-level requirement (ML Test Score, data 4): whatever else a source carries, such as
    # a shopper's e-mail, only the contract's columns go on to sequences, models and snapshots
    events = csv_events(
        tmp_path,
        "session_id,item_id,timestamp,email,price,category\n"
        "1,10,1700000000,a@example.com,9.99,shoes\n1,11,1700000001,a@example.com,5.00,socks\n",
    )
    assert list(events.columns) == ["sequence_id", "item_id", "timestamp", "category"]
    validated = validate_events(incoming(email=["x@y.z"] * 3))
    assert list(validated.columns) == ["sequence_id", "item_id", "timestamp"]
