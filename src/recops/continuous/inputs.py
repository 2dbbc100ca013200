"""Incoming data: the base dataset plus the ``*.csv``/``*.parquet`` files dropped into the
incoming folder (``$RECOPS_HOME/incoming`` by default), read once each.

:func:`gather_inputs` is one cycle's data:

* **Manifest (watermark).** ``<incoming>/manifest.json`` records the snapshot that holds the
  base plus every consumed file (``$RECOPS_HOME/snapshots/<fingerprint>.parquet``) and, per
  consumed file, its name, sha256, rows, the events it added, size, mtime and the snapshot it
  went into. A cycle reads that snapshot plus only the files not in the manifest; with no new
  file it reads the snapshot alone. New files are read in name order; a file's name is its
  identity, so never reuse one (writers should write ``x.tmp`` and rename it to ``x.csv``).
* **Each new file is validated** (the event schema with the timestamp range check, see
  :mod:`recops.data.schema`) and must have the base's id kinds: a file with text ids on an
  integer-id base is refused, never converted (``"007"`` is not the item ``7``). Integer ids
  on a text-id base are converted to text, which is lossless (``7`` is written ``"7"``).
* **Quarantine.** A file that fails is moved to ``<incoming>/quarantine/<name>`` with
  ``<name>.reason.txt`` beside it (the error and the UTC time), and the cycle goes on with the
  others; :attr:`Inputs.quarantined` lists them so the caller can alert. The reason is written
  first (temporary file, ``os.replace``), then the file is moved (``os.replace``): a crash in
  between leaves a reason file and the data still in incoming, which the next cycle handles
  again. A consumed file whose content changed (its size or mtime moved and its sha256 differs)
  is quarantined too: its first version is already in the snapshot; new events go in a new file.
* **Exact duplicates** (within a file, or of events already held) are dropped and counted.

When there are new files, :func:`gather_inputs` writes the combined events as a new snapshot
(atomically, once per fingerprint) and :func:`commit_manifest` records them as consumed; the
flow calls it once the snapshot is safely written (it is, when ``gather_inputs`` returns).

**Crash safety.** The manifest names the snapshot a cycle starts from, and is replaced
atomically; nothing else moves the watermark. If the process dies after the snapshot is written
but before the manifest is, the old manifest still names the old snapshot and lists none of the
new files, so the next cycle reads the old snapshot plus the same files again: the same events,
the same fingerprint, the same snapshot file (reused). No event is lost or counted twice; the
unrecorded snapshot is simply the one used. If the base changes (another ``--dataset``, other
synthetic settings, a changed ``csv:``/``parquet:`` base file) or the manifest's snapshot is
missing or altered, the events are rebuilt from the base and every file in incoming; a consumed
file that is no longer there then stops the cycle with an :class:`InputsError` (its events
would be lost) rather than silently dropping it.

:func:`current_events` (everything, every time, the first bad file failing the cycle) is kept
for callers not yet on :func:`gather_inputs`; :func:`prune_snapshots` deletes old snapshots.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from recops.config import Config
from recops.continuous.manifest import (
    ConsumedFile,
    InputsError,
    Manifest,
    incoming_dir,
    manifest_path,
    read_manifest,
    read_snapshot,
    sha256_hex,
    snapshot,
)
from recops.continuous.quarantine import Quarantined, quarantine, utc_now_iso
from recops.data import DataValidationError, load_events, read_raw_events, validate_events
from recops.data.interactions import fingerprint_events
from recops.data.schema import check_events, id_kind
from recops.data.sources import read_table
from recops.paths import atomic_path

log = logging.getLogger(__name__)


INCOMING_SUFFIXES = (".csv", ".parquet")


ID_COLUMNS = ("sequence_id", "item_id")


@dataclass(frozen=True)
class DataSnapshot:
    spec: str  # what the training flow reads: the base dataset, or a snapshot parquet:PATH
    fingerprint: str
    n_events: int
    sources: list[str]  # the base dataset and each incoming file, in order


@dataclass(frozen=True, eq=False)
class Inputs:
    """One cycle's data: everything to train on, what is new, and what was refused."""

    events: pd.DataFrame  # everything to train on (base + all consumed and new files), validated
    new_events: pd.DataFrame  # only the files new in this call (for drift); empty if none
    snapshot: DataSnapshot  # what the training flow reads, with its fingerprint and sources
    new_files: list[str]  # the files read for the first time, in order
    quarantined: list[Quarantined] = field(default_factory=list)
    duplicates_dropped: int = 0  # exact duplicates dropped from the new files
    rebuilt: str = ""  # why the events were rebuilt from the base and every file ("" if not)
    incoming: Path = field(default_factory=incoming_dir)
    manifest: Manifest | None = None  # what commit_manifest writes (None: nothing to record)
    manifest_sha256: str = ""  # of the manifest file as gathered ("" if none): no lost updates


def incoming_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).glob("*") if p.suffix in INCOMING_SUFFIXES and p.is_file())


