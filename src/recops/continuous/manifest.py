"""What the incoming files have already given: the manifest (``incoming/manifest.json``) of
consumed files and the snapshot that holds the base plus all of them
(``snapshots/<fingerprint>.parquet``), both in the store (:mod:`recops.store`). See
:mod:`recops.continuous.inputs` for how a cycle uses them and why a crash between the two
writes loses nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from recops.config import Config
from recops.data import validate_events
from recops.data.sources import read_raw_events
from recops.errors import RecopsError
from recops.store import Store, StoreConflictError, as_store, open_store

MANIFEST_NAME = "manifest.json"
INCOMING = "incoming"
SNAPSHOTS = "snapshots"

MANIFEST_VERSION = 1


class InputsError(RecopsError):
    """The incoming folder's state cannot be used as it is; the message says what to do."""


def incoming_store(config: Config | None = None) -> Store:
    """``<store>/incoming``: where producers drop event files."""
    return open_store(config).child(INCOMING)


def manifest_url(incoming: Store | str | Path) -> str:
    return as_store(incoming).url(MANIFEST_NAME)


@dataclass(frozen=True)
class ConsumedFile:
    """A manifest entry: an incoming file whose events are in the snapshot."""

    name: str
    sha256: str
    rows: int  # events in the file, once validated (its own exact duplicates dropped)
    added: int  # of those, events not already held (exact duplicates of earlier events dropped)
    size: int
    mtime_ns: int  # local mtime; on S3 LastModified in ns (recops.store.Entry.modified_ns)
    snapshot: str  # fingerprint of the snapshot it first went into
    consumed_at: str  # UTC, ISO 8601


@dataclass(frozen=True)
class Manifest:
    """``incoming/manifest.json``: the snapshot holding base + consumed files, and the files."""

    dataset: str
    base: str  # identity of the base data (spec, settings, file stat): a change means rebuild
    snapshot: str  # the snapshot's URL: a local path, or s3://.../snapshots/<fp>.parquet
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


def read_manifest_stamped(incoming: Store | str | Path) -> tuple[Manifest | None, str]:
    """The manifest (None if there is none) and the stamp of what was read ("" if none), for
    :func:`write_manifest`'s compare-and-set."""
    incoming = as_store(incoming)
    try:
        data, stamp = incoming.read_stamped(MANIFEST_NAME)
    except FileNotFoundError:
        return None, ""
    try:
        return Manifest.from_json(data.decode()), stamp
    except (ValueError, TypeError, KeyError) as exc:
        raise InputsError(
            f"{incoming.url(MANIFEST_NAME)} is unreadable ({exc}); restore it, or delete it to "
            "rebuild the events from the base and every file in the incoming folder"
        ) from exc


def read_manifest(incoming: Store | str | Path) -> Manifest | None:
    return read_manifest_stamped(incoming)[0]


def write_manifest(incoming: Store, manifest: Manifest, stamp: str) -> None:
    """Replace the manifest, only if it is still the one read with ``stamp`` ("": only if there
    is none); else :class:`InputsError` (another cycle committed first: gather again)."""
    try:
        incoming.write_text(MANIFEST_NAME, manifest.to_json(), if_absent=not stamp, if_match=stamp or None)
    except StoreConflictError as exc:
        raise InputsError(
            f"{incoming.url(MANIFEST_NAME)} changed since these inputs were gathered (another "
            "cycle committed?); gather the inputs again"
        ) from exc


def snapshot_exists(url: str) -> bool:
    store, key = Store.of(url)
    return store.exists(key)


def read_snapshot(url: str) -> pd.DataFrame:
    spec = f"parquet:{url}"
    return validate_events(read_raw_events(spec), source=f"snapshot {url}")


def _snapshot_key(fingerprint: str) -> str:
    return fingerprint.split(":")[-1][:16]


def snapshot(events: pd.DataFrame, fingerprint: str, snapshots: Store) -> str:
    """Write the combined events once per fingerprint (whole, only where absent); return its URL.

    An existing object of that name holds the same events (the name is their fingerprint): a
    snapshot written by a cycle that crashed before its manifest, reused as it is."""
    key = f"{_snapshot_key(fingerprint)}.parquet"
    if not snapshots.exists(key):
        buffer = io.BytesIO()
        events.rename(columns={"sequence_id": "session_id"}).to_parquet(buffer, index=False)
        with contextlib.suppress(StoreConflictError):  # written meanwhile, with the same events
            snapshots.write_bytes(key, buffer.getvalue(), if_absent=True)
    return snapshots.url(key)


def prune_snapshots(
    keep: set[str], *, store: Store | None = None, incoming: Store | str | Path | None = None
) -> list[str]:
    """Delete the snapshots (``<store>/snapshots``, default :func:`recops.store.open_store`)
    whose fingerprint is not in ``keep`` (full fingerprints, or the 16-character names); return
    the deleted URLs. The snapshot the manifest of ``incoming`` (default ``<store>/incoming``)
    starts from is always kept: the next cycle reads it."""
    store = store or open_store()
    stems = {_snapshot_key(k) for k in keep}
    manifest = read_manifest(incoming if incoming is not None else store.child(INCOMING))
    if manifest is not None and manifest.snapshot:
        stems.add(manifest.snapshot.rpartition("/")[2].removesuffix(".parquet"))
    snapshots, deleted = store.child(SNAPSHOTS), []
    for entry in snapshots.list(suffixes=(".parquet",)):
        if entry.key.removesuffix(".parquet") not in stems:
            snapshots.delete(entry.key)
            deleted.append(snapshots.url(entry.key))
    return deleted
