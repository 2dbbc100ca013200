"""Incoming data: the base dataset plus every ``*.csv``/``*.parquet`` file in the incoming
folder (``$RECOPS_HOME/incoming``), in name order, validated file by file. When files were added
the combined events are written once to ``$RECOPS_HOME/snapshots/<fingerprint>.parquet``; the
training flow reads that snapshot, so what was trained on can be read back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recops.config import Config
from recops.data import load_events, read_raw_events, validate_events
from recops.paths import atomic_path, recops_home

INCOMING_SUFFIXES = (".csv", ".parquet")


def incoming_dir() -> Path:
    return recops_home() / "incoming"


def snapshots_dir() -> Path:
    return recops_home() / "snapshots"


@dataclass(frozen=True)
class DataSnapshot:
    spec: str  # what the training flow reads: the base dataset, or a snapshot parquet:PATH
    fingerprint: str
    n_events: int
    sources: list[str]  # the base dataset and each incoming file, in order


def incoming_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.suffix in INCOMING_SUFFIXES and p.is_file())


def read_incoming(path: Path) -> pd.DataFrame:
    """One incoming file, validated; errors name the file (and the rows)."""
    spec = f"{path.suffix.lstrip('.')}:{path}"
    return validate_events(read_raw_events(spec), source=f"incoming file {path}")


def current_events(dataset: str, incoming: Path, config: Config) -> tuple[pd.DataFrame, list[str]]:
    """The base events plus every incoming file, validated, and the list of their sources."""
    frames, sources = [load_events(dataset, config.data)], [dataset]
    for path in incoming_files(incoming):
        frames.append(read_incoming(path))
        sources.append(str(path))
    events = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return events, sources


def snapshot(events: pd.DataFrame, fingerprint: str) -> Path:
    """Write the combined events once per fingerprint (atomically); return the file."""
    path = snapshots_dir() / f"{fingerprint.split(':')[-1][:16]}.parquet"
    if not path.is_file():
        with atomic_path(path) as tmp:
            events.rename(columns={"sequence_id": "session_id"}).to_parquet(tmp, index=False)
    return path
