"""One store for the continuous-training state: a local folder, or ``s3://bucket/prefix``.

**Which store.** ``$RECOPS_STORE``, else the config's ``[store] uri``, else ``$RECOPS_HOME``
(:func:`store_uri`), so the embedded default keeps today's layout under ``RECOPS_HOME``
exactly. On AWS the flow runs as a Fargate task with an empty disk; there the store is S3.

**Keys** are relative paths (``incoming/0001.csv``); the layout the continuous loop uses:

=================================================  ===========================================
``incoming/*.csv``, ``incoming/*.parquet``         new events, dropped by producers
``incoming/manifest.json``                         consumed files and the snapshot holding them
``incoming/quarantine/<name>`` + ``.reason.txt``   refused files and why
``snapshots/<fingerprint>.parquet``                base + consumed files, what training reads
``monitoring/alerts/<utc>-<random>.json``          one object per alert (also ``failures/``)
``monitoring/last_cycle.json``                     the last cycle's result, for `recops status`
=================================================  ===========================================

**API** (:class:`Store`): ``url(key)`` (an absolute path locally, ``s3://...`` on S3),
``exists``, ``read_bytes``, ``read_text``, ``read_stamped`` (content and its stamp, read
together), ``stamp`` (an opaque version token: the ETag on S3, the content's sha256 locally;
``None`` when absent), ``list(prefix, suffixes=...)`` (the files directly under a prefix as
:class:`Entry` with key, size and modification time), ``write_bytes``/``write_text``,
``delete``, ``move``, and ``child(prefix)`` (a store rooted further down).

**Writes are whole and atomic**: locally a temporary file beside the target, then
``os.replace`` (:func:`recops.paths.atomic_path`); on S3 one ``put_object`` through s3fs's
``pipe_file`` (a multipart upload above 100 MB, which also appears only when complete). Two
conditions, checked by the store itself, never by reading first:

- ``if_absent=True``: S3 ``If-None-Match: *``; locally ``os.link`` of the temporary file,
  which fails when the name exists.
- ``if_match=<stamp>``: S3 ``If-Match: <ETag>``; locally the stamp is compared and the file
  replaced while holding the key's lock file (``.<name>.lock`` beside it, a ``filelock``
  ``FileLock`` that every compare-and-set writer of the key takes).

A failed condition raises :class:`StoreConflictError` naming the key. There is no append and
no read-modify-write: a record that grows (alerts) is one new object per entry.

**Moves**: locally ``os.replace`` (atomic). On S3 a copy then a delete: a crash between the two
leaves the object in both places; callers say what that means for them (see
:mod:`recops.continuous.quarantine`, the only mover).

**Listings are fresh every call**: s3fs's listing cache is off for every store. Locally, names
that start with a dot are the store's own (temporary and lock files) and are never listed.

The two backends live in :mod:`recops.store.backends`; this module is the facade callers use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from recops.errors import RecopsError
from recops.paths import recops_home
from recops.store.backends import S3, LocalBackend, S3Backend, StoreConflictError, filesystem

if TYPE_CHECKING:
    from recops.config import Config

__all__ = [
    "STORE_ENV",
    "Entry",
    "Store",
    "StoreConflictError",
    "StoreError",
    "as_store",
    "filesystem",
    "open_store",
    "store_uri",
    "uri_problem",
]

STORE_ENV = "RECOPS_STORE"


class StoreError(RecopsError):
    """A store URI that cannot be used; the message says what is accepted."""


@dataclass(frozen=True)
class Entry:
    """One file of a listing."""

    key: str  # relative to the store that listed it
    size: int
    modified_ns: int  # local mtime in ns; S3 LastModified (whole seconds) in ns since the epoch


def uri_problem(uri: str) -> str:
    """What is wrong with ``uri`` as a store URI ("" when nothing): a local folder (a path or
    ``file://``) or ``s3://bucket[/prefix]``."""
    scheme, sep, rest = uri.partition("://")
    accepted = "must be a local folder or s3://bucket[/prefix]"
    if not sep or scheme == "file":
        return ""
    if scheme != "s3":
        return f"{accepted} (the scheme {scheme}:// is not supported)"
    if len(rest.partition("/")[0]) < 3:
        return f"{accepted} (it names no bucket)"
    return ""


def store_uri(config: Config | None = None) -> str:
    """``$RECOPS_STORE``, else ``config.store.uri``, else ``$RECOPS_HOME``."""
    configured = config.store.uri if config is not None else ""
    return os.environ.get(STORE_ENV) or configured or str(recops_home())


def open_store(config: Config | None = None) -> Store:
    """The store holding the continuous-training state (see :func:`store_uri`)."""
    return Store(store_uri(config))


def as_store(location: Store | str | Path) -> Store:
    return location if isinstance(location, Store) else Store(location)


class Store:
    """Files under one root URI, addressed by relative keys; see the module docstring."""

    def __init__(self, uri: str | Path, *, _backend: LocalBackend | S3Backend | None = None) -> None:
        text = str(uri)
        if problem := uri_problem(text):
            raise StoreError(f"store URI {text!r} {problem}")
        if text.startswith(S3):
            self.uri = text.rstrip("/")
            self._backend: LocalBackend | S3Backend = _backend or S3Backend(self.uri)
        else:
            self.uri = os.path.abspath(os.path.expanduser(text.removeprefix("file://")))
            self._backend = LocalBackend()

    @classmethod
    def of(cls, url: str) -> tuple[Store, str]:
        """The store of ``url``'s folder, and the key of ``url`` in it."""
        folder, _, name = url.rstrip("/").rpartition("/")
        return cls(folder or "/"), name

    @property
    def local(self) -> bool:
        return isinstance(self._backend, LocalBackend)

    def __repr__(self) -> str:
        return f"Store({self.uri!r})"

    def child(self, prefix: str) -> Store:
        """The store rooted at ``prefix`` (the same client)."""
        return Store(self.url(prefix), _backend=self._backend)

    def url(self, key: str = "") -> str:
        """The full location of ``key``: an absolute path locally, ``s3://...`` on S3."""
        if not key:
            return self.uri
        _check_key(key)
        return os.path.join(self.uri, *key.split("/")) if self.local else f"{self.uri}/{key}"

    def exists(self, key: str) -> bool:
        return self._backend.exists(self.url(key))

    def read_bytes(self, key: str) -> bytes:
        """The content of ``key``; ``FileNotFoundError`` when absent."""
        return self._backend.read(self.url(key))

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode()

    def read_stamped(self, key: str) -> tuple[bytes, str]:
        """The content of ``key`` and the stamp of that same content (for ``if_match``)."""
        return self._backend.read_stamped(self.url(key))

    def stamp(self, key: str) -> str | None:
        """An opaque version token of ``key`` (``None`` when absent): it changes with the content."""
        return self._backend.stamp(self.url(key))

    def list(self, prefix: str = "", *, suffixes: tuple[str, ...] = ()) -> list[Entry]:
        """The files directly under ``prefix`` (not in sub-folders), by key; fresh every call."""
        base = self.url(prefix)
        entries = []
        for name, size, modified_ns in self._backend.list(base):
            if suffixes and not name.endswith(suffixes):
                continue
            key = f"{prefix.rstrip('/')}/{name}" if prefix else name
            entries.append(Entry(key, size, modified_ns))
        return sorted(entries, key=lambda e: e.key)

    def write_bytes(
        self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        """Write ``data`` whole (atomically), under the condition given; return the new stamp.

        ``if_absent``: only if ``key`` does not exist; ``if_match``: only if its stamp is this
        one. A failed condition raises :class:`StoreConflictError`.
        """
        if if_absent and if_match is not None:
            raise ValueError("if_absent and if_match exclude each other")
        return self._backend.write(self.url(key), bytes(data), if_absent, if_match)

    def write_text(self, key: str, text: str, *, if_absent: bool = False, if_match: str | None = None) -> str:
        return self.write_bytes(key, text.encode(), if_absent=if_absent, if_match=if_match)

    def delete(self, key: str) -> None:
        """Delete ``key``; nothing happens when it is absent."""
        self._backend.delete(self.url(key))

    def move(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst`` (replacing it): atomic locally; on S3 a copy, then a delete."""
        self._backend.move(self.url(src), self.url(dst))


def _check_key(key: str) -> None:
    parts = key.split("/")
    if key.startswith("/") or any(part in ("", ".", "..") for part in parts[:-1]) or parts[-1] in (".", ".."):
        raise ValueError(f"store keys are relative paths without . or .. parts, got {key!r}")
