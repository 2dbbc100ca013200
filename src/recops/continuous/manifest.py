"""What the incoming folder has already given: the manifest (``<incoming>/manifest.json``) of
consumed files and the snapshot that holds the base plus all of them
(``$RECOPS_HOME/snapshots/<fingerprint>.parquet``). See :mod:`recops.continuous.inputs` for
how a cycle uses them and why a crash between the two writes loses nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from recops.data import validate_events
from recops.data.sources import read_table
from recops.errors import RecopsError
from recops.paths import atomic_path, recops_home

MANIFEST_NAME = "manifest.json"


MANIFEST_VERSION = 1


class InputsError(RecopsError):
    """The incoming folder's state cannot be used as it is; the message says what to do."""


def incoming_dir() -> Path:
    return recops_home() / "incoming"


def snapshots_dir() -> Path:
    return recops_home() / "snapshots"


def manifest_path(incoming: Path) -> Path:
    return Path(incoming) / MANIFEST_NAME


@dataclass(frozen=True)
class ConsumedFile:
    """A manifest entry: an incoming file whose events are in the snapshot."""

    name: str
    sha256: str
    rows: int  # events in the file, once validated (its own exact duplicates dropped)
    added: int  # of those, events not already held (exact duplicates of earlier events dropped)
    size: int
    mtime_ns: int
    snapshot: str  # fingerprint of the snapshot it first went into
    consumed_at: str  # UTC, ISO 8601


@dataclass(frozen=True)
class Manifest:
    """``<incoming>/manifest.json``: the snapshot holding base + consumed files, and the files."""

    dataset: str
    base: str  # identity of the base data (spec, settings, file stat): a change means rebuild
    snapshot: str  # the snapshot parquet file
    fingerprint: str
    n_events: int
    files: tuple[ConsumedFile, ...] = ()

    def to_json(self) -> str:
        data = asdict(self)
        data["files"] = [asdict(f) for f in self.files]
        return json.dumps({"version": MANIFEST_VERSION, **data}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        if data.pop("version", None) != MANIFEST_VERSION:
            raise ValueError(f"not a version {MANIFEST_VERSION} manifest")
        files = tuple(ConsumedFile(**f) for f in data.pop("files"))
        return cls(**data, files=files)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_manifest(incoming: Path) -> Manifest | None:
    path = manifest_path(incoming)
    if not path.is_file():
        return None
    try:
        return Manifest.from_json(path.read_text())
    except (ValueError, TypeError, KeyError) as exc:
        raise InputsError(
            f"{path} is unreadable ({exc}); restore it, or delete it to rebuild the events from the "
            "base and every file in the incoming folder"
        ) from exc


def read_snapshot(path: Path) -> pd.DataFrame:
    return validate_events(read_table("parquet", path, f"parquet:{path}"), source=f"snapshot {path}")


def snapshot_path(fingerprint: str) -> Path:
    return snapshots_dir() / f"{_snapshot_key(fingerprint)}.parquet"


def _snapshot_key(fingerprint: str) -> str:
    return fingerprint.split(":")[-1][:16]


def snapshot(events: pd.DataFrame, fingerprint: str) -> Path:
    """Write the combined events once per fingerprint (atomically); return the file."""
    path = snapshot_path(fingerprint)
    if not path.is_file():
        with atomic_path(path) as tmp:
            events.rename(columns={"sequence_id": "session_id"}).to_parquet(tmp, index=False)
    return path


def prune_snapshots(keep: set[str], *, incoming: Path | None = None) -> list[Path]:
    """Delete the snapshots whose fingerprint is not in ``keep`` (full fingerprints, or the
    16-character file stems); return the deleted files. The snapshot the manifest of
    ``incoming`` (default :func:`incoming_dir`) starts from is always kept: the next cycle
    reads it."""
    stems = {_snapshot_key(k) for k in keep}
    manifest = read_manifest(incoming if incoming is not None else incoming_dir())
    if manifest is not None and manifest.snapshot:
        stems.add(Path(manifest.snapshot).stem)
    deleted = []
    for path in sorted(snapshots_dir().glob("*.parquet")):
        if path.stem not in stems:
            path.unlink(missing_ok=True)
            deleted.append(path)
    return deleted
