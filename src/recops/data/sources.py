"""``--dataset`` specifications: ``synthetic`` (default), ``ml-100k``, ``csv:PATH``, ``parquet:PATH``.

``PATH`` is a local file, an ``s3://bucket/key`` (read through fsspec/s3fs, credentials and
endpoint from the usual AWS settings), or a glob of either (``parquet:s3://b/p/*.parquet``,
``csv:data/*.csv``): the matching files are read in name order and concatenated. Errors name
the spec (and, for a glob, the file).

Files are read column-wise with pyarrow (:mod:`recops.data.columnar`), only the columns
validation uses. CSV id columns (``session_id``, ``user_id``, ``item_id``) are read as text, so
``007`` reaches :func:`recops.data.schema.validate_events` as written and its id rule decides
what is an integer. An empty cell, and pandas' usual null markers (``NA``, ``null``,
``NaN``...), are nulls there too: validation then rejects the file loudly, rather than turning
a logger's ``null`` into one giant session. An id that really is ``NA`` needs a Parquet file.
A CSV row with more or fewer fields than the header is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from recops.config import DataConfig
from recops.data import columnar
from recops.data.movielens import load_ml100k
from recops.data.schema import ROW_ORIGIN, DataValidationError, RowOrigin, validate_events
from recops.data.synthetic import generate_sessions
from recops.paths import data_cache_dir
from recops.store import filesystem

DATASET_HELP = (
    "synthetic (built-in sessions), ml-100k (MovieLens-100k; ml-100k:recbole takes RecBole's "
    "wheel copy, ml-100k:PATH a local u.data/.inter/.zip), csv:PATH or parquet:PATH (a file, "
    "s3://bucket/key, or a glob of either: parquet:s3://bucket/prefix/*.parquet)"
)


GLOB_CHARACTERS = "*?["


def read_table(kind: str, source: Path | bytes, spec: str) -> pd.DataFrame:
    """The event columns of a CSV or Parquet table, from a file or its bytes, ids as text (CSV);
    errors name ``spec``, and validation names a row by its CSV line (``attrs[ROW_ORIGIN]``).
    See :mod:`recops.data.columnar`."""
    if isinstance(source, Path) and not source.is_file():
        raise DataValidationError(f"{spec}: file not found")
    try:
        frame = columnar.read_csv(source) if kind == "csv" else columnar.read_parquet(source)
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        raise DataValidationError(f"{spec}: cannot read as {kind}: {exc}") from exc
    frame.attrs[ROW_ORIGIN] = RowOrigin("csv" if kind == "csv" else "rows")
    return frame


def is_glob(location: str) -> bool:
    return any(c in location for c in GLOB_CHARACTERS)


def matching_files(location: str) -> list[tuple[str, dict[str, Any]]]:
    """The files a location names (one file, or a glob's matches in name order) with their
    fsspec info (size, and mtime or ETag); an empty list when none exists."""
    return _matching(location)[1]


def _matching(location: str) -> tuple[Any, list[tuple[str, dict[str, Any]]]]:
    fs, path = filesystem(location)
    if is_glob(location):
        found = fs.glob(path, detail=True)  # one listing, with each file's info
    else:
        try:
            found = {path: fs.info(path)}
        except FileNotFoundError:
            found = {}
    remote = "://" in location
    files = [
        (fs.unstrip_protocol(name) if remote else name, info)
        for name, info in sorted(found.items())
        if info.get("type") == "file"
    ]
    return fs, files


def _read_files(kind: str, location: str, spec: str) -> pd.DataFrame:
    if "://" not in location and not is_glob(location):
        return read_table(kind, Path(location), spec)
    glob, (fs, files) = is_glob(location), _matching(location)
    if not files:
        raise DataValidationError(f"{spec}: {'no file matches' if glob else 'file not found'}")
    frames = []
    for name, _info in files:
        label = f"{spec}: {name}" if glob else spec
        try:
            content = fs.cat_file(name)
        except FileNotFoundError as exc:  # deleted since the listing
            raise DataValidationError(f"{label}: file not found") from exc
        frames.append(read_table(kind, content, label))
    if len(frames) == 1:
        return frames[0]
    frame = pd.concat(frames, ignore_index=True)
    rows = tuple((name, len(part)) for (name, _info), part in zip(files, frames, strict=True))
    frame.attrs[ROW_ORIGIN] = RowOrigin("csv" if kind == "csv" else "rows", rows)  # an error names the file
    return frame


def read_raw_events(spec: str, data: DataConfig | None = None) -> pd.DataFrame:
    """Read the events named by ``spec`` without validating them."""
    data = data or DataConfig()
    kind, _, arg = spec.partition(":")
    if kind == "synthetic" and not arg:
        return generate_sessions(data.synthetic)
    if kind == "ml-100k":
        return load_ml100k(data_cache_dir() / "ml-100k", source=arg or "auto")
    if kind in ("csv", "parquet") and arg:
        return _read_files(kind, arg, spec)
    raise DataValidationError(f"unknown dataset {spec!r}; expected {DATASET_HELP}")


def load_events(spec: str, data: DataConfig | None = None) -> pd.DataFrame:
    """Read and validate the events named by ``spec``; raises DataValidationError on bad data."""
    return validate_events(read_raw_events(spec, data), source=spec)