def _read_bytes(path: Path) -> bytes:
    """Every read of an incoming file's content goes through here (one read per new file)."""
    return path.read_bytes()


def read_incoming(path: Path, *, now: float | None = None) -> pd.DataFrame:
    """One incoming file, validated (timestamps range-checked); errors name the file and rows."""
    spec = f"{path.suffix.lstrip('.')}:{path}"
    return validate_events(
        read_raw_events(spec), source=f"incoming file {path}", check_time_range=True, now=now
    )


def match_id_kinds(events: pd.DataFrame, base: pd.DataFrame, source: str) -> pd.DataFrame:
    """``events`` with the base's id kinds: integer ids on a text base become text (lossless);
    text ids on an integer base are a :class:`DataValidationError` (never converted)."""
    out = events
    for column in ID_COLUMNS:
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


def _base_identity(dataset: str, config: Config) -> str:
    """What the base data depends on: its spec, the synthetic settings, a base file's stat."""
    identity: dict[str, Any] = {"dataset": dataset}
    kind, _, arg = dataset.partition(":")
    if kind == "synthetic":
        identity["synthetic"] = config.data.synthetic.model_dump(mode="json")
    elif kind in ("csv", "parquet") and Path(arg).is_file():
        stat = Path(arg).resolve().stat()
        identity["file"] = [str(Path(arg).resolve()), stat.st_size, stat.st_mtime_ns]
    return "sha256:" + sha256_hex(json.dumps(identity, sort_keys=True).encode())


def _stat_matches(path: Path, entry: ConsumedFile) -> bool:
    stat = path.stat()
    return stat.st_size == entry.size and stat.st_mtime_ns == entry.mtime_ns


@dataclass
class _Start:
    """Where a cycle starts: the events held, the files in them, the reason for a rebuild."""

    events: pd.DataFrame
    files: tuple[ConsumedFile, ...]  # consumed files whose events are held: skipped while unchanged
    known: dict[str, ConsumedFile]  # every file the manifest lists: checked for changes
    spec: str
    fingerprint: str
    rebuilt: str = ""


def _start(dataset: str, incoming: Path, config: Config, manifest: Manifest | None, base: str) -> _Start:
    if manifest is None or not manifest.files:
        events = load_events(dataset, config.data)
        return _Start(events, (), {}, dataset, fingerprint_events(events))
    known = {f.name: f for f in manifest.files}
    snap = Path(manifest.snapshot)
    if manifest.base != base:
        why = f"the base data changed (was {manifest.dataset!r}, now {dataset!r}, or its settings or file)"
    elif not snap.is_file():
        why = f"the manifest's snapshot {snap} is missing"
    else:
        held = read_snapshot(snap)
        if fingerprint_events(held) == manifest.fingerprint:
            return _Start(held, manifest.files, known, f"parquet:{snap}", manifest.fingerprint)
        why = f"the snapshot {snap} does not match the manifest's fingerprint"
    gone = [name for name in known if not (incoming / name).is_file()]
    if gone:
        raise InputsError(
            f"{manifest_path(incoming)}: {why}, and consumed files are no longer in {incoming}: "
            f"{', '.join(gone)}; their events cannot be rebuilt. Restore them (or the snapshot), "
            "or delete the manifest to start again from the base and the files present"
        )
    log.warning("%s: rebuilding from the base and every incoming file", why)
    events = load_events(dataset, config.data)
    return _Start(events, (), known, dataset, fingerprint_events(events), rebuilt=why)


@dataclass
class _NewFile:
    path: Path
    sha256: str
    size: int
    mtime_ns: int
    events: pd.DataFrame


def _changed_reason(entry: ConsumedFile, digest: str, rebuilt: bool) -> str:
    held = "its first version was lost with the snapshot" if rebuilt else "its first version is already held"
    return (
        f"changed after it was consumed on {entry.consumed_at} into snapshot {entry.snapshot[:23]} "
        f"(sha256 was {entry.sha256[:16]}, now {digest[:16]}); {held}. Incoming files are "
        "append-only: put new events in a file with a new name"
    )


def _read_new_file(
    path: Path, data: bytes, held: pd.DataFrame, now: float | None
) -> tuple[pd.DataFrame, int]:
    """A new file's events, validated and with the held events' id kinds; its duplicates dropped."""
    kind, source = path.suffix.lstrip("."), f"incoming file {path}"
    checked = check_events(read_table(kind, data, f"{kind}:{path}"), source, check_time_range=True, now=now)
    return match_id_kinds(checked.events, held, source), checked.duplicates_dropped


