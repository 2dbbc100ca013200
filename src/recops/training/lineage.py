"""What a trained model depends on, as hashes: the code and the training config.

With the data fingerprint these decide whether a continuous-training cycle has anything new to
train on (recops.continuous.flow): the same data, code and config would train the same model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from recops.config import Config
from recops.paths import REPO_ROOT

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the recops package
TRAINING_FLOW = REPO_ROOT / "flows" / "train_recommender.py"


def code_hash() -> str:
    """sha256 over the recops package's Python sources (and the training flow, when present).

    Unlike a git commit it changes only with the code that trains and scores, and it exists in
    an installed package or a container too.
    """
    digest = hashlib.sha256()
    files = sorted(PACKAGE_DIR.rglob("*.py"))
    if TRAINING_FLOW.is_file():
        files.append(TRAINING_FLOW)
    for path in files:
        name = path.relative_to(PACKAGE_DIR).as_posix() if path.is_relative_to(PACKAGE_DIR) else path.name
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return "sha256:" + digest.hexdigest()[:16]


def config_hash(config: Config, model: str) -> str:
    """sha256 of the config sections that shape the model: data, train and the model's own."""
    tree = config.to_dict()
    relevant = {"model": model, "data": tree["data"], "train": tree["train"], model: tree[model]}
    return "sha256:" + hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]
