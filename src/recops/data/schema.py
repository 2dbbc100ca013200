"""The event schema and its validation: nothing downstream runs on invalid data.

An event table has ``item_id``, ``timestamp`` and one of ``session_id`` / ``user_id``
(optional ``event_type``, ``category``). :func:`validate_events` returns a normalised frame with columns
``sequence_id``, ``item_id``, ``timestamp`` (float seconds) and, if present, ``event_type`` and
``category`` (as text), in the original row order (ties in time keep file order).

The contract, beyond the columns:

* **Ids keep their identity.** An id column is int64 only when every value is an integer
  already (an integer dtype, or floats that are all whole and within ±2**53, where floats are
  exact) or the canonical text of one (``0`` or ``-?[1-9][0-9]*``, fitting int64). Anything
  else is text, as written: ``007`` stays ``"007"`` (not the item ``7``), ``1e20`` and ``7.0``
  stay text. Readers hand ids over as text (see :mod:`recops.data.sources`), so this rule,
  not a CSV parser's guess, decides. Floats with a fraction, or beyond 2**53, are an error.
* **Exact duplicate events** (same sequence, item, timestamp and event_type if present) are
  dropped, keeping the first; :func:`check_events` returns how many, ``validate_events`` puts
  the count in ``out.attrs["duplicates_dropped"]`` and logs it.
* **Timestamps parse, every one**: a column is epoch seconds when more of its values are
  numbers than dates, else dates (ISO strings, or a datetime column); the values that are not
  of the column's kind, nulls among them, are reported together (how many, where, and what).
* **Errors name rows as the file has them**: a CSV file's line (the header is line 1), else
  the row counted from 1 (a Parquet file, a table in memory), with the file of a glob; see
  :class:`RowOrigin`, which the readers of :mod:`recops.data.sources` attach to a table.
* **Timestamps in range**, when asked (``check_time_range=True``, the incoming-data path; base
  data sets such as MovieLens-100k from 1997 are not checked): from 2000-01-01 to a day after
  now. Epoch milliseconds (numbers past the year 2200 as seconds, in range as milliseconds)
  are reported as such, with the fix.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recops.errors import RecopsError

log = logging.getLogger(__name__)

SEQUENCE_COLUMNS = ("session_id", "user_id")
ID_COLUMNS = ("session_id", "user_id", "item_id")  # read as text; :func:`_normalise_ids` decides
OPTIONAL_COLUMNS = ("event_type", "category")  # kept, as text, where events have them
MAX_ROWS_SHOWN = 5

CANONICAL_INT = re.compile(r"0|-?[1-9][0-9]*")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_EXACT_FLOAT = 2**53  # every integer up to here is exactly a float64
HASH_MULTIPLIER = 1_000_003  # combines column hashes into a row's (duplicate candidates)

EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
LATEST_SECONDS_AHEAD = 86_400.0  # clocks drift; a day ahead is a wrong unit or a wrong clock
YEAR_2200 = datetime(2200, 1, 1, tzinfo=UTC).timestamp()

IdKind = Literal["int", "text"]
ROW_ORIGIN = "row_origin"  # the DataFrame.attrs key of a read table's RowOrigin


class DataValidationError(RecopsError):
    """The events do not meet the schema; the message names the column and the rows."""


@dataclass(frozen=True)
class ValidatedEvents:
    """The normalised events and what validation removed from them."""

    events: pd.DataFrame
    duplicates_dropped: int = 0


@dataclass(frozen=True)
class RowOrigin:
    """How an error names a row of a table: by the line of the CSV file it came from (the header
    is line 1; one line per row), else as a row counted from 1. ``files`` names each file of a
    table read from several (a glob) and its rows, in order. A reader attaches it to the table
    as ``frame.attrs[ROW_ORIGIN]``; a table without one is named by rows."""

    kind: Literal["csv", "rows"] = "rows"
    files: tuple[tuple[str, int], ...] = ()

    def name(self, position: int) -> str:
        """Row ``position`` (0-based, in the table) as a reader of the file would find it."""
        where = ""
        for file, rows in self.files:
            if position < rows:
                where = f"{file} "
                break
            position -= rows
        return f"{where}line {position + 2}" if self.kind == "csv" else f"{where}row {position + 1}"

    def note(self) -> str:
        return "file lines; the header is line 1" if self.kind == "csv" else "rows counted from 1"


def _origin(frame: pd.DataFrame) -> RowOrigin:
    origin = frame.attrs.get(ROW_ORIGIN)
    return origin if isinstance(origin, RowOrigin) else RowOrigin()


def _shown(value: object) -> str:
    return "null" if value is None or (not isinstance(value, str) and bool(pd.isna(value))) else repr(value)


def _rows(mask: np.ndarray | pd.Series, origin: RowOrigin, values: pd.Series | None = None) -> str:
    """``N row(s): line 6 'x', line 19 null (file lines; ...)``: how many rows, where the first
    few are and, given ``values``, what each holds."""
    positions = np.flatnonzero(np.asarray(mask))
    shown = positions[:MAX_ROWS_SHOWN].tolist()
    held = [] if values is None else values.iloc[shown].tolist()
    where = [
        f"{origin.name(p)} {_shown(held[i])}" if values is not None else origin.name(p)
        for i, p in enumerate(shown)
    ]
    more = f" and {len(positions) - MAX_ROWS_SHOWN} more" if len(positions) > MAX_ROWS_SHOWN else ""
    return f"{len(positions)} row(s): {', '.join(where)}{more} ({origin.note()})"


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _canonical_ints(text: pd.Series) -> pd.Series | None:
    """``text`` as int64 if every value is a canonical integer that fits int64, else None."""
    if isinstance(text.array, pd.arrays.ArrowStringArray):
        return _canonical_ints_in_arrow(text)
    if not text.str.fullmatch(CANONICAL_INT.pattern).all():
        return None
    long = text.str.len().to_numpy() >= 19  # 19+ characters may not fit; check those exactly
    if long.any() and not all(INT64_MIN <= int(v) <= INT64_MAX for v in pd.unique(text[long])):
        return None
    return text.astype("int64")


def _canonical_ints_in_arrow(text: pd.Series) -> pd.Series | None:
    """:func:`_canonical_ints` in Arrow, a chunk at a time, without a Python object per value: a
    value is canonical when it survives the round trip through int64 unchanged (``007``, ``-0``,
    ``+5`` and ``0x10`` come back changed; text beyond int64 does not cast)."""
    column = pa.array(text.array)  # zero-copy: an Array, or a ChunkedArray as the file was read
    ints = []
    for strings in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
        try:
            chunk = pc.cast(strings, pa.int64())
        except pa.ArrowInvalid:
            return None
        if not pc.all(pc.equal(pc.cast(chunk, strings.type), strings), skip_nulls=False).as_py():
            return None
        ints.append(chunk)
    values = pa.chunked_array(ints, pa.int64()).to_numpy()
    return pd.Series(values, index=text.index, name=text.name)


def _normalise_ids(
    values: pd.Series, column: str = "id", source: str = "events", origin: RowOrigin | None = None
) -> pd.Series:
    """Integer ids stay integers (so ``42`` in the data is ``42`` in an answer); others are text,
    as written (``007`` is not ``7``). See the module docstring for the rule."""
    origin = origin or RowOrigin()
    if pd.api.types.is_bool_dtype(values):
        return values.astype(str)
    if pd.api.types.is_integer_dtype(values):
        if pd.api.types.is_unsigned_integer_dtype(values) and len(values) and values.max() > INT64_MAX:
            bad = (values > INT64_MAX).to_numpy()
            raise DataValidationError(
                f"{source}: column {column!r} has ids beyond int64 in {_rows(bad, origin, values)}"
            )
        return values.astype("int64")
    if pd.api.types.is_float_dtype(values):
        numbers = values.to_numpy(dtype="float64")
        fraction = ~np.isfinite(numbers) | (np.mod(numbers, 1) != 0)
        if fraction.any():
            raise DataValidationError(
                f"{source}: column {column!r} has float ids that are not whole numbers in "
                f"{_rows(fraction, origin, values)}; ids must be integers or text"
            )
        inexact = np.abs(numbers) > MAX_EXACT_FLOAT
        if inexact.any():
            raise DataValidationError(
                f"{source}: column {column!r} has float ids beyond ±2**53 in "
                f"{_rows(inexact, origin, values)}; such floats are not exact integers. Store ids as "
                "integers or text"
            )
        return values.astype("int64")
    text = values.astype(str)
    ints = _canonical_ints(text)
    return text if ints is None else ints


def id_kind(values: pd.Series) -> IdKind:
    """``int`` for an int64 id column (as :func:`validate_events` makes them), else ``text``."""
    return "int" if pd.api.types.is_integer_dtype(values) else "text"


def _parse_timestamps(values: pd.Series, source: str, origin: RowOrigin) -> tuple[pd.Series, bool]:
    """Seconds since the epoch, and whether the column is numbers (not dates).

    A text column is numbers when more of its values are numbers than dates, else dates (parsed
    whole, as before: ``2024`` in a date column is a year). Every value that is not of the
    column's kind, null, or not finite is reported, all in one error, by row and value."""
    if pd.api.types.is_bool_dtype(values):
        raise DataValidationError(f"{source}: column 'timestamp' is boolean; expected numbers or dates")
    values = values.reset_index(drop=True)  # by position: a frame's index may repeat labels
    numeric, expected = True, "epoch seconds"
    if pd.api.types.is_numeric_dtype(values):
        seconds = values.astype("float64")
    elif pd.api.types.is_datetime64_any_dtype(values):
        seconds, numeric, expected = _datetime_seconds(values), False, "dates"
    else:
        as_numbers = pd.to_numeric(values, errors="coerce")
        numbers = int(as_numbers.notna().sum())
        if numbers == len(values):
            seconds = as_numbers.astype("float64")
        else:
            others = values[as_numbers.isna().to_numpy() & values.notna().to_numpy()]
            dates = pd.to_datetime(others, errors="coerce", utc=True, format="mixed")
            if numbers > int(dates.notna().sum()):
                seconds = as_numbers.astype("float64")
                expected = "epoch seconds, as the column's other values"
            else:
                parsed = dates if numbers == 0 else _to_datetime(values)
                seconds, numeric = _datetime_seconds(parsed.reindex(values.index)), False
                expected = "ISO dates, as the column's other values"
    bad = ~np.isfinite(seconds.to_numpy())
    if bad.any():
        raise DataValidationError(
            f"{source}: column 'timestamp' has unparsable, missing or infinite values in "
            f"{_rows(bad, origin, values)}; expected {expected}"
        )
    return seconds, numeric


