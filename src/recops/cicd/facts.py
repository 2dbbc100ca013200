"""What `recops maturity` judges: the live system's own metadata, read once.

The MLflow registry (versions, aliases, lineage and gate tags, online figures), Metaflow's runs
of the training and tuning flows, Prefect's deployments and flow runs (its API, or the
temporary API over RECOPS_HOME's history), the store's last-cycle and provenance records, the
config the scheduled cycles run with (and their alert settings), and the checkout: its commit,
workflows, deploy files and tests. Whatever cannot be read is None, with the reason in
``notes``; the rubrics (recops.cicd.google_levels, microsoft_levels, ml_test_score) judge these
facts and nothing else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recops.errors import RecopsError
from recops.paths import REPO_ROOT, recops_home

TRAINING_FLOW = "TrainRecommenderFlow"
TUNING_FLOW = "TuneRecommenderFlow"
CI_WORKFLOW = ".github/workflows/ci.yml"


@dataclass(frozen=True)
class Item:
    """One characteristic of a level: passed or not, with the evidence or the reason."""

    key: str
    level: int
    title: str
    passed: bool
    evidence: str


@dataclass
class Facts:
    """What the live system says, read once; each value None when it could not be read (why in notes)."""

    root: Path = REPO_ROOT
    versions: list[Any] | None = None
    champion: Any = None
    metaflow_runs: list[dict[str, Any]] | None = None
    tuning_runs: list[dict[str, Any]] | None = None
    last_cycle: dict[str, Any] | None = None
    provenance: list[Any] | None = None
    prefect: Any = None  # recops.continuous.status.StatusReport
    config: Any = None  # recops.config.Config of the scheduled cycles
    git_commit: str | None = None  # the checkout's HEAD
    webhook: bool = False  # failed cycles POST to a webhook ($RECOPS_WEBHOOK_URL, [retrain] webhook_url)
    notes: dict[str, str] = field(default_factory=dict)

    def champion_tag(self, key: str) -> str:
        return str(self.champion.tags.get(key) or "") if self.champion is not None else ""

    def champion_run(self) -> dict[str, Any] | None:
        """The champion's training run among the Metaflow runs read (its tag names the run)."""
        pathspec = self.champion_tag("metaflow_pathspec")
        return next(
            (r for r in self.metaflow_runs or [] if pathspec and pathspec.startswith(r["pathspec"])), None
        )

    def champion_tags(self, prefix: str) -> dict[str, str]:
        tags = self.champion.tags if self.champion is not None else {}
        return {key: str(value) for key, value in tags.items() if key.startswith(prefix)}


def line_of(path: Path, pattern: str) -> int | None:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if re.search(pattern, line):
            return number
    return None


def where(root: Path, relative: str, pattern: str) -> str | None:
    """``relative:line`` of the first line of ``root/relative`` matching ``pattern``, or None."""
    path = root / relative
    if not path.is_file():
        return None
    number = line_of(path, pattern)
    return f"{relative}:{number}" if number else None


def ci_runs_the_suite(root: Path) -> str | None:
    """Where the CI workflow runs the whole test suite on pull requests, or None."""
    if not where(root, CI_WORKFLOW, r"^\s*pull_request:"):
        return None
    return where(root, CI_WORKFLOW, r"run: (\.ci/run|make test\b)")


# An ML test judged: points (0, 0.5 or 1) and the evidence or the reason.
Judged = tuple[float, str]


def tested(facts: Facts, path: str, test: str, what: str) -> Judged:
    """A test of the suite checks ``what``: 1 when CI runs the suite on every pull request, 0.5
    when only a person does (``make test``), 0 when the test is not there."""
    line = where(facts.root, path, rf"def {test}\b")
    if not line:
        return 0.0, f"no test {test} in {path}: {what} is not checked"
    ci = ci_runs_the_suite(facts.root)
    if ci:
        return 1.0, f"{line}: {what}; CI runs it on every pull request ({ci})"
    return 0.5, f"{line}: {what}; run by hand (`make test`): no CI workflow runs the suite"


def documented(facts: Facts, pattern: str, what: str, missing: str) -> Judged:
    """A procedure a person follows, as the README documents it: 0.5, or 0 with ``missing``."""
    line = where(facts.root, "README.md", pattern)
    return (0.5, f"{what}, by hand ({line})") if line else (0.0, missing)


# A report does not wait out MLflow's retries on a registry that is down (7 tries with exponential
# backoff, two requests: 4 minutes measured): one retry, a 30 s timeout, then the reason is noted.
# A user's own settings of these win.
FAIL_FAST = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


