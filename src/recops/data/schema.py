"""The event schema and its validation: nothing downstream runs on invalid data.

An event table has ``item_id``, ``timestamp`` and one of ``session_id`` / ``user_id``
(optional ``event_type``). :func:`validate_events` returns a normalised frame with columns
``sequence_id``, ``item_id``, ``timestamp`` (float seconds) and, if present, ``event_type``,
in the original row order (ties in time keep file order).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recops.errors import RecopsError

SEQUENCE_COLUMNS = ("session_id", "user_id")
MAX_ROWS_SHOWN = 5


class DataValidationError(RecopsError):
    """The events do not meet the schema; the message names the column and the rows."""


def _rows(mask: np.ndarray | pd.Series) -> str:
    positions = np.flatnonzero(np.asarray(mask))
    shown = ", ".join(str(p) for p in positions[:MAX_ROWS_SHOWN])
    more = f" and {len(positions) - MAX_ROWS_SHOWN} more" if len(positions) > MAX_ROWS_SHOWN else ""
    return f"{len(positions)} row(s), first at row {shown}{more} (0-based, in file order)"


def _examples(values: pd.Series, mask: np.ndarray) -> str:
    sample = values[np.asarray(mask)].head(3).tolist()
    return ", ".join(repr(v) for v in sample)


def _normalise_ids(values: pd.Series) -> pd.Series:
    """Integer ids stay integers (so ``42`` in the data is ``42`` in an answer); others are text."""
    if pd.api.types.is_integer_dtype(values):
        return values.astype("int64")
    if pd.api.types.is_float_dtype(values) and np.all(np.mod(values.to_numpy(), 1) == 0):
        return values.astype("int64")
    return values.astype(str)


def _parse_timestamps(values: pd.Series, source: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        raise DataValidationError(f"{source}: column 'timestamp' is boolean; expected numbers or dates")
    if pd.api.types.is_numeric_dtype(values):
        seconds = values.astype("float64")
    elif pd.api.types.is_datetime64_any_dtype(values):
        seconds = _datetime_seconds(values)
    else:
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().all():
            seconds = numeric.astype("float64")
        else:
            parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
            bad = parsed.isna().to_numpy()
            if bad.any():
                raise DataValidationError(
                    f"{source}: column 'timestamp' has unparsable values in {_rows(bad)}: "
                    f"{_examples(values, bad)}; expected numbers (epoch seconds) or ISO dates"
                )
            seconds = _datetime_seconds(parsed)
    bad = ~np.isfinite(seconds.to_numpy())
    if bad.any():
        raise DataValidationError(f"{source}: column 'timestamp' has non-finite values in {_rows(bad)}")
    return seconds


def _datetime_seconds(values: pd.Series) -> pd.Series:
    if values.dt.tz is None:
        values = values.dt.tz_localize("UTC")
    epoch = pd.Timestamp(0, tz="UTC")
    return ((values - epoch) / pd.Timedelta(seconds=1)).astype("float64")


def validate_events(frame: pd.DataFrame, source: str = "events") -> pd.DataFrame:
    """Check ``frame`` against the event schema and return the normalised events.

    ``source`` names where the data came from, for the error message.
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
    for column in ("item_id", "timestamp", sequence_column):
        nulls = frame[column].isna().to_numpy()
        if nulls.any():
            raise DataValidationError(f"{source}: column {column!r} has null values in {_rows(nulls)}")

    out = pd.DataFrame(
        {
            "sequence_id": _normalise_ids(frame[sequence_column]).to_numpy(),
            "item_id": _normalise_ids(frame["item_id"]).to_numpy(),
            "timestamp": _parse_timestamps(frame["timestamp"], source).to_numpy(),
        }
    )
    if "event_type" in columns:
        out["event_type"] = frame["event_type"].astype(str).to_numpy()
    return out