def _to_datetime(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, errors="coerce", utc=True, format="mixed")


def _datetime_seconds(values: pd.Series) -> pd.Series:
    if values.dt.tz is None:
        values = values.dt.tz_localize("UTC")
    epoch = pd.Timestamp(0, tz="UTC")
    return ((values - epoch) / pd.Timedelta(seconds=1)).astype("float64")


def _check_time_range(
    seconds: pd.Series, raw: pd.Series, numeric: bool, source: str, now: float | None, origin: RowOrigin
) -> None:
    """Timestamps from 2000-01-01 to a day after ``now``; epoch milliseconds named as such."""
    values = seconds.to_numpy()
    latest = (time.time() if now is None else now) + LATEST_SECONDS_AHEAD
    if numeric:
        millis = (values > YEAR_2200) & (values / 1000 >= EARLIEST_TIMESTAMP) & (values / 1000 <= latest)
        if millis.any():
            first = float(values[np.flatnonzero(millis)[0]])
            raise DataValidationError(
                f"{source}: column 'timestamp' looks like epoch milliseconds in "
                f"{_rows(millis, origin, raw)} (as seconds after the year 2200; as milliseconds "
                f"{_utc(first / 1000)}); timestamps must be epoch seconds: divide the column by 1000"
            )
    early = values < EARLIEST_TIMESTAMP
    if early.any():
        raise DataValidationError(
            f"{source}: column 'timestamp' has values before 2000-01-01 in {_rows(early, origin, raw)}; "
            "expected epoch seconds or ISO dates (negative or pre-2000 "
            "timestamps are a wrong unit or a missing value)"
        )
    late = values > latest
    if late.any():
        raise DataValidationError(
            f"{source}: column 'timestamp' has values more than a day in the future (after "
            f"{_utc(latest)}) in {_rows(late, origin, raw)}; expected epoch seconds "
            "or ISO dates of events that happened"
        )


