"""``--dataset`` specifications: ``synthetic`` (default), ``ml-100k``, ``csv:PATH``, ``parquet:PATH``.

CSV id columns (``session_id``, ``user_id``, ``item_id``) are read as text, so ``007`` reaches
:func:`recops.data.schema.validate_events` as written and its id rule decides what is an
integer. An empty cell, and pandas' usual null markers (``NA``, ``null``, ``NaN``...), are
nulls there too: validation then rejects the file loudly, rather than turning a logger's
``null`` into one giant session. An id that really is ``NA`` needs a Parquet file.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from recops.config import DataConfig
from recops.data.movielens import load_ml100k
from recops.data.schema import ID_COLUMNS, DataValidationError, validate_events
from recops.data.synthetic import generate_sessions
from recops.paths import data_cache_dir

DATASET_HELP = (
    "synthetic (built-in sessions), ml-100k (MovieLens-100k; ml-100k:recbole takes RecBole's "
    "wheel copy, ml-100k:PATH a local u.data/.inter/.zip), csv:PATH or parquet:PATH"
)


def read_table(kind: str, source: Path | bytes, spec: str) -> pd.DataFrame:
    """A CSV or Parquet table from a file or its bytes, ids as text (CSV); errors name ``spec``."""
    if isinstance(source, Path) and not source.is_file():
        raise DataValidationError(f"{spec}: file not found")
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        if kind == "csv":
            return pd.read_csv(handle, dtype=dict.fromkeys(ID_COLUMNS, str))
        return pd.read_parquet(handle)
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        raise DataValidationError(f"{spec}: cannot read as {kind}: {exc}") from exc


def read_raw_events(spec: str, data: DataConfig | None = None) -> pd.DataFrame:
    """Read the events named by ``spec`` without validating them."""
    data = data or DataConfig()
    kind, _, arg = spec.partition(":")
    if kind == "synthetic" and not arg:
        return generate_sessions(data.synthetic)
    if kind == "ml-100k":
        return load_ml100k(data_cache_dir() / "ml-100k", source=arg or "auto")
    if kind in ("csv", "parquet") and arg:
        return read_table(kind, Path(arg), spec)
    raise DataValidationError(f"unknown dataset {spec!r}; expected {DATASET_HELP}")


def load_events(spec: str, data: DataConfig | None = None) -> pd.DataFrame:
    """Read and validate the events named by ``spec``; raises DataValidationError on bad data."""
    return validate_events(read_raw_events(spec, data), source=spec)
