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
  replaced under an exclusive ``flock`` on its folder (held by every conditional local writer).

A failed condition raises :class:`StoreConflictError` naming the key. There is no append and
no read-modify-write: a record that grows (alerts) is one new object per entry.

**Moves**: locally ``os.replace`` (atomic). On S3 a copy then a delete: a crash between the two
leaves the object in both places; callers say what that means for them (see
:mod:`recops.continuous.quarantine`, the only mover).

**Listings are fresh every call**: s3fs's listing cache is off for every store.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recops.errors import RecopsError
from recops.paths import atomic_path, recops_home

if TYPE_CHECKING:
    from recops.config import Config

STORE_ENV = "RECOPS_STORE"
S3 = "s3://"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# S3's answers when a conditional write loses: the condition did not hold (412), or another
# conditional write to the key was in flight (409)
_CONFLICT_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "412"}


class StoreError(RecopsError):
    """A store URI that cannot be used; the message says what is accepted."""


class StoreConflictError(RecopsError):
    """A conditional write lost: the key existed (``if_absent``) or changed (``if_match``)."""

    def __init__(self, url: str, condition: str) -> None:
        super().__init__(f"{url}: {condition}")
        self.url = url


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

    def __init__(self, uri: str | Path, *, _backend: _Local | _S3 | None = None) -> None:
        text = str(uri)
        if problem := uri_problem(text):
            raise StoreError(f"store URI {text!r} {problem}")
        if text.startswith(S3):
            self.uri = text.rstrip("/")
            self._backend: _Local | _S3 = _backend or _S3(self.uri)
        else:
            self.uri = os.path.abspath(os.path.expanduser(text.removeprefix("file://")))
            self._backend = _Local()

    @classmethod
    def of(cls, url: str) -> tuple[Store, str]:
        """The store of ``url``'s folder, and the key of ``url`` in it."""
        folder, _, name = url.rstrip("/").rpartition("/")
        return cls(folder or "/"), name

    @property
    def local(self) -> bool:
        return isinstance(self._backend, _Local)

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


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Local:
    """A folder on this machine: the OS's own atomic rename and hard link, no fsspec needed."""

    def exists(self, path: str) -> bool:
        return os.path.isfile(path)

    def read(self, path: str) -> bytes:
        return Path(path).read_bytes()

    def read_stamped(self, path: str) -> tuple[bytes, str]:
        data = self.read(path)
        return data, _sha256(data)

    def stamp(self, path: str) -> str | None:
        try:
            return _sha256(self.read(path))
        except FileNotFoundError:
            return None

    def list(self, folder: str) -> Iterator[tuple[str, int, int]]:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):  # an atomic write's
                continue
            if entry.is_file():
                stat = entry.stat()
                yield entry.name, stat.st_size, stat.st_mtime_ns

    def write(self, path: str, data: bytes, if_absent: bool, if_match: str | None) -> str:
        if if_match is not None:
            with _folder_lock(Path(path).parent):
                current = self.stamp(path)
                if current is None:
                    raise StoreConflictError(path, "changed since it was read (it is gone)")
                if current != if_match:
                    raise StoreConflictError(path, "changed since it was read (its stamp differs)")
                self._replace(path, data)
        elif if_absent:
            with _temporary(path) as tmp:
                tmp.write_bytes(data)
                try:
                    os.link(tmp, path)  # whole, and only where the name is free
                except FileExistsError:
                    raise StoreConflictError(path, "exists already") from None
        else:
            self._replace(path, data)
        return _sha256(data)

    @staticmethod
    def _replace(path: str, data: bytes) -> None:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)

    def delete(self, path: str) -> None:
        Path(path).unlink(missing_ok=True)

    def move(self, src: str, dst: str) -> None:
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)


@contextmanager
def _temporary(target: str) -> Iterator[Path]:
    """A temporary file beside ``target`` (named like :func:`recops.paths.atomic_path`'s),
    removed on the way out whatever happens."""
    folder = Path(target).parent
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=folder, prefix=f".{Path(target).name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive flock on ``folder`` itself: compare-and-set writers to it take turns."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # releases the lock


def filesystem(location: str) -> tuple[Any, str]:
    """fsspec's filesystem for ``location`` and the path in it. A remote one never caches
    listings, and is shared per endpoint: fsspec reuses one instance per set of arguments, and
    the endpoint (``AWS_ENDPOINT_URL``: the emulator in tests) is read when it first connects."""
    from fsspec.core import url_to_fs

    if "://" not in location:
        return url_to_fs(location)
    return url_to_fs(location, use_listings_cache=False, endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))


class _S3:
    """An S3 prefix through s3fs (:func:`filesystem`)."""

    def __init__(self, uri: str) -> None:
        self.fs, _ = filesystem(uri)

    def _path(self, url: str) -> str:
        return url.removeprefix(S3)

    def exists(self, url: str) -> bool:
        return self.fs.isfile(self._path(url))

    def read(self, url: str) -> bytes:
        return self.fs.cat_file(self._path(url))

    def read_stamped(self, url: str) -> tuple[bytes, str]:
        # s3fs reads an opened file with If-Match: <the ETag it saw>, so the data and the stamp
        # are of one version; a write in between fails the read, and it is read again
        for attempt in range(3):
            try:
                with self.fs.open(self._path(url), "rb") as handle:
                    return handle.read(), handle.details["ETag"]
            except OSError as exc:
                if attempt == 2 or not _lost_condition(exc):
                    raise
        raise AssertionError("unreachable")

    def stamp(self, url: str) -> str | None:
        try:
            return self.fs.info(self._path(url), refresh=True)["ETag"]
        except FileNotFoundError:
            return None

    def list(self, folder: str) -> Iterator[tuple[str, int, int]]:
        try:
            found = self.fs.ls(self._path(folder), detail=True, refresh=True)
        except FileNotFoundError:
            return
        for info in found:
            if info.get("type") == "file":
                yield info["name"].rpartition("/")[2], int(info["size"]), _ns(info["LastModified"])

    def write(self, url: str, data: bytes, if_absent: bool, if_match: str | None) -> str:
        kwargs: dict[str, Any] = {}
        if if_absent:
            kwargs["mode"] = "create"
        elif if_match is not None:
            kwargs["IfMatch"] = if_match
        try:
            out = self.fs.pipe_file(self._path(url), data, **kwargs)
        except FileExistsError:
            raise StoreConflictError(url, "exists already") from None
        except FileNotFoundError:  # If-Match on a key that is gone
            if if_match is None:
                raise
            raise StoreConflictError(url, "changed since it was read (it is gone)") from None
        except OSError as exc:
            if _lost_condition(exc):
                what = "exists already" if if_absent else "changed since it was read (its ETag differs)"
                raise StoreConflictError(url, what) from exc
            raise
        etag = (out or {}).get("ETag")
        return etag or self.stamp(url) or ""

    def delete(self, url: str) -> None:
        self.fs.rm_file(self._path(url))  # S3 deletes are idempotent

    def move(self, src: str, dst: str) -> None:
        self.fs.copy(self._path(src), self._path(dst))
        self.fs.rm_file(self._path(src))


def _lost_condition(exc: BaseException) -> bool:
    """Whether S3 refused a request because its condition did not hold."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code", ""))
            status = str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            return code in _CONFLICT_CODES or status == "412"
        seen = seen.__cause__ or seen.__context__
    return False


def _ns(when: datetime) -> int:
    """A timezone-aware time as integer nanoseconds since the epoch (no float rounding)."""
    return (when - _EPOCH) // timedelta(microseconds=1) * 1000
