"""Bad incoming files moved aside: ``incoming/quarantine/<name>`` with ``<name>.reason.txt``
beside it, the reason written first, then the file moved (:meth:`recops.store.Store.move`).

What a crash leaves, and the next pass:

- between the reason and the move: a reason file and the data still in incoming. The next pass
  refuses the file again and writes its reason again (the same name: the data file is not
  there), then moves it.
- inside a move on S3 (a copy, then a delete): the file in both places. The next pass refuses
  the file again, finds a copy with the same bytes and a reason in quarantine, and only deletes
  the incoming one: one copy, no second name, and the file is reported (and alerted) once more,
  since the alert of the interrupted pass never went out. A file is never counted as events
  while it is refused, so there is nothing to count twice. Locally a move is one ``os.replace``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath

from recops.store import Store

log = logging.getLogger(__name__)

QUARANTINE_DIR = "quarantine"
REASON_SUFFIX = ".reason.txt"


@dataclass(frozen=True)
class Quarantined:
    """An incoming file moved aside, and why."""

    file: str  # where it was (in the incoming folder)
    moved_to: str  # where it is now: <incoming>/quarantine/<name>
    reason: str


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _names(name: str) -> Iterator[str]:
    """``0001.csv``, then ``0001.1.csv``, ``0001.2.csv``, ...: the names a quarantined file may take."""
    path = PurePosixPath(name)
    yield name
    for n in itertools.count(1):
        yield f"{path.stem}.{n}{path.suffix}"


def quarantine(incoming: Store, name: str, reason: str, data: bytes) -> Quarantined:
    """Move ``name`` (a file of ``incoming``, whose content is ``data``) to ``quarantine/`` with
    ``<name>.reason.txt`` beside it; a name already quarantined gets a numbered name
    (``0001.1.csv``), so nothing is overwritten. A copy with these bytes and a reason already
    there is what an interrupted move left: the incoming file is only deleted."""
    folder = incoming.child(QUARANTINE_DIR)
    held = {entry.key: entry.size for entry in folder.list()}
    for candidate in _names(name):
        if candidate not in held:
            break
        reasoned = candidate + REASON_SUFFIX in held
        if reasoned and held[candidate] == len(data) and folder.read_bytes(candidate) == data:
            incoming.delete(name)
            log.warning("quarantined %s: already in %s (finished an interrupted move)", name, candidate)
            return Quarantined(incoming.url(name), folder.url(candidate), reason)
    text = f"{name} quarantined at {utc_now_iso()} (UTC)\nfrom {incoming.url(name)}\n\n{reason}\n"
    folder.write_text(candidate + REASON_SUFFIX, text)
    incoming.move(name, f"{QUARANTINE_DIR}/{candidate}")
    log.warning("quarantined %s -> %s: %s", incoming.url(name), folder.url(candidate), reason)
    return Quarantined(incoming.url(name), folder.url(candidate), reason)
