"""Content digests for the step cache (recops.pipeline.cache) and its audit: of values
(artifacts), of the library environment, and of the data files a parameter names."""

from __future__ import annotations

import collections.abc
import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Any

from recops.paths import REPO_ROOT

# names in artifacts whose values measure time, not content: left out of audit digests
VOLATILE = re.compile(r"(^|_)(seconds|duration|elapsed|started|finished|created|timestamp|time)(_|$)")


def stable_digest(value: Any) -> str:
    """A content digest that is equal for equal values, across processes: tensors and arrays by
    their bytes, frames by pandas' row hashes, dataclasses and objects by their fields; keys that
    name a duration or a time (``seconds``, ``created_at``...) are left out, so that what the
    audit compares is what a step computed, not when or how fast."""
    digest = hashlib.sha256()
    _feed(digest, value, depth=0)
    return digest.hexdigest()[:20]


def _feed(digest: Any, value: Any, depth: int) -> None:
    update = digest.update
    if depth > 50:
        raise ValueError("stable_digest: value nested more than 50 levels (a cycle?)")
    module = type(value).__module__
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, collections.abc.Mapping):
        update(b"{")
        for key in sorted(value, key=repr):
            if isinstance(key, str) and VOLATILE.search(key):
                continue
            _feed(digest, key, depth + 1)
            _feed(digest, value[key], depth + 1)
        update(b"}")
    elif isinstance(value, (list, tuple)):
        update(f"[{len(value)}".encode())
        for item in value:
            _feed(digest, item, depth + 1)
        update(b"]")
    elif isinstance(value, (set, frozenset)):
        _feed(digest, sorted(value, key=repr), depth + 1)
    elif module.startswith("torch") and hasattr(value, "detach"):
        tensor = value.detach().cpu().contiguous()
        update(f"tensor:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        update(tensor.view(-1).view(__import__("torch").uint8).numpy().tobytes() if tensor.numel() else b"")
    elif module.startswith("numpy") and hasattr(value, "dtype"):
        import numpy as np

        array = np.asarray(value)
        if array.dtype == object:
            _feed(digest, array.tolist(), depth + 1)
        else:
            update(f"array:{array.dtype}:{array.shape}".encode() + np.ascontiguousarray(array).tobytes())
    elif module.startswith("pandas"):
        import pandas as pd

        update(f"pandas:{type(value).__name__}:{getattr(value, 'shape', '')}".encode())
        if isinstance(value, pd.DataFrame):
            update(repr([(str(c), str(t)) for c, t in value.dtypes.items()]).encode())
        update(pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        update(f"dc:{type(value).__qualname__}".encode())
        _feed(digest, {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, depth + 1)
    elif hasattr(value, "model_dump"):  # pydantic
        update(f"pydantic:{type(value).__qualname__}".encode())
        _feed(digest, value.model_dump(), depth + 1)
    elif hasattr(value, "__dict__") and not callable(value):
        update(f"obj:{type(value).__qualname__}".encode())
        _feed(digest, vars(value), depth + 1)
    else:
        import pickle

        update(b"pickle:" + pickle.dumps(value, protocol=4))


def short_sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:20]


def environment_hash() -> str:
    """The library versions: ``constraints.txt`` when the project has one, else every installed
    distribution's name and version (an installed package or a container without the repo)."""
    constraints = REPO_ROOT / "constraints.txt"
    if constraints.is_file():
        return "constraints:" + short_sha(constraints.read_bytes())
    from importlib.metadata import distributions

    names = sorted(f"{d.metadata['Name']}=={d.version}" for d in distributions())
    return "installed:" + short_sha("\n".join(names).encode())


_FILE_DIGESTS: dict[Path, str | None] = {}


def file_sha(path: Path) -> str | None:
    if path not in _FILE_DIGESTS:
        if not path.is_file():
            _FILE_DIGESTS[path] = None
        else:
            with path.open("rb") as handle:
                _FILE_DIGESTS[path] = hashlib.file_digest(handle, "sha256").hexdigest()[:20]
    return _FILE_DIGESTS[path]


DATA_KINDS = ("csv", "parquet", "ml-100k")


def data_fingerprint(value: Any) -> str | None:
    """For a parameter naming files of events (``csv:PATH``, ``parquet:s3://bucket/x/*.parquet``,
    ``ml-100k:PATH``), a digest of those files: content for local files, ETag (else size and
    mtime) for remote ones. None for any other value. A step that loads a dataset itself is
    keyed on the data, not only on its name."""
    if not isinstance(value, str):
        return None
    kind, _, location = value.partition(":")
    if kind not in DATA_KINDS or not location or location == "recbole" or location == "auto":
        return None
    from recops.data.sources import matching_files

    digest = hashlib.sha256()
    for name, info in matching_files(location):
        if "://" in name:
            stamp = info.get("ETag") or info.get("etag") or f"{info.get('size')}:{info.get('LastModified')}"
        else:
            stamp = file_sha(Path(name)) or "missing"
        digest.update(f"{name}\0{stamp}\0".encode())
    return digest.hexdigest()[:20]
