"""Bad incoming files moved aside: ``<incoming>/quarantine/<name>`` with ``<name>.reason.txt``
beside it, the reason written first (atomically), then the file moved (``os.replace``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from recops.paths import atomic_path

log = logging.getLogger(__name__)

QUARANTINE_DIR = "quarantine"


def quarantine_dir(incoming: Path) -> Path:
    return Path(incoming) / QUARANTINE_DIR


@dataclass(frozen=True)
class Quarantined:
    """An incoming file moved aside, and why."""

    file: str  # where it was (in the incoming folder)
    moved_to: str  # where it is now: <incoming>/quarantine/<name>
    reason: str


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def quarantine(path: Path, reason: str) -> Quarantined:
    """Move ``path`` to ``<its folder>/quarantine/`` with ``<name>.reason.txt`` beside it.

    The reason is written first (atomically), then the file is moved with ``os.replace``; a
    name already quarantined gets a numbered name (``0001.1.csv``), so nothing is overwritten.
    """
    folder = quarantine_dir(path.parent)
    folder.mkdir(parents=True, exist_ok=True)
    dest, n = folder / path.name, 0
    while dest.exists():
        n += 1
        dest = folder / f"{path.stem}.{n}{path.suffix}"
    text = f"{path.name} quarantined at {utc_now_iso()} (UTC)\nfrom {path}\n\n{reason}\n"
    with atomic_path(dest.with_name(dest.name + ".reason.txt")) as tmp:
        tmp.write_text(text)
    os.replace(path, dest)
    log.warning("quarantined %s -> %s: %s", path, dest, reason)
    return Quarantined(str(path), str(dest), reason)