def gather_inputs(dataset: str, incoming: Path, config: Config, *, now: float | None = None) -> Inputs:
    """The base (or the last snapshot) plus the new incoming files, validated; bad files
    quarantined. Writes a new snapshot when files were added; :func:`commit_manifest` then
    records them. ``now`` (epoch seconds, default the clock) bounds future timestamps."""
    incoming = Path(incoming)
    manifest_file = manifest_path(incoming)
    manifest_sha = sha256_hex(manifest_file.read_bytes()) if manifest_file.is_file() else ""
    manifest = read_manifest(incoming)
    base = _base_identity(dataset, config)
    start = _start(dataset, incoming, config, manifest, base)
    held, consumed = start.events, {f.name: f for f in start.files}

    refreshed: dict[str, ConsumedFile] = {}  # consumed files touched but unchanged: new stat
    new: list[_NewFile] = []
    quarantined: list[Quarantined] = []
    dropped = 0
    for path in incoming_files(incoming):
        entry = consumed.get(path.name)
        if entry is not None and _stat_matches(path, entry):
            continue
        data = _read_bytes(path)
        digest, stat = sha256_hex(data), path.stat()
        if entry is not None and digest == entry.sha256:
            refreshed[entry.name] = replace(entry, size=stat.st_size, mtime_ns=stat.st_mtime_ns)
            continue
        known = start.known.get(path.name)
        if known is not None and digest != known.sha256:
            quarantined.append(quarantine(path, _changed_reason(known, digest, bool(start.rebuilt))))
            continue
        try:
            events, in_file = _read_new_file(path, data, held, now)
        except DataValidationError as exc:
            quarantined.append(quarantine(path, str(exc)))
            continue
        dropped += in_file
        new.append(_NewFile(path, digest, stat.st_size, stat.st_mtime_ns, events))
    # consumed files deleted from incoming, or quarantined as changed, stay recorded: their
    # events are in the snapshot
    held_files = tuple(refreshed.get(f.name, f) for f in start.files)
    sources = [dataset] + [str(incoming / f.name) for f in held_files]

    if not new:
        next_manifest = None
        if refreshed or start.rebuilt:
            snap_file = start.spec.partition(":")[2] if start.files else ""
            next_manifest = Manifest(dataset, base, snap_file, start.fingerprint, len(held), held_files)
        return Inputs(
            events=held,
            new_events=held.iloc[0:0].copy(),
            snapshot=DataSnapshot(start.spec, start.fingerprint, len(held), sources),
            new_files=[],
            quarantined=quarantined,
            duplicates_dropped=dropped,
            rebuilt=start.rebuilt,
            incoming=incoming,
            manifest=next_manifest,
            manifest_sha256=manifest_sha,
        )

    combined = pd.concat([held, *(f.events for f in new)], ignore_index=True)
    duplicated = combined.duplicated(keep="first").to_numpy()
    events = combined[~duplicated].reset_index(drop=True)
    new_events = combined.iloc[len(held) :][~duplicated[len(held) :]].reset_index(drop=True)
    fingerprint = fingerprint_events(events)
    path = snapshot(events, fingerprint)
    consumed_at, offset, entries = utc_now_iso(), len(held), []
    for f in new:
        rows = len(f.events)
        added = int((~duplicated[offset : offset + rows]).sum())
        offset += rows
        entries.append(
            ConsumedFile(f.path.name, f.sha256, rows, added, f.size, f.mtime_ns, fingerprint, consumed_at)
        )
    dropped += int(duplicated.sum())
    if dropped:
        log.info("dropped %d exact duplicate event(s) from the new incoming files", dropped)
    new_files = [str(f.path) for f in new]
    return Inputs(
        events=events,
        new_events=new_events,
        snapshot=DataSnapshot(f"parquet:{path}", fingerprint, len(events), sources + new_files),
        new_files=new_files,
        quarantined=quarantined,
        duplicates_dropped=dropped,
        rebuilt=start.rebuilt,
        incoming=incoming,
        manifest=Manifest(dataset, base, str(path), fingerprint, len(events), (*held_files, *entries)),
        manifest_sha256=manifest_sha,
    )


def commit_manifest(inputs: Inputs) -> None:
    """Record ``inputs.new_files`` as consumed (atomically). Call it once the snapshot is safely
    written, i.e. after :func:`gather_inputs`. Raises :class:`InputsError` if the manifest was
    changed since (another cycle committed first: gather again)."""
    if inputs.manifest is None:
        return
    path = manifest_path(inputs.incoming)
    current = sha256_hex(path.read_bytes()) if path.is_file() else ""
    if current != inputs.manifest_sha256:
        raise InputsError(
            f"{path} changed since these inputs were gathered (another cycle committed?); "
            "gather the inputs again"
        )
    if not Path(inputs.manifest.snapshot).is_file():
        raise InputsError(f"snapshot {inputs.manifest.snapshot} is missing; gather the inputs again")
    with atomic_path(path) as tmp:
        tmp.write_text(inputs.manifest.to_json())


def current_events(dataset: str, incoming: Path, config: Config) -> tuple[pd.DataFrame, list[str]]:
    """The base events plus every incoming file, validated, and the list of their sources.

    Reads everything every time and fails on the first bad file; :func:`gather_inputs` reads
    each file once and quarantines bad ones.
    """
    base = load_events(dataset, config.data)
    frames, sources = [base], [dataset]
    for path in incoming_files(incoming):
        frames.append(match_id_kinds(read_incoming(path), base, f"incoming file {path}"))
        sources.append(str(path))
    events = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return events, sources