def _duplicated(events: pd.DataFrame) -> np.ndarray:
    """``events.duplicated(keep="first")``, compared in full only among rows whose 64-bit hash
    repeats: equal rows hash alike, so the answer is the same, and at 10M rows a sort of the
    hashes settles nearly every row (2 s, where pandas takes 10)."""
    if not all(isinstance(d, pd.StringDtype) or d.kind in "iuf" for d in events.dtypes):
        return events.duplicated(keep="first").to_numpy()
    hashed = np.zeros(len(events), dtype=np.uint64)
    for _, column in events.items():
        # text by its codes (a null is -1); hash_array gives 0.0 and -0.0, and every NaN, one hash
        values = pd.factorize(column)[0] if isinstance(column.dtype, pd.StringDtype) else column.to_numpy()
        hashed = hashed * np.uint64(HASH_MULTIPLIER) + pd.util.hash_array(values)
    ordered = np.sort(hashed)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    candidates = np.flatnonzero(np.isin(hashed, repeated))
    duplicated = np.zeros(len(events), dtype=bool)
    duplicated[candidates] = events.iloc[candidates].duplicated(keep="first").to_numpy()
    return duplicated


def check_events(
    frame: pd.DataFrame,
    source: str = "events",
    *,
    check_time_range: bool = False,
    now: float | None = None,
) -> ValidatedEvents:
    """Check ``frame`` against the event schema: the normalised events and the duplicates dropped.

    ``source`` names where the data came from, for the error message. ``check_time_range``
    (for incoming events) rejects timestamps before 2000-01-01 or more than a day after ``now``
    (epoch seconds; default the clock) and reports epoch milliseconds as such. Raises
    :class:`DataValidationError` naming the column and the rows.
    """
    if frame is None or len(frame) == 0:
        raise DataValidationError(f"{source}: no events (the table is empty)")
    columns = [str(c) for c in frame.columns]
    for required in ("item_id", "timestamp"):
        if required not in columns:
            raise DataValidationError(
                f"{source}: missing column {required!r} (found: {', '.join(columns)}); "
                "events need item_id, timestamp and session_id or user_id"
            )
    sequence_column = next((c for c in SEQUENCE_COLUMNS if c in columns), None)
    if sequence_column is None:
        raise DataValidationError(
            f"{source}: missing column 'session_id' or 'user_id' (found: {', '.join(columns)})"
        )
    origin = _origin(frame)
    for column in ("item_id", sequence_column):  # a null timestamp is reported with the other bad ones
        nulls = frame[column].isna().to_numpy()
        if nulls.any():
            raise DataValidationError(
                f"{source}: column {column!r} has null values in {_rows(nulls, origin)}"
            )

    seconds, numeric = _parse_timestamps(frame["timestamp"], source, origin)
    if check_time_range:
        _check_time_range(seconds, frame["timestamp"], numeric, source, now, origin)
    # Series, not .to_numpy(): text stays in Arrow rather than becoming a Python str per row, and
    # a column that needed no change shares the input's memory (copy-on-write) instead of a copy
    rows = pd.RangeIndex(len(frame))
    out = pd.DataFrame(
        {
            "sequence_id": _normalise_ids(frame[sequence_column], sequence_column, source, origin).set_axis(
                rows
            ),
            "item_id": _normalise_ids(frame["item_id"], "item_id", source, origin).set_axis(rows),
            "timestamp": seconds.set_axis(rows),
        },
        copy=False,
    )
    if "event_type" in columns:
        out["event_type"] = frame["event_type"].astype(str).set_axis(rows)
    if "category" in columns:  # the item's category, where events carry one (trending by category)
        out["category"] = frame["category"].astype(str).set_axis(rows)
    duplicated = _duplicated(out)
    dropped = int(duplicated.sum())
    if dropped:
        log.info("%s: dropped %d exact duplicate event(s) (%s)", source, dropped, _rows(duplicated, origin))
        out = out[~duplicated].reset_index(drop=True)
    return ValidatedEvents(out, dropped)


