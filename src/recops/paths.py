"""Where the embedded default keeps its state: everything under one root, RECOPS_HOME.

The continuous-training state (incoming events, manifest, quarantine, snapshots, alert and
cycle records) goes through :mod:`recops.store`, whose root is ``$RECOPS_STORE`` (a folder or
``s3://bucket/prefix``) and, by default, this same ``RECOPS_HOME`` with the same layout.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# The source checkout (flows/, notebooks/, configs/, bentos/ live here); an installed package
# without the repository has none of them, and callers say so when a file is missing.
REPO_ROOT = Path(__file__).resolve().parents[2]


def recops_home() -> Path:
    """The state root (``$RECOPS_HOME``, default ``.recops`` in the working directory).

    Not created here: callers create the sub-folder they write to.
    """
    return Path(os.environ.get("RECOPS_HOME", ".recops")).resolve()


def data_cache_dir() -> Path:
    return recops_home() / "data"


def runs_dir() -> Path:
    return recops_home() / "runs"


def file_sha256(path: str | Path) -> str:
    """``sha256:<hex>`` of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def umask() -> int:
    """This process's umask, read without changing it (``os.umask`` can only set it, and setting
    it back and forth races with other threads creating files)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # not Linux: the racy way
    os.umask(mask)
    return mask


def as_umask_allows(path: str | Path) -> None:
    """Give a file or folder made by ``tempfile`` (always 0600 / 0700) the mode a plain ``open``
    or ``mkdir`` would have given it, so what recops writes is as readable as the user's umask
    says (a checkpoint a teammate or a server running as another user needs to read)."""
    base = 0o777 if Path(path).is_dir() else 0o666
    os.chmod(path, base & ~umask())


@contextmanager
def atomic_path(target: str | Path, *, commit: Callable[[str, Path], None] = os.replace) -> Iterator[Path]:
    """A temporary path beside ``target`` that ``commit`` puts in its place when the block succeeds.

    ``commit`` is ``os.replace`` by default: a failure (or crash) leaves the old file or none,
    never half a file. The store passes a hard link there to write only where the name is free.
    The temporary file is gone afterwards, whatever happens.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(temporary)
        if os.path.exists(temporary):  # a writer may have replaced or removed it
            as_umask_allows(temporary)
        commit(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)


def prefect_home() -> Path:
    return recops_home() / "prefect"


def use_local_prefect_home() -> None:
    """Point Prefect at ``RECOPS_HOME/prefect`` unless ``PREFECT_HOME`` is set already.

    Prefect reads its settings when it is first imported, so entry points call this before
    importing prefect. A ``PREFECT_API_URL`` set by the user is left alone (a shared server).
    """
    os.environ.setdefault("PREFECT_HOME", str(prefect_home()))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no network here, nor wanted
    # Prefect gives its temporary server 20 s to start; on a busy 2-core machine (a training run
    # beside the cycle) it took longer, and the cycle failed before doing anything
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)  # its SQLite file goes here
