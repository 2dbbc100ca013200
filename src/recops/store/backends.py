"""The two places a :class:`recops.store.Store` keeps its files: a local folder and an S3 prefix.

Both take full locations (an absolute path, an ``s3://`` URL) and answer the same six calls:
``exists``, ``read``, ``read_stamped``, ``stamp``, ``list`` (name, size, mtime in ns of the files
directly in a folder), ``write`` (whole, under ``if_absent`` or ``if_match``; returns the new
stamp), ``delete`` and ``move``. How each keeps writes atomic and conditional is in
:mod:`recops.store`'s docstring.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from filelock import FileLock

from recops.errors import RecopsError
from recops.paths import atomic_path

S3 = "s3://"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# S3's answers when a conditional write loses: the condition did not hold (412), or another
# conditional write to the key was in flight (409)
_CONFLICT_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "412"}


class StoreConflictError(RecopsError):
    """A conditional write lost: the key existed (``if_absent``) or changed (``if_match``)."""

    def __init__(self, url: str, condition: str) -> None:
        super().__init__(f"{url}: {condition}")
        self.url = url


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _link_if_absent(temporary: str | Path, target: str | Path) -> None:
    try:
        os.link(temporary, target)  # whole, and only where the name is free
    except FileExistsError:
        raise StoreConflictError(str(target), "exists already") from None


class LocalBackend:
    """A folder on this machine: the OS's own atomic rename and hard link, no fsspec needed.

    Files whose names start with a dot are the backend's own (temporary files of atomic writes,
    the lock files of compare-and-set writers) and never listed.
    """

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
            if not entry.name.startswith(".") and entry.is_file():
                stat = entry.stat()
                yield entry.name, stat.st_size, stat.st_mtime_ns

    def write(self, path: str, data: bytes, if_absent: bool, if_match: str | None) -> str:
        if if_match is not None:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            # every compare-and-set writer of this key holds its lock file from compare to replace
            with FileLock(target.with_name(f".{target.name}.lock")):
                current = self.stamp(path)
                if current is None:
                    raise StoreConflictError(path, "changed since it was read (it is gone)")
                if current != if_match:
                    raise StoreConflictError(path, "changed since it was read (its stamp differs)")
                self._write(path, data)
        else:
            self._write(path, data, commit=_link_if_absent if if_absent else os.replace)
        return _sha256(data)

    @staticmethod
    def _write(path: str, data: bytes, commit: Any = os.replace) -> None:
        with atomic_path(path, commit=commit) as tmp:
            tmp.write_bytes(data)

    def delete(self, path: str) -> None:
        Path(path).unlink(missing_ok=True)

    def move(self, src: str, dst: str) -> None:
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)


def filesystem(location: str) -> tuple[Any, str]:
    """fsspec's filesystem for ``location`` and the path in it. A remote one never caches
    listings, and is shared per endpoint: fsspec reuses one instance per set of arguments, and
    the endpoint (``AWS_ENDPOINT_URL``: the emulator in tests) is read when it first connects."""
    from fsspec.core import url_to_fs

    if "://" not in location:
        return url_to_fs(location)
    return url_to_fs(location, use_listings_cache=False, endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))


class S3Backend:
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
