"""Where the embedded default keeps its state: everything under one root, RECOPS_HOME."""

from __future__ import annotations

import os
from pathlib import Path


def recops_home() -> Path:
    """The state root (``$RECOPS_HOME``, default ``.recops`` in the working directory).

    Not created here: callers create the sub-folder they write to.
    """
    return Path(os.environ.get("RECOPS_HOME", ".recops")).resolve()


def data_cache_dir() -> Path:
    return recops_home() / "data"


def runs_dir() -> Path:
    return recops_home() / "runs"
