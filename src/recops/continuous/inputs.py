"""Incoming data: the base dataset plus the ``*.csv``/``*.parquet`` files dropped into the
incoming folder (``<store>/incoming`` by default, :mod:`recops.store`: a local folder, by
default ``$RECOPS_HOME/incoming``, or ``s3://bucket/prefix/incoming``), read once each.

:func:`gather_inputs` is one cycle's data:

* **Manifest (watermark).** ``incoming/manifest.json`` records the snapshot that holds the
  base plus every consumed file (``<store>/snapshots/<fingerprint>.parquet``) and, per
  consumed file, its name, sha256, rows, the events it added, size, modification time (mtime
  locally, S3's LastModified) and the snapshot it went into. A cycle reads that snapshot plus
  only the files not in the manifest; with no new file it reads the snapshot alone. New files
  are read in name order; a file's name is its identity, so never reuse one (writers should
  write ``x.tmp`` and rename it to ``x.csv``, or put the object whole, as S3 does).
* **Each new file is validated** (the event schema with the timestamp range check, see
  :mod:`recops.data.schema`) and must have the base's id kinds: a file with text ids on an
  integer-id base is refused, never converted (``"007"`` is not the item ``7``). Integer ids
  on a text-id base are converted to text, which is lossless (``7`` is written ``"7"``).
* **Quarantine.** A file that fails is moved to ``incoming/quarantine/<name>`` with
  ``<name>.reason.txt`` beside it (the error and the UTC time), and the cycle goes on with the
  others; :attr:`Inputs.quarantined` lists them so the caller can alert. The reason is written
  first, then the file is moved; what a crash in between (or inside an S3 move, a copy then a
  delete) leaves is handled by the next pass, see :mod:`recops.continuous.quarantine`. A
  consumed file whose content changed (its size or modification time moved and its sha256
  differs) is quarantined too: its first version is already in the snapshot; new events go in
  a new file.
* **Exact duplicates** (within a file, or of events already held) are dropped and counted.
* **Session id collisions**: a file whose sessions reuse the id of an earlier session (held,
  or in a file read before it) with events not after that session's last one is quarantined
  (:mod:`recops.data.collisions`): merged, two sessions would make one corrupt sequence.

When there are new files, :func:`gather_inputs` writes the combined events as a new snapshot
(whole, once per fingerprint: written only where absent, else reused) and
:func:`commit_manifest` records them as consumed; the flow calls it once the snapshot is safely
written (it is, when ``gather_inputs`` returns).

**Crash safety.** The snapshot is written first, the manifest last, and the manifest names the
snapshot a cycle starts from; nothing else moves the watermark. The manifest is replaced whole
(a temporary file and ``os.replace`` locally, one ``put_object`` on S3) and only if it is still
the one this cycle read (compare-and-set on its stamp: ``If-Match`` on S3), so two cycles
cannot both commit on the same base. If the process dies after the snapshot is written but
before the manifest is, the old manifest still names the old snapshot and lists none of the new
files, so the next cycle reads the old snapshot plus the same files again: the same events, the
same fingerprint, the same snapshot object (found, and reused). No event is lost or counted
twice; the unrecorded snapshot is simply the one used. If the base changes (another
``--dataset``, other synthetic settings, a changed ``csv:``/``parquet:`` base file) or the
manifest's snapshot is missing or altered, the events are rebuilt from the base and every file
in incoming; a consumed file that is no longer there then stops the cycle with an
:class:`InputsError` (its events would be lost) rather than silently dropping it.

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
    INCOMING,
    SNAPSHOTS,
    ConsumedFile,
    InputsError,
    Manifest,
    manifest_url,
    read_manifest_stamped,
    read_snapshot,
    sha256_hex,
    snapshot,
    snapshot_exists,
    write_manifest,
)
from recops.continuous.manifest import prune_snapshots as prune_snapshots  # re-exported
from recops.continuous.manifest import read_manifest as read_manifest  # re-exported
from recops.continuous.quarantine import Quarantined, quarantine, utc_now_iso
from recops.data import DataValidationError, load_events, read_raw_events, validate_events
from recops.data.collisions import check_new_sequences
from recops.data.interactions import fingerprint_events
from recops.data.schema import check_events, match_id_kinds
from recops.data.sources import is_glob, matching_files, read_table
from recops.store import Entry, Store, as_store, open_store

log = logging.getLogger(__name__)


INCOMING_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class DataSnapshot:
    spec: str  # what the training flow reads: the base dataset, or a snapshot parquet:URL
    fingerprint: str
    n_events: int
    sources: list[str]  # the base dataset and each incoming file (its URL), in order


@dataclass(frozen=True, eq=False)
class Inputs:
    """One cycle's data: everything to train on, what is new, and what was refused."""

    events: pd.DataFrame  # everything to train on (base + all consumed and new files), validated
    new_events: pd.DataFrame  # only the files new in this call (for drift); empty if none
    snapshot: DataSnapshot  # what the training flow reads, with its fingerprint and sources
    new_files: list[str]  # the files read for the first time (URLs), in order
    quarantined: list[Quarantined] = field(default_factory=list)
    duplicates_dropped: int = 0  # exact duplicates dropped from the new files
    rebuilt: str = ""  # why the events were rebuilt from the base and every file ("" if not)
    incoming: Store | None = None  # where the files and the manifest are
    manifest: Manifest | None = None  # what commit_manifest writes (None: nothing to record)
    manifest_stamp: str = ""  # of the manifest as gathered ("" if none): no lost updates


