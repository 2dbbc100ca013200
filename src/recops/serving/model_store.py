"""BentoML's home and model store: a checkpoint imported as model ``session_recommender`` with
its lineage as labels.

BentoML keeps its state under ``BENTOML_HOME``; when that is not set it goes under
``$RECOPS_HOME/bentoml`` with everything else. bentoml is imported inside the functions, after
that variable is settled, so importing this module has no side effects.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from recops.errors import RecopsError
from recops.paths import file_sha256, recops_home
from recops.training.checkpoint import Checkpoint

log = logging.getLogger(__name__)

BENTO_MODEL_NAME = "session_recommender"  # BentoML model *and* bento name


CHECKPOINT_FILE = "checkpoint.pt"


class BentoError(RecopsError):
    """A bento cannot be built or served; the message says why and what to do."""


def bentoml_home() -> Path:
    """``$BENTOML_HOME``, defaulting it to ``$RECOPS_HOME/bentoml``; call before using bentoml.

    Also turns BentoML's usage tracking off unless asked for: the embedded default makes no
    network calls.
    """
    os.environ.setdefault("BENTOML_HOME", str(recops_home() / "bentoml"))
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    home = Path(os.environ["BENTOML_HOME"]).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


@contextlib.contextmanager
def bentoml_deprecations_hidden() -> Iterator[None]:
    """bentoml 1.4.40 calls deprecated pathspec and pydantic APIs when imported and when it loads
    a service (warnings about its own code, shown to every user; nothing for us to act on)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield


def load_bentoml():
    bentoml_home()
    with bentoml_deprecations_hidden():
        import bentoml
        import bentoml.bentos
        import bentoml.exceptions
        import bentoml.models

    return bentoml


_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.\-]+")


def label_value(value: Any) -> str:
    """A label value BentoML and BentoCloud accept: at most 63 of ``[A-Za-z0-9_.-]``."""
    text = _LABEL_VALUE.sub("-", str(value)).strip("-_.")
    return text[:63].strip("-_.") or "none"


LINEAGE_TAGS = ("metaflow_pathspec", "git_commit")  # registry version tags worth a label


def lineage_labels(checkpoint: Checkpoint, version_info: Any = None, source: str = "") -> dict[str, str]:
    """Labels that say which model this is and where it came from.

    ``version_info`` is ``recops.registry.ModelVersionInfo`` when the checkpoint came from the
    MLflow registry (``name``, ``version``, ``run_id``, ``aliases``, ``tags``); without it the
    model is labelled unregistered. Labels hold label-safe short forms (BentoCloud's rule: at
    most 63 of ``[A-Za-z0-9_.-]``); :func:`lineage_metadata` keeps the full values.
    """
    fingerprint = checkpoint.data_fingerprint.split(":")[-1]
    labels = {
        "model_name": getattr(version_info, "name", None) or "unregistered",
        "model_version": getattr(version_info, "version", None) or "none",
        "run_id": getattr(version_info, "run_id", None) or "none",
        "architecture": checkpoint.model_name,
        "dataset": checkpoint.dataset or "unknown",
        "data_fingerprint": fingerprint[:16] or "none",
        "recops_version": checkpoint.recops_version or "unknown",
    }
    aliases = getattr(version_info, "aliases", None)
    if aliases:
        labels["aliases"] = ".".join(sorted(aliases))
    tags = getattr(version_info, "tags", None) or {}
    labels.update({key: tags[key] for key in LINEAGE_TAGS if tags.get(key)})
    if source:
        labels["source"] = source
    return {key: label_value(value) for key, value in labels.items()}


def lineage_metadata(checkpoint: Checkpoint, version_info: Any = None) -> dict[str, Any]:
    """Full lineage for the stored model's metadata: the checkpoint's, plus the registry's."""
    test = checkpoint.metrics.get("test", {})
    metadata: dict[str, Any] = {
        "architecture": checkpoint.model_name,
        "model_config": dict(checkpoint.model_config),
        "n_items": len(checkpoint.vocab),
        "dataset": checkpoint.dataset,
        "data_fingerprint": checkpoint.data_fingerprint,
        "recops_version": checkpoint.recops_version,
        "test_metrics": {k: float(v) for k, v in test.items() if isinstance(v, int | float)},
    }
    if version_info is not None:
        metadata["registry"] = {
            "name": str(version_info.name),
            "version": str(version_info.version),
            "run_id": str(version_info.run_id),
            "aliases": [str(a) for a in getattr(version_info, "aliases", ())],
            "source": str(getattr(version_info, "source", "")),
            "tags": {str(k): str(v) for k, v in (getattr(version_info, "tags", None) or {}).items()},
        }
    return metadata


# What makes two imports the same model: the checkpoint's bytes and the registry version they are.
SAME_MODEL_LABELS = ("model_name", "model_version", "run_id")
CHECKPOINT_DIGEST_KEY = "checkpoint_sha256"  # metadata: the full digest of the file in the model


def import_checkpoint(
    checkpoint: str | Path | Checkpoint,
    labels: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Save a checkpoint into the BentoML model store as ``session_recommender:<version>``, or
    return the model already there with the same checkpoint bytes and registry version.

    ``checkpoint`` is a ``checkpoint.pt`` path (copied byte for byte) or a :class:`Checkpoint`.
    ``labels`` extend and override :func:`lineage_labels`, ``metadata``
    :func:`lineage_metadata`. Returns the model tag. A reused model keeps the labels of its
    first import (how that build was asked for, e.g. ``source``); the bento built on it carries
    this build's. BentoML writes a new model in a temporary folder and moves it into the store
    at the end, so a crash leaves no half model to be reused.
    """
    bentoml = load_bentoml()
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint.load(checkpoint)
    merged = {**lineage_labels(ckpt), **{k: label_value(v) for k, v in (labels or {}).items()}}
    with tempfile.TemporaryDirectory(prefix="recops-import-") as tmp:
        source = Path(tmp) / CHECKPOINT_FILE
        if isinstance(checkpoint, Checkpoint):
            checkpoint.save(source)
        else:
            shutil.copyfile(checkpoint, source)
        digest = file_sha256(source)
        existing = _same_model(bentoml, digest, merged)
        if existing is not None:
            log.info("reusing %s: the same checkpoint (%s) and registry version", existing, digest[:19])
            return existing
        meta = {**lineage_metadata(ckpt), **(metadata or {}), CHECKPOINT_DIGEST_KEY: digest}
        with bentoml.models.create(name=BENTO_MODEL_NAME, labels=merged, metadata=meta) as model:
            shutil.copyfile(source, model.path_of(CHECKPOINT_FILE))
    log.info("imported %s into the BentoML model store (%s)", model.tag, bentoml_home())
    return str(model.tag)


def _same_model(bentoml: Any, digest: str, labels: Mapping[str, str]) -> str | None:
    """The newest model in the store holding these checkpoint bytes for this registry version."""
    try:
        models = bentoml.models.list(BENTO_MODEL_NAME)
    except bentoml.exceptions.NotFound:
        return None
    same = [
        m
        for m in models
        if m.info.metadata.get(CHECKPOINT_DIGEST_KEY) == digest
        and all(m.info.labels.get(key) == labels.get(key) for key in SAME_MODEL_LABELS)
        and Path(m.path_of(CHECKPOINT_FILE)).is_file()
    ]
    return str(max(same, key=lambda m: m.info.creation_time).tag) if same else None