@contextlib.contextmanager
def _registry_fails_fast() -> Iterator[None]:
    unset = [name for name in FAIL_FAST if name not in os.environ]
    os.environ.update({name: FAIL_FAST[name] for name in unset})
    retries = logging.getLogger("urllib3.connectionpool")  # a WARNING line per retry
    level = retries.level
    retries.setLevel(logging.ERROR)
    try:
        yield
    finally:
        retries.setLevel(level)
        for name in unset:
            os.environ.pop(name, None)


def read_facts(root: Path = REPO_ROOT, *, prefect: bool = True) -> Facts:
    """Read the registry, Metaflow, the store and (``prefect``) Prefect; what fails is noted."""
    from recops.pipeline.steps import git_commit

    facts = Facts(root=root)
    commit = git_commit(root)
    facts.git_commit = None if commit == "unknown" else commit
    try:
        from recops import registry

        with _registry_fails_fast():
            facts.versions = registry.list_versions()
        facts.champion = next((v for v in facts.versions if v.is_champion), None)
    except RecopsError as exc:
        facts.notes["registry"] = str(exc)
    facts.metaflow_runs = _metaflow_runs(TRAINING_FLOW, facts.notes)
    facts.tuning_runs = _metaflow_runs(TUNING_FLOW, facts.notes)
    try:
        from recops.continuous.alerts import read_last_cycle

        facts.last_cycle = read_last_cycle()
    except RecopsError as exc:
        facts.notes["store"] = str(exc)
    try:
        from recops.cicd.provenance import releases

        facts.provenance = releases()
    except RecopsError as exc:
        facts.notes["provenance"] = str(exc)
    facts.config = _cycle_config(root, facts.notes)
    if facts.config is not None:
        from recops.continuous.alerts import webhook_url

        facts.webhook = bool(webhook_url(config=facts.config))
    if prefect:
        facts.prefect = _prefect(root, facts.notes)
    return facts


def _cycle_config(root: Path, notes: dict[str, str]) -> Any:
    """The config the scheduled cycles run with: the nightly deployment's ``config_path``
    parameter, else the built-in defaults (the flow's own default)."""
    from recops.config import load_config
    from recops.continuous.schedules import load_deployments

    try:
        specs = load_deployments(root / "prefect.yaml") if (root / "prefect.yaml").is_file() else []
        paths = [s.parameters.get("config_path") for s in specs if s.entrypoint.endswith(":retrain")]
        path = next((p for p in paths if p), None)
        return load_config(root / path if path else None)
    except RecopsError as exc:
        notes["config"] = str(exc)
        return None


def _metaflow_runs(flow: str, notes: dict[str, str]) -> list[dict[str, Any]] | None:
    from metaflow import Flow, metadata, namespace
    from metaflow.exception import MetaflowNotFound

    # this home's runs, even where Metaflow was imported under another RECOPS_HOME (its root is
    # read once, at import: a long-lived process or a test worker)
    from metaflow.metaflow_config import DEFAULT_METADATA

    if DEFAULT_METADATA == "local":  # a metadata service (the cloud profile) needs no pointing
        root = Path(os.environ.get("METAFLOW_DATASTORE_SYSROOT_LOCAL") or recops_home())
        if not (root / ".metaflow").is_dir():
            return []  # no flow has run under this home
        metadata(f"local@{root}")
    namespace(None)
    try:
        runs = list(Flow(flow).runs())
    except MetaflowNotFound:
        return []
    except Exception as exc:  # a datastore that cannot be read: say so, judge nothing on it
        notes["metaflow"] = f"{flow} runs not readable: {exc}"
        return None
    found = []
    for run in runs[:20]:  # newest first
        steps = {step.id: bool(step.task and step.task.successful) for step in reversed(list(run))}
        found.append({"pathspec": run.pathspec, "successful": run.successful, "steps": steps})
    return found


def _prefect(root: Path, notes: dict[str, str]) -> Any:
    from recops.continuous.prefect_server import prefect_history
    from recops.paths import use_local_prefect_home

    use_local_prefect_home()  # before Prefect reads its settings
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url and not prefect_history():
        notes["prefect"] = "no Prefect API and no Prefect history under RECOPS_HOME"
        return None
    from recops.continuous.status import status

    try:
        return status(prefect_yaml=root / "prefect.yaml")
    except RecopsError as exc:
        notes["prefect"] = str(exc)
        return None


def retrain_deployments(facts: Facts) -> list[Any]:
    """The Prefect deployments of the retrain flow (the API names them ``retrain/<name>``)."""
    return [d for d in facts.prefect.deployments if d.name.startswith("retrain/")] if facts.prefect else []


def scheduled(deployments: list[Any]) -> list[Any]:
    """Those whose schedule would fire: not paused, with an active schedule."""
    return [d for d in deployments if not d.paused and any(s.active for s in d.schedules)]


# A levelled rubric's entries: key, level, title, and the judge (passed, evidence or reason).
LevelRubric = tuple[tuple[str, int, str, Callable[["Facts"], tuple[bool, str]]], ...]