def incoming_files(folder: Path) -> list[Path]:
    """The incoming files of a local folder, by name (a store's: ``Store.list``)."""
    return sorted(p for p in Path(folder).glob("*") if p.suffix in INCOMING_SUFFIXES and p.is_file())


def _read_bytes(incoming: Store, key: str) -> bytes:
    """Every read of an incoming file's content goes through here (one read per new file)."""
    return incoming.read_bytes(key)


def _kind(location: str) -> str:
    return location.rpartition(".")[2]


def read_incoming(location: str | Path, *, now: float | None = None) -> pd.DataFrame:
    """One incoming file (a path or URL), validated (timestamps range-checked); errors name the
    file and rows."""
    location = str(location)
    return validate_events(
        read_raw_events(f"{_kind(location)}:{location}"),
        source=f"incoming file {location}",
        check_time_range=True,
        now=now,
    )


def _base_identity(dataset: str, config: Config) -> str:
    """What the base data depends on: its spec, the synthetic settings, a base file's stat."""
    identity: dict[str, Any] = {"dataset": dataset}
    kind, _, arg = dataset.partition(":")
    if kind == "synthetic":
        identity["synthetic"] = config.data.synthetic.model_dump(mode="json")
    elif kind in ("csv", "parquet") and arg and "://" not in arg and not is_glob(arg):
        if Path(arg).is_file():  # as before the store: a manifest of then is not rebuilt
            stat = Path(arg).resolve().stat()
            identity["file"] = [str(Path(arg).resolve()), stat.st_size, stat.st_mtime_ns]
    elif kind in ("csv", "parquet") and arg:
        identity["files"] = [
            [name, info.get("size"), str(info.get("ETag") or info.get("LastModified") or info.get("mtime"))]
            for name, info in matching_files(arg)
        ]
    return "sha256:" + sha256_hex(json.dumps(identity, sort_keys=True).encode())


def _unchanged(entry: Entry, consumed: ConsumedFile) -> bool:
    return entry.size == consumed.size and entry.modified_ns == consumed.mtime_ns


@dataclass
class _Start:
    """Where a cycle starts: the events held, the files in them, the reason for a rebuild."""

    events: pd.DataFrame
    files: tuple[ConsumedFile, ...]  # consumed files whose events are held: skipped while unchanged
    known: dict[str, ConsumedFile]  # every file the manifest lists: checked for changes
    spec: str
    fingerprint: str
    rebuilt: str = ""


