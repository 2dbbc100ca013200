"""Provenance: one record per release, linking what shipped to where it came from.

    git commit -> pipeline image digest -> Prefect deployment versions -> model version and alias
      -> bento tag -> serving image digest -> the Terraform apply

CD's last step (``make cd-record``, ``recops provenance --record``) collects the links from the
release's build folder (``infra/.build/cd/<env>/``: the digests, the bento tag, the apply's log,
which ``infra/cd.sh`` leaves there), the registry, the local deployment record and the Prefect
API, and writes them as one object, ``provenance/<utc>-<commit>.json`` in the store (a folder or
S3, :mod:`recops.store`). The write is whole or nothing and never replaces a record, so a crash
leaves the release unrecorded, never half recorded (recording again writes it). A link that
could not be found is recorded as missing, with why: a chain is never completed by guessing.

``recops provenance [VERSION]`` prints the newest release of that model version (default: the
champion); for a version no release recorded (a local run, the embedded default) it prints the
chain as it can be read now, from the registry and the deployment record, naming every missing
link.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recops.errors import RecopsError
from recops.paths import REPO_ROOT
from recops.store import open_store

PREFIX = "provenance"
# The chain, in order: key, what a person calls it
LINKS = (
    ("git_commit", "git commit"),
    ("pipeline_image", "pipeline image"),
    ("prefect_deployments", "Prefect deployments"),
    ("model", "model version"),
    ("bento", "bento"),
    ("serving_image", "serving image"),
    ("terraform_apply", "terraform apply"),
)
APPLY_LINE = re.compile(r"^Apply complete! Resources: .*$", re.M)


class ProvenanceError(RecopsError):
    """No release or model version to show, or a record that cannot be read."""


@dataclass(frozen=True)
class Release:
    """One release: each link's value, or its absence and why (``missing``)."""

    released_at: str
    stack: str
    links: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    recorded: bool = False  # read from a record (True) or read off the live system now (False)

    @property
    def model_version(self) -> int | None:
        model = self.links.get("model") or {}
        return int(model["version"]) if "version" in model else None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "recorded"}


def _read(folder: Path | None, name: str) -> str | None:
    if folder is None or not (folder / name).is_file():
        return None
    return (folder / name).read_text().strip() or None


def _model(version: int | None) -> dict[str, Any]:
    from recops import registry

    info = registry.get_version(version if version is not None else registry.CHAMPION)
    return {
        "name": info.name,
        "version": info.version,
        "aliases": list(info.aliases),
        "run_id": info.run_id,
        "git_commit": info.tags.get("git_commit", ""),
        "metaflow_run": info.tags.get("metaflow_pathspec", ""),
    }


def _prefect_deployments(prefect_file: Path) -> dict[str, Any]:
    """Each deployment of ``prefect_file`` as the Prefect API has it now: id, version, updated."""
    from prefect import get_client

    from recops.continuous.schedules import load_deployments

    found = {}
    with get_client(sync_client=True) as client:
        for spec in load_deployments(prefect_file):
            deployment = client.read_deployment_by_name(spec.full_name)  # flow/deployment
            found[spec.name] = {
                "id": str(deployment.id),
                "version": deployment.version,
                "updated": deployment.updated.isoformat() if deployment.updated else None,
            }
    return found


def _prefect_api() -> str:
    """The Prefect API to read, as `recops schedule status` chooses it: $PREFECT_API_URL (or a
    profile's), else the server of a running `recops schedule serve`, else Prefect's temporary
    API over RECOPS_HOME's Prefect history when there is one; "" when there is nothing to read."""
    from recops.paths import use_local_prefect_home

    use_local_prefect_home()  # before Prefect reads its settings
    from prefect.settings import PREFECT_API_URL

    from recops.continuous.prefect_server import prefect_history, running_local_server
    from recops.continuous.status import TEMPORARY_API

    if api := PREFECT_API_URL.value() or running_local_server():
        return api
    return TEMPORARY_API if prefect_history() else ""