def validate_events(
    frame: pd.DataFrame,
    source: str = "events",
    *,
    check_time_range: bool = False,
    now: float | None = None,
) -> pd.DataFrame:
    """Check ``frame`` against the event schema and return the normalised events.

    ``source`` names where the data came from, for the error message; ``check_time_range`` and
    ``now`` as in :func:`check_events`. Exact duplicate events are dropped; their number is in
    ``out.attrs["duplicates_dropped"]`` (pandas may not carry ``attrs`` through later
    operations: read it here, or call :func:`check_events`).
    """
    checked = check_events(frame, source, check_time_range=check_time_range, now=now)
    out = checked.events
    out.attrs["duplicates_dropped"] = checked.duplicates_dropped
    return out


# The id columns of validated events whose kind (integer or text) must agree across sources.
KEY_ID_COLUMNS = ("sequence_id", "item_id")


def match_id_kinds(events: pd.DataFrame, base: pd.DataFrame, source: str) -> pd.DataFrame:
    """``events`` with the base's id kinds: integer ids on a text base become text (lossless);
    text ids on an integer base are a :class:`DataValidationError` (never converted)."""
    out = events
    for column in KEY_ID_COLUMNS:
        want, have = id_kind(base[column]), id_kind(events[column])
        if want == have:
            continue
        if want == "text":
            out = out.assign(**{column: events[column].astype(str)})
            continue
        sample = ", ".join(repr(v) for v in pd.unique(events[column])[:3])
        raise DataValidationError(
            f"{source}: column {column!r} holds text ids (e.g. {sample}) but the base data's ids "
            'are integers; ids are not converted ("007" is not 7). Write the ids as the base '
            "does (canonical integers, no leading zeros, no decimal point)"
        )
    return out