def _start(
    dataset: str, incoming: Store, present: set[str], config: Config, manifest: Manifest | None, base: str
) -> _Start:
    if manifest is None or not manifest.files:
        events = load_events(dataset, config.data)
        return _Start(events, (), {}, dataset, fingerprint_events(events))
    known = {f.name: f for f in manifest.files}
    snap = manifest.snapshot
    if manifest.base != base:
        why = f"the base data changed (was {manifest.dataset!r}, now {dataset!r}, or its settings or file)"
    elif not snapshot_exists(snap):
        why = f"the manifest's snapshot {snap} is missing"
    else:
        held = read_snapshot(snap)
        if fingerprint_events(held) == manifest.fingerprint:
            return _Start(held, manifest.files, known, f"parquet:{snap}", manifest.fingerprint)
        why = f"the snapshot {snap} does not match the manifest's fingerprint"
    gone = [name for name in known if name not in present]
    if gone:
        raise InputsError(
            f"{manifest_url(incoming)}: {why}, and consumed files are no longer in {incoming.uri}: "
            f"{', '.join(gone)}; their events cannot be rebuilt. Restore them (or the snapshot), "
            "or delete the manifest to start again from the base and the files present"
        )
    log.warning("%s: rebuilding from the base and every incoming file", why)
    events = load_events(dataset, config.data)
    return _Start(events, (), known, dataset, fingerprint_events(events), rebuilt=why)


@dataclass
class _NewFile:
    name: str
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
    url: str, data: bytes, earlier: list[pd.DataFrame], now: float | None
) -> tuple[pd.DataFrame, int]:
    """A new file's events, validated and with the held events' (``earlier[0]``) id kinds, its
    duplicates dropped; refused if its sessions collide with ``earlier`` ones."""
    kind, source = _kind(url), f"incoming file {url}"
    checked = check_events(read_table(kind, data, f"{kind}:{url}"), source, check_time_range=True, now=now)
    events = match_id_kinds(checked.events, earlier[0], source)
    check_new_sequences(events, earlier, source)
    return events, checked.duplicates_dropped


def gather_inputs(
    dataset: str,
    incoming: Store | str | Path | None,
    config: Config,
    *,
    now: float | None = None,
    store: Store | None = None,
) -> Inputs:
    """The base (or the last snapshot) plus the new incoming files, validated; bad files
    quarantined. Writes a new snapshot when files were added; :func:`commit_manifest` then
    records them. ``incoming`` is a folder or store URI (None: ``<store>/incoming``); snapshots
    go to ``<store>/snapshots`` (``store`` default :func:`recops.store.open_store` of
    ``config``). ``now`` (epoch seconds, default the clock) bounds future timestamps."""
    store = store or open_store(config)
    incoming = store.child(INCOMING) if incoming is None else as_store(incoming)
    manifest, manifest_stamp = read_manifest_stamped(incoming)
    base = _base_identity(dataset, config)
    listing = incoming.list(suffixes=INCOMING_SUFFIXES)
    start = _start(dataset, incoming, {e.key for e in listing}, config, manifest, base)
    held, consumed = start.events, {f.name: f for f in start.files}

    refreshed: dict[str, ConsumedFile] = {}  # consumed files touched but unchanged: new stat
    new: list[_NewFile] = []
    quarantined: list[Quarantined] = []
    dropped = 0
    for entry in listing:
        name = entry.key
        held_entry = consumed.get(name)
        if held_entry is not None and _unchanged(entry, held_entry):
            continue
        data = _read_bytes(incoming, name)
        digest = sha256_hex(data)
        if held_entry is not None and digest == held_entry.sha256:
            refreshed[name] = replace(held_entry, size=entry.size, mtime_ns=entry.modified_ns)
            continue
        known = start.known.get(name)
        if known is not None and digest != known.sha256:
            reason = _changed_reason(known, digest, bool(start.rebuilt))
            quarantined.append(quarantine(incoming, name, reason, data))
            continue
        try:
            events, in_file = _read_new_file(incoming.url(name), data, [held, *(f.events for f in new)], now)
        except DataValidationError as exc:
            quarantined.append(quarantine(incoming, name, str(exc), data))
            continue
        dropped += in_file
        new.append(_NewFile(name, digest, entry.size, entry.modified_ns, events))
    # consumed files deleted from incoming, or quarantined as changed, stay recorded: their
    # events are in the snapshot
    held_files = tuple(refreshed.get(f.name, f) for f in start.files)
    sources = [dataset] + [incoming.url(f.name) for f in held_files]

    if not new:
        next_manifest = None
        if refreshed or start.rebuilt:
            snap_url = start.spec.partition(":")[2] if start.files else ""
            next_manifest = Manifest(dataset, base, snap_url, start.fingerprint, len(held), held_files)
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
            manifest_stamp=manifest_stamp,
        )

    combined = pd.concat([held, *(f.events for f in new)], ignore_index=True)
    duplicated = combined.duplicated(keep="first").to_numpy()
    events = combined[~duplicated].reset_index(drop=True)
    new_events = combined.iloc[len(held) :][~duplicated[len(held) :]].reset_index(drop=True)
    fingerprint = fingerprint_events(events)
    snap_url = snapshot(events, fingerprint, store.child(SNAPSHOTS))  # first: the manifest names it
    consumed_at, offset, entries = utc_now_iso(), len(held), []
    for f in new:
        rows = len(f.events)
        added = int((~duplicated[offset : offset + rows]).sum())
        offset += rows
        entries.append(
            ConsumedFile(f.name, f.sha256, rows, added, f.size, f.mtime_ns, fingerprint, consumed_at)
        )
    dropped += int(duplicated.sum())
    if dropped:
        log.info("dropped %d exact duplicate event(s) from the new incoming files", dropped)
    new_files = [incoming.url(f.name) for f in new]
    return Inputs(
        events=events,
        new_events=new_events,
        snapshot=DataSnapshot(f"parquet:{snap_url}", fingerprint, len(events), sources + new_files),
        new_files=new_files,
        quarantined=quarantined,
        duplicates_dropped=dropped,
        rebuilt=start.rebuilt,
        incoming=incoming,
        manifest=Manifest(dataset, base, snap_url, fingerprint, len(events), (*held_files, *entries)),
        manifest_stamp=manifest_stamp,
    )


