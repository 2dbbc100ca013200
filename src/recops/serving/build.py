"""bento build: ``session_recommender:<tag>`` holding the service, the recops package that scores,
pinned runtime requirements and the model, labelled with its lineage.
"""

from __future__ import annotations

import importlib.metadata
import logging
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recops.paths import REPO_ROOT
from recops.serving.model_store import (
    BENTO_MODEL_NAME,
    BentoError,
    bentoml_deprecations_hidden,
    import_checkpoint,
    label_value,
    lineage_labels,
    lineage_metadata,
    load_bentoml,
)
from recops.training.checkpoint import Checkpoint

log = logging.getLogger(__name__)

SERVICE_NAME = "SessionRecommender"  # the @bentoml.service class


SERVICE_DIR = REPO_ROOT / "bentos" / "session_recommender"


SERVICE_FILES = ("service.py", "bentofile.yaml")


# What the service imports at run time (recops.serving.recommender and what it pulls in, and uvicorn's fast
# event loop and HTTP parser); pinned in the bento's requirements.txt to the versions installed
# here, i.e. those of constraints.txt.
RUNTIME_PACKAGES = ("numpy", "numba", "pandas", "pyarrow", "torch", "uvloop", "httptools")


def _runtime_requirements() -> str:
    lines = []
    for name in RUNTIME_PACKAGES:
        try:
            # a local label (torch "2.13.0+cpu") names a build PyPI does not have; pin the release
            lines.append(f"{name}=={importlib.metadata.version(name).split('+')[0]}")
        except importlib.metadata.PackageNotFoundError:
            lines.append(name)
    return "\n".join(lines) + "\n"


def _stage_build_context(model_tag: str, service_dir: Path, into: Path) -> Path:
    """A build context holding the service, a copy of the ``recops`` package (so the bento
    carries the code that scores) and a bentofile pinned to ``model_tag``."""
    import yaml

    for name in SERVICE_FILES:
        shutil.copy2(service_dir / name, into / name)
    package = Path(__file__).resolve().parents[1]  # the whole recops package
    shutil.copytree(package, into / "recops", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (into / "requirements.txt").write_text(_runtime_requirements())
    bentofile = into / "bentofile.yaml"
    config = yaml.safe_load(bentofile.read_text())
    # The alias makes bentoml.models.get("session_recommender") mean *this* version in the bento.
    config["models"] = [{"tag": model_tag, "alias": BENTO_MODEL_NAME}]
    bentofile.write_text(yaml.safe_dump(config, sort_keys=False))
    return bentofile


def build_bento(
    checkpoint_path: str | Path | None = None,
    alias: str | None = None,
    *,
    version: int | None = None,
    labels: Mapping[str, Any] | None = None,
    service_dir: str | Path | None = None,
) -> str:
    """Import a model and build the bento ``session_recommender:<version>`` that serves it.

    The source is a ``checkpoint.pt`` path, a registry alias (``champion``, ``challenger``) or a
    registry version number, resolved by ``recops.registry.load_checkpoint`` (which verifies the
    checkpoint's sha256). The bento and its model carry the lineage labels. Returns the bento tag.
    """
    if sum(source is not None for source in (checkpoint_path, alias, version)) != 1:
        raise ValueError("give exactly one of a checkpoint path, a registry alias or a registry version")
    service_dir = Path(service_dir or SERVICE_DIR)
    for name in SERVICE_FILES:
        if not (service_dir / name).is_file():
            raise BentoError(f"{service_dir / name} is missing; is {service_dir} the service folder?")
    if alias is not None or version is not None:
        checkpoint, version_info = _load_from_registry(alias if alias is not None else int(version))
        origin = f"alias-{alias}" if alias is not None else f"version-{version}"
        lineage = lineage_labels(checkpoint, version_info, source=origin)
        source: Path | Checkpoint = checkpoint
    else:
        checkpoint, version_info = Checkpoint.load(checkpoint_path), None  # fails early, clearly
        lineage = lineage_labels(checkpoint, source="path")
        source = Path(checkpoint_path)  # type: ignore[arg-type]
    merged = {**lineage, **{k: label_value(v) for k, v in (labels or {}).items()}}
    model_tag = import_checkpoint(source, merged, lineage_metadata(checkpoint, version_info))
    bentoml = load_bentoml()
    with tempfile.TemporaryDirectory(prefix="recops-bento-") as tmp:
        bentofile = _stage_build_context(model_tag, service_dir, Path(tmp))
        with bentoml_deprecations_hidden():  # the build imports service.py, defining its IO models
            bento = bentoml.bentos.build_bentofile(
                str(bentofile), build_ctx=tmp, labels={**merged, "bento_model": label_value(model_tag)}
            )
    log.info("built bento %s serving %s", bento.tag, model_tag)
    return str(bento.tag)


def _load_from_registry(alias_or_version: str | int) -> tuple[Checkpoint, Any]:
    from recops import registry  # imports mlflow: only when a bento is built from the registry

    return registry.load_checkpoint(alias_or_version)


def find_bento(model_version: int | str, model_name: str = "session-recommender") -> str | None:
    """The newest bento in the store that serves registry version ``model_version``, if any."""
    bentoml = load_bentoml()
    wanted = {"model_name": label_value(model_name), "model_version": label_value(model_version)}
    try:
        bentos = bentoml.bentos.list(BENTO_MODEL_NAME)
    except bentoml.exceptions.NotFound:  # no bento of that name built yet
        return None
    matching = [b for b in bentos if all(b.info.labels.get(key) == value for key, value in wanted.items())]
    if not matching:
        return None
    return str(max(matching, key=lambda bento: bento.info.creation_time).tag)
