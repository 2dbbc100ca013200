"""`recops maturity`: the live system scored against Google's MLOps maturity levels.

Every characteristic is judged from the system's own metadata, never from a questionnaire: the
MLflow registry (versions, aliases, lineage tags, gate decisions), Metaflow's runs, Prefect's
deployments and flow runs (its API, or the temporary API over RECOPS_HOME's history), the
store's last-cycle record and provenance records, the deployment record, and the workflow and
deployment files of the checkout. Each item passes or fails with its evidence (a run id, a
version, a file and line) or the reason it fails.

Google's levels (Google Cloud, "MLOps: Continuous delivery and automation pipelines in machine
learning"): level 0 is manual; level 1 needs every characteristic of continuous training; level
2 adds CI and CD of the pipeline and monitoring that triggers the next run. (Microsoft's levels
and the ML Test Score follow in the next part of issue 18.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recops.errors import RecopsError
from recops.paths import REPO_ROOT, recops_home

TRAINING_FLOW = "TrainRecommenderFlow"
LINEAGE = ("git_commit", "data_fingerprint", "metaflow_pathspec")
TRIGGERS = re.compile(r"drift|new data|degrad|changed|older than", re.I)


@dataclass(frozen=True)
class Item:
    """One characteristic: passed or not, with the evidence or the reason."""

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
    last_cycle: dict[str, Any] | None = None
    provenance: list[Any] | None = None
    prefect: Any = None  # recops.continuous.status.StatusReport
    notes: dict[str, str] = field(default_factory=dict)


def _line(path: Path, pattern: str) -> int | None:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if re.search(pattern, line):
            return number
    return None


def _where(root: Path, relative: str, pattern: str) -> str | None:
    path = root / relative
    if not path.is_file():
        return None
    number = _line(path, pattern)
    return f"{relative}:{number}" if number else None


def read_facts(root: Path = REPO_ROOT, *, prefect: bool = True) -> Facts:
    """Read the registry, Metaflow, the store and (``prefect``) Prefect; what fails is noted."""
    facts = Facts(root=root)
    try:
        from recops import registry

        facts.versions = registry.list_versions()
        facts.champion = next((v for v in facts.versions if v.is_champion), None)
    except RecopsError as exc:
        facts.notes["registry"] = str(exc)
    facts.metaflow_runs = _metaflow_runs(facts.notes)
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
    if prefect:
        facts.prefect = _prefect(root, facts.notes)
    return facts


def _metaflow_runs(notes: dict[str, str]) -> list[dict[str, Any]] | None:
    import os

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
        runs = list(Flow(TRAINING_FLOW).runs())
    except MetaflowNotFound:
        return []
    except Exception as exc:  # a datastore that cannot be read: say so, judge nothing on it
        notes["metaflow"] = f"{TRAINING_FLOW} runs not readable: {exc}"
        return None
    found = []
    for run in runs[:20]:  # newest first
        steps = {step.id: bool(step.task and step.task.successful) for step in reversed(list(run))}
        found.append({"pathspec": run.pathspec, "successful": run.successful, "steps": steps})
    return found


def _prefect(root: Path, notes: dict[str, str]) -> Any:
    from prefect.settings import get_current_settings

    from recops.paths import prefect_home, use_local_prefect_home

    use_local_prefect_home()
    if not get_current_settings().api.url and not any(prefect_home().glob("*.db")):
        notes["prefect"] = "no Prefect API and no Prefect history under RECOPS_HOME"
        return None
    from recops.continuous.status import status

    try:
        return status(prefect_yaml=root / "prefect.yaml")
    except RecopsError as exc:
        notes["prefect"] = str(exc)
        return None


# --- Google's levels -------------------------------------------------------------------------


def _orchestrated(facts: Facts) -> tuple[bool, str]:
    if facts.metaflow_runs is None:
        return False, facts.notes.get("metaflow", "Metaflow runs not readable")
    done = [r for r in facts.metaflow_runs if r["successful"]]
    if not done:
        return False, f"no successful {TRAINING_FLOW} run in Metaflow's datastore ({recops_home()}/.metaflow)"
    steps = " -> ".join(done[0]["steps"])
    return True, f"Metaflow run {done[0]['pathspec']} ({steps}); {len(done)} successful run(s)"


def _same_pipeline(facts: Facts) -> tuple[bool, str]:
    from recops.cicd.specs import prefect_files

    problems = prefect_files(facts.root)
    if problems:
        return False, problems[0]
    envs = [
        e
        for e in ("dev", "prod")
        if _where(facts.root, f"infra/terraform/envs/{e}/main.tf", r'source\s*=\s*"\.\./\.\."')
    ]
    if envs != ["dev", "prod"]:
        return False, "infra/terraform/envs/dev and prod do not both instantiate the root module"
    return True, (
        "prefect.yaml and prefect.ecs.yaml run the same flow, parameters and schedules "
        f"({_where(facts.root, 'prefect.ecs.yaml', 'entrypoint')}); "
        "dev and prod instantiate one module "
        f"({_where(facts.root, 'infra/terraform/envs/prod/main.tf', 'source')})"
    )


def _deployments(facts: Facts) -> list[Any]:
    return [d for d in facts.prefect.deployments if d.name.startswith("retrain/")] if facts.prefect else []


def _continuous_training(facts: Facts) -> tuple[bool, str]:
    cycle = facts.last_cycle or {}
    if not str(cycle.get("outcome", "")).startswith("retrained") or not TRIGGERS.search(
        str(cycle.get("plan", ""))
    ):
        return False, "no retraining cycle on a trigger recorded (monitoring/last_cycle.json)"
    deployed = _deployments(facts)
    scheduled = [d for d in deployed if not d.paused and any(s.active for s in d.schedules)]
    if deployed and not scheduled:
        return False, "every retrain deployment's schedule is paused: nothing triggers the next cycle"
    run = f"Prefect flow run {cycle.get('flow_run_id')} at {cycle.get('at')}"
    evidence = f"{run}: {cycle['outcome']} ({cycle['plan'][:90]})"
    if scheduled:
        evidence += f"; scheduled: {', '.join(d.name for d in scheduled)}"
    return True, evidence


def _data_validation(facts: Facts) -> tuple[bool, str]:
    if facts.champion is None:
        return False, "no champion whose training run could show a validation"
    pathspec = facts.champion.tags.get("metaflow_pathspec", "")
    run = next((r for r in facts.metaflow_runs or [] if pathspec.startswith(r["pathspec"])), None)
    if run is None or not run["steps"].get("validate"):
        return False, f"the champion's training run {pathspec or '(none)'} has no successful validate step"
    return (
        True,
        f"{run['pathspec']}/validate passed (data expectations); incoming files checked by the data contract",
    )


def _model_validation(facts: Facts) -> tuple[bool, str]:
    if facts.champion is None:
        return False, "no champion: no gate decision to show"
    history = json.loads(facts.champion.tags.get("gate_history") or "[]")
    if not history:
        return False, f"version {facts.champion.version} became champion without a gate decision"
    last = history[-1]
    return (
        True,
        f"version {facts.champion.version}: gate {last.get('action')}: {str(last.get('reason'))[:100]}",
    )


def _metadata(facts: Facts) -> tuple[bool, str]:
    if not facts.versions:
        return False, facts.notes.get("registry", "no registered model version")
    tagged = [v for v in facts.versions if all(v.tags.get(k) for k in LINEAGE)]
    if not tagged:
        return False, f"no version carries the lineage tags {', '.join(LINEAGE)}"
    v = tagged[-1]
    return True, f"MLflow: version {v.version} {', '.join(f'{k}={v.tags[k][:16]}' for k in LINEAGE)}"


def _pipeline_deployed(facts: Facts) -> tuple[bool, str]:
    deployed = _deployments(facts)
    if not deployed:
        return False, facts.notes.get("prefect", "no deployment of the retrain flow in the Prefect API")
    served = [d for d in deployed if d.readiness == "READY"]
    polled = (
        f"served now ({', '.join(d.work_pool or 'a runner' for d in served)})"
        if served
        else "nothing polls their runs now: `recops schedule serve` or a worker of their pool runs them"
    )
    names = ", ".join(f"{d.name} ({d.id[:8]})" for d in deployed)
    return True, f"Prefect ({facts.prefect.api_source}): {names}; {polled}"


def _ci(facts: Facts) -> tuple[bool, str]:
    where = _where(facts.root, ".github/workflows/ci.yml", r"run: (\.ci/run|make test\b)")
    if not where:
        return False, "no CI workflow runs the test suite (.github/workflows/ci.yml)"
    return True, f"{where}: the whole suite on every pull request (its runs are on GitHub, not read here)"


def _cd(facts: Facts) -> tuple[bool, str]:
    deploy = _where(facts.root, ".github/workflows/release.yml", r"make cd-prefect-deploy")
    serve = _where(facts.root, ".github/workflows/release.yml", r"make cd-deploy")
    trigger = _where(facts.root, ".github/workflows/cd.yml", r"branches: \[main\]")
    if not (deploy and serve and trigger):
        return False, "no CD workflow deploys the pipeline and the model on merge (.github/workflows/cd.yml)"
    workflow = f"{trigger} -> {deploy} (pipeline), {serve} (model)"
    if not facts.provenance:  # a workflow that never released is a plan, not CD
        return False, f"defined ({workflow}), but no release is recorded in this store: CD never ran here"
    last = facts.provenance[-1]
    commit = str(last.links.get("git_commit", "?"))[:12]
    return True, f"{workflow}; last release {last.released_at} to {last.stack} (commit {commit})"


def _monitoring(facts: Facts) -> tuple[bool, str]:
    drift = _where(facts.root, "prefect.yaml", r"retrain_on_new_data: false")
    if not drift:
        return False, "no deployment checks drift without new data (prefect.yaml)"
    deployed = [d for d in _deployments(facts) if d.name.endswith("hourly-drift-check")]
    if deployed and all(d.paused for d in deployed):
        return False, "the drift check's deployment is paused"
    cycle = facts.last_cycle or {}
    seen = (
        f"; the last cycle: {cycle['plan'][:80]}"
        if re.search(r"drift|degrad", str(cycle.get("plan", "")))
        else ""
    )
    return True, f"{drift}: hourly drift check, a drifted or degraded champion starts a retraining{seen}"


GOOGLE: tuple[tuple[str, int, str, Callable[[Facts], tuple[bool, str]]], ...] = (
    ("orchestrated_pipeline", 1, "orchestrated experiment pipeline", _orchestrated),
    ("same_pipeline_dev_prod", 1, "the same pipeline in development and production", _same_pipeline),
    ("continuous_training", 1, "continuous training on triggers", _continuous_training),
    ("data_validation", 1, "data validation", _data_validation),
    ("model_validation", 1, "model validation against production", _model_validation),
    ("metadata_store", 1, "ML metadata store", _metadata),
    ("pipeline_deployed", 1, "the pipeline deployed, not the model alone", _pipeline_deployed),
    ("ci", 2, "CI of the pipeline", _ci),
    ("cd", 2, "CD of the pipeline and the model", _cd),
    ("monitoring_triggers", 2, "monitoring that triggers the next run", _monitoring),
)


@dataclass(frozen=True)
class Score:
    level: int
    items: tuple[Item, ...]
    notes: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "google": {"level": self.level, "items": [asdict(i) for i in self.items]},
            "notes": self.notes,
        }


def score(facts: Facts) -> Score:
    items = tuple(Item(key, level, title, *judge(facts)) for key, level, title, judge in GOOGLE)
    level = 0
    for candidate in (1, 2):
        if all(i.passed for i in items if i.level <= candidate):
            level = candidate
    return Score(level, items, dict(facts.notes))


def render(result: Score) -> str:
    lines = [
        f"## Google's MLOps maturity: level {result.level}",
        "",
        "| level | characteristic | | evidence |",
        "|---|---|---|---|",
    ]
    for item in result.items:
        mark = "pass" if item.passed else "FAIL"
        lines.append(f"| {item.level} | {item.title} | {mark} | {item.evidence.replace('|', '/')} |")
    if result.notes:
        lines += ["", *[f"- {name}: {text}" for name, text in result.notes.items()]]
    return "\n".join(lines)