def commit_manifest(inputs: Inputs) -> None:
    """Record ``inputs.new_files`` as consumed: the manifest replaced whole, the last write of a
    cycle's inputs. Call it once the snapshot is safely written, i.e. after
    :func:`gather_inputs`. Raises :class:`InputsError` if the manifest was changed since
    (another cycle committed first: gather again)."""
    if inputs.manifest is None or inputs.incoming is None:
        return
    snap = inputs.manifest.snapshot
    if snap and not snapshot_exists(snap):  # "": no file held, the next cycle starts from the base
        raise InputsError(f"snapshot {snap} is missing; gather the inputs again")
    write_manifest(inputs.incoming, inputs.manifest, inputs.manifest_stamp)


def current_events(
    dataset: str, incoming: Store | str | Path | None, config: Config
) -> tuple[pd.DataFrame, list[str]]:
    """The base events plus every incoming file, validated, and the list of their sources.

    Reads everything every time and fails on the first bad file; :func:`gather_inputs` reads
    each file once and quarantines bad ones.
    """
    incoming = open_store(config).child(INCOMING) if incoming is None else as_store(incoming)
    base = load_events(dataset, config.data)
    frames, sources = [base], [dataset]
    for entry in incoming.list(suffixes=INCOMING_SUFFIXES):
        url = incoming.url(entry.key)
        events = match_id_kinds(read_incoming(url), base, f"incoming file {url}")
        check_new_sequences(events, frames, f"incoming file {url}")
        frames.append(events)
        sources.append(url)
    events = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return events, sources


def known_events(
    dataset: str, incoming: Store | str | Path | None, config: Config, *, also: Store | None = None
) -> list[pd.DataFrame]:
    """Every event a cycle would see, read only (nothing written, moved or quarantined): the
    manifest's snapshot (else the base) and the incoming files it has not consumed, plus the
    files in ``also`` (another folder a producer writes to). A file that does not validate is
    left out, as a cycle would quarantine it. For producers of new events
    (:mod:`recops.data.collisions`: ids and times that collide with none of these)."""
    incoming = open_store(config).child(INCOMING) if incoming is None else as_store(incoming)
    manifest = read_manifest(incoming)
    consumed: set[str] = set()
    held = None
    if (
        manifest is not None
        and manifest.files
        and manifest.base == _base_identity(dataset, config)
        and snapshot_exists(manifest.snapshot)
    ):
        held, consumed = read_snapshot(manifest.snapshot), {f.name for f in manifest.files}
    frames = [load_events(dataset, config.data) if held is None else held]
    folders = [incoming] if also is None or also.uri == incoming.uri else [incoming, also]
    for folder in folders:
        for entry in folder.list(suffixes=INCOMING_SUFFIXES):
            if folder is incoming and entry.key in consumed:
                continue
            try:
                frames.append(read_incoming(folder.url(entry.key)))
            except DataValidationError as exc:
                log.warning("left out (a cycle would quarantine it): %s", exc)
    return frames
