"""MovieLens-100k: the official GroupLens archive, or the same ratings from RecBole's wheel.

Every rating is an implicit positive (no threshold, no filtering), as in RecBole and the
SASRec paper. Sources, in the order :func:`load_ml100k` tries them:

1. the data cache (``$RECOPS_HOME/data/ml-100k``), from an earlier fetch;
2. the official archive from files.grouplens.org, checked against its published MD5;
3. ``recbole/dataset_example/ml-100k/ml-100k.inter`` inside the ``recbole==1.2.1`` wheel
   from PyPI (``pip download --no-deps``; RecBole is not installed), checked against the
   SHA-256 below. These are the same 100,000 ratings in the same order as ``u.data``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pandas as pd

from recops.data.schema import DataValidationError
from recops.paths import atomic_path

log = logging.getLogger(__name__)

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
GROUPLENS_MD5 = "0e33842e24a9c977be4e0107933c0723"  # published at ml-100k.zip.md5
RECBOLE_WHEEL = "recbole==1.2.1"
RECBOLE_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"
RECBOLE_INTER_SHA256 = "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff"
DOWNLOAD_TIMEOUT_S = 20


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_u_data(data: bytes) -> pd.DataFrame:
    """Parse GroupLens ``u.data`` (tab-separated user, item, rating, timestamp)."""
    return pd.read_csv(
        io.BytesIO(data), sep="\t", header=None, names=["user_id", "item_id", "rating", "timestamp"]
    )


def read_recbole_inter(data: bytes) -> pd.DataFrame:
    """Parse RecBole's atomic ``.inter`` file (header ``user_id:token item_id:token ...``)."""
    frame = pd.read_csv(io.BytesIO(data), sep="\t")
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


def read_local(path: Path) -> pd.DataFrame:
    """Read ml-100k from a local ``ml-100k.zip``, ``u.data`` or ``ml-100k.inter``."""
    if not path.exists():
        raise DataValidationError(f"ml-100k:{path}: file not found")
    if path.is_dir():
        for name in ("u.data", "ml-100k.inter", "ml-100k.zip"):
            if (path / name).exists():
                return read_local(path / name)
        raise DataValidationError(f"ml-100k:{path}: no u.data, ml-100k.inter or ml-100k.zip inside")
    data = path.read_bytes()
    if path.suffix == ".zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return read_u_data(archive.read("ml-100k/u.data"))
    if path.suffix == ".inter":
        return read_recbole_inter(data)
    return read_u_data(data)


def _atomic_write(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def fetch_grouplens(cache: Path) -> Path:
    """Download the official archive into ``cache`` and verify its MD5."""
    log.info("downloading %s", GROUPLENS_URL)
    import httpx

    try:
        response = httpx.get(GROUPLENS_URL, timeout=DOWNLOAD_TIMEOUT_S, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPError as exc:  # the callers treat an unreachable source as an OSError
        raise OSError(str(exc)) from exc
    data = response.content
    digest = hashlib.md5(data).hexdigest()
    if digest != GROUPLENS_MD5:
        raise DataValidationError(
            f"ml-100k: downloaded archive has MD5 {digest}, expected {GROUPLENS_MD5}; not using it"
        )
    target = cache / "ml-100k.zip"
    _atomic_write(target, data)
    return target


def fetch_recbole_inter(cache: Path) -> Path:
    """Take ``ml-100k.inter`` from the RecBole 1.2.1 wheel on PyPI and verify its SHA-256."""
    log.info("fetching %s from PyPI (ml-100k ratings inside the wheel)", RECBOLE_WHEEL)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "-d",
            tmp,
            RECBOLE_WHEEL,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise DataValidationError(f"ml-100k: could not download {RECBOLE_WHEEL}: {done.stderr.strip()}")
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(RECBOLE_MEMBER)
    digest = _sha256(data)
    if digest != RECBOLE_INTER_SHA256:
        raise DataValidationError(
            f"ml-100k: {RECBOLE_MEMBER} has SHA-256 {digest}, expected {RECBOLE_INTER_SHA256}"
        )
    target = cache / "ml-100k.inter"
    _atomic_write(target, data)
    return target


def load_ml100k(cache: Path, source: str = "auto") -> pd.DataFrame:
    """Return the ml-100k ratings as events (user_id, item_id, rating, timestamp).

    ``source``: ``auto`` (cache, then GroupLens, then the RecBole wheel), ``grouplens``,
    ``recbole`` (the wheel; what the tests and benchmarks use), or a local path.
    """
    if source not in ("auto", "grouplens", "recbole"):
        return read_local(Path(source))
    cache.mkdir(parents=True, exist_ok=True)
    cached = {"grouplens": cache / "ml-100k.zip", "recbole": cache / "ml-100k.inter"}
    for name in ("grouplens", "recbole") if source == "auto" else (source,):
        if cached[name].exists():
            return read_local(cached[name])
    if source in ("auto", "grouplens"):
        try:
            return read_local(fetch_grouplens(cache))
        except OSError as exc:  # timeouts, refused connections, HTTP errors
            if source == "grouplens":
                raise DataValidationError(f"ml-100k: cannot reach {GROUPLENS_URL}: {exc}") from exc
            log.warning("GroupLens unreachable (%s); using the RecBole wheel's copy", exc)
    return read_local(fetch_recbole_inter(cache))


def clear_cache(cache: Path) -> None:
    shutil.rmtree(cache, ignore_errors=True)