def collect(
    stack: str,
    build_dir: Path | None = None,
    version: int | None = None,
    prefect_file: Path | None = None,
    commit: str | None = None,
) -> Release:
    """The chain of ``version`` (default: the champion) as it can be read now."""
    from recops.serving.build import find_bento
    from recops.serving.deployment import read_deployment

    links: dict[str, Any] = {}
    missing: dict[str, str] = {}
    try:
        model = _model(version)
        links["model"] = model
    except RecopsError as exc:
        model = {}
        missing["model"] = f"no model version to release: {exc}"
    commit = commit or os.environ.get("GITHUB_SHA") or model.get("git_commit") or ""
    if commit and commit != "unknown":
        links["git_commit"] = commit
    else:
        missing["git_commit"] = "not known: no GITHUB_SHA, and the model version has no git_commit tag"
    if image := _read(build_dir, "training-image"):
        links["pipeline_image"] = image
    else:
        missing["pipeline_image"] = "no pipeline image was built for this release (make cd-image-training)"
    from recops.continuous.prefect_server import use_prefect_api
    from recops.continuous.status import TEMPORARY_API

    api = _prefect_api()
    if prefect_file is not None and api:
        try:
            with use_prefect_api(api) if api != TEMPORARY_API else contextlib.nullcontext():
                links["prefect_deployments"] = _prefect_deployments(prefect_file)
        except Exception as exc:  # an API that refuses or lacks a deployment: say which
            missing["prefect_deployments"] = f"not read from {api}: {exc}"
    else:
        missing["prefect_deployments"] = (
            "no Prefect API to read (PREFECT_API_URL unset, no `recops schedule serve` running, no Prefect "
            "history under RECOPS_HOME), or no prefect file"
        )
    bento = _read(build_dir, "bento-tag")
    if bento is None and model:
        deployed = read_deployment() or {}  # what the local server answers with, if it is this version
        if str(deployed.get("labels", {}).get("model_version", "")) == str(model["version"]):
            bento = deployed.get("bento_tag")
        bento = bento or find_bento(model["version"])
    if bento:
        links["bento"] = bento
    else:
        missing["bento"] = "no bento built for this model version (recops bento build --alias champion)"
    if image := _read(build_dir, "bento-image"):
        links["serving_image"] = image
    else:
        missing["serving_image"] = "no serving image was pushed for this release (make cd-image-bento)"
    applied = _read(build_dir, "apply.log")
    if applied and (line := APPLY_LINE.search(applied)):
        links["terraform_apply"] = {"stack": stack, "result": line.group(0)}
    else:
        missing["terraform_apply"] = "no terraform apply in this release (make cd-apply)"
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return Release(released_at=now, stack=stack, links=links, missing=missing)


def record(release: Release) -> str:
    """Write the release as one new object in the store; returns its key."""
    commit = str(release.links.get("git_commit", "unknown"))[:12]
    stamp = release.released_at.replace("-", "").replace(":", "").replace("+0000", "Z")
    key = f"{PREFIX}/{stamp}-{release.stack}-{commit}.json"
    open_store().write_text(key, json.dumps(release.to_dict(), indent=2, sort_keys=True), if_absent=True)
    return key


def releases() -> list[Release]:
    """Every recorded release, oldest first."""
    store = open_store()
    found = []
    for entry in store.list(PREFIX, suffixes=(".json",)):
        try:
            data = json.loads(store.read_text(entry.key))
        except (OSError, ValueError) as exc:
            raise ProvenanceError(f"{store.url(entry.key)}: not a readable release record: {exc}") from exc
        found.append(Release(**data, recorded=True))
    return sorted(found, key=lambda r: r.released_at)


def chain(version: int | None = None) -> Release:
    """The newest recorded release of ``version`` (default: the champion), else its live chain."""
    from recops import registry

    recorded = [r for r in releases() if version is not None and r.model_version == version]
    if recorded:
        return recorded[-1]
    try:  # a version that exists (or the champion), or a clear error: no chain of nothing
        version = registry.get_version(registry.CHAMPION if version is None else version).version
    except RecopsError as exc:
        raise ProvenanceError(f"no provenance to show: {exc}") from exc
    recorded = [r for r in releases() if r.model_version == version]
    if recorded:
        return recorded[-1]
    local = REPO_ROOT / "prefect.yaml"  # what `recops schedule deploy|serve` registers here
    return collect("local", version=version, prefect_file=local if local.is_file() else None)


def render(release: Release) -> str:
    head = (
        f"release of {release.released_at} to {release.stack}"
        if release.recorded
        else "no release recorded for this version: the chain as it reads now"
    )
    lines = [head]
    for key, label in LINKS:
        value = release.links.get(key)
        if value is None:
            shown = f"MISSING: {release.missing.get(key, 'not recorded')}"
        elif key == "model":
            aliases = f" ({', '.join(value['aliases'])})" if value.get("aliases") else ""
            shown = f"{value['name']} version {value['version']}{aliases}, run {value['run_id']}"
            if value.get("metaflow_run"):
                shown += f", trained by {value['metaflow_run']}"
        elif key == "prefect_deployments":
            shown = "; ".join(f"{name} version {d['version']} ({d['id']})" for name, d in value.items())
        elif key == "terraform_apply":
            shown = f"{value['stack']}: {value['result']}"
        else:
            shown = str(value)
        lines.append(f"  {label:<20} {shown}")
    return "\n".join(lines)
