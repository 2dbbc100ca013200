"""Google's MLOps maturity levels, judged on the live system's facts (recops.cicd.facts).

Google's levels (Google Cloud, "MLOps: Continuous delivery and automation pipelines in machine
learning"): level 0 is manual; level 1 needs every characteristic of continuous training; level
2 adds CI and CD of the pipeline and monitoring that triggers the next run.
"""

from __future__ import annotations

import json
import re

from recops.cicd.facts import (
    TRAINING_FLOW,
    Facts,
    LevelRubric,
    ci_runs_the_suite,
    retrain_deployments,
    scheduled,
    where,
)
from recops.paths import recops_home

LINEAGE = ("git_commit", "data_fingerprint", "metaflow_pathspec")
TRIGGERS = re.compile(r"drift|new data|degrad|changed|older than", re.I)


def orchestrated(facts: Facts) -> tuple[bool, str]:
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
        if where(facts.root, f"infra/terraform/envs/{e}/main.tf", r'source\s*=\s*"\.\./\.\."')
    ]
    if envs != ["dev", "prod"]:
        return False, "infra/terraform/envs/dev and prod do not both instantiate the root module"
    return True, (
        "prefect.yaml and prefect.ecs.yaml run the same flow, parameters and schedules "
        f"({where(facts.root, 'prefect.ecs.yaml', 'entrypoint')}); "
        "dev and prod instantiate one module "
        f"({where(facts.root, 'infra/terraform/envs/prod/main.tf', 'source')})"
    )


def _continuous_training(facts: Facts) -> tuple[bool, str]:
    cycle = facts.last_cycle or {}
    if not str(cycle.get("outcome", "")).startswith("retrained") or not TRIGGERS.search(
        str(cycle.get("plan", ""))
    ):
        return False, "no retraining cycle on a trigger recorded (monitoring/last_cycle.json)"
    deployed = retrain_deployments(facts)
    firing = scheduled(deployed)
    if deployed and not firing:
        return False, "every retrain deployment's schedule is paused: nothing triggers the next cycle"
    run = f"Prefect flow run {cycle.get('flow_run_id')} at {cycle.get('at')}"
    evidence = f"{run}: {cycle['outcome']} ({cycle['plan'][:90]})"
    if firing:
        evidence += f"; scheduled: {', '.join(d.name for d in firing)}"
    return True, evidence


def _data_validation(facts: Facts) -> tuple[bool, str]:
    if facts.champion is None:
        return False, "no champion whose training run could show a validation"
    run = facts.champion_run()
    if run is None or not run["steps"].get("validate"):
        pathspec = facts.champion_tag("metaflow_pathspec") or "(none)"
        return False, f"the champion's training run {pathspec} has no successful validate step"
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
    deployed = retrain_deployments(facts)
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


def ci(facts: Facts) -> tuple[bool, str]:
    line = ci_runs_the_suite(facts.root)
    if not line:
        return False, "no CI workflow runs the test suite on pull requests (.github/workflows/ci.yml)"
    return True, f"{line}: the whole suite on every pull request (its runs are on GitHub, not read here)"


def _cd(facts: Facts) -> tuple[bool, str]:
    deploy = where(facts.root, ".github/workflows/release.yml", r"make cd-prefect-deploy")
    serve = where(facts.root, ".github/workflows/release.yml", r"make cd-deploy")
    trigger = where(facts.root, ".github/workflows/cd.yml", r"branches: \[main\]")
    if not (deploy and serve and trigger):
        return False, "no CD workflow deploys the pipeline and the model on merge (.github/workflows/cd.yml)"
    workflow = f"{trigger} -> {deploy} (pipeline), {serve} (model)"
    if not facts.provenance:  # a workflow that never released is a plan, not CD
        return False, f"defined ({workflow}), but no release is recorded in this store: CD never ran here"
    last = facts.provenance[-1]
    commit = str(last.links.get("git_commit", "?"))[:12]
    return True, f"{workflow}; last release {last.released_at} to {last.stack} (commit {commit})"


def _monitoring(facts: Facts) -> tuple[bool, str]:
    drift = where(facts.root, "prefect.yaml", r"retrain_on_new_data: false")
    if not drift:
        return False, "no deployment checks drift without new data (prefect.yaml)"
    deployed = [d for d in retrain_deployments(facts) if d.name.endswith("hourly-drift-check")]
    if deployed and all(d.paused for d in deployed):
        return False, "the drift check's deployment is paused"
    cycle = facts.last_cycle or {}
    seen = (
        f"; the last cycle: {cycle['plan'][:80]}"
        if re.search(r"drift|degrad", str(cycle.get("plan", "")))
        else ""
    )
    alerts = (
        "a failed cycle alerts the webhook"
        if facts.webhook
        else "a failed cycle is recorded in the store, no webhook set ([retrain] webhook_url)"
    )
    return (
        True,
        f"{drift}: hourly drift check, a drifted or degraded champion starts a retraining{seen}; {alerts}",
    )


GOOGLE: LevelRubric = (
    ("orchestrated_pipeline", 1, "orchestrated experiment pipeline", orchestrated),
    ("same_pipeline_dev_prod", 1, "the same pipeline in development and production", _same_pipeline),
    ("continuous_training", 1, "continuous training on triggers", _continuous_training),
    ("data_validation", 1, "data validation", _data_validation),
    ("model_validation", 1, "model validation against production", _model_validation),
    ("metadata_store", 1, "ML metadata store", _metadata),
    ("pipeline_deployed", 1, "the pipeline deployed, not the model alone", _pipeline_deployed),
    ("ci", 2, "CI of the pipeline", ci),
    ("cd", 2, "CD of the pipeline and the model", _cd),
    ("monitoring_triggers", 2, "monitoring that triggers the next run", _monitoring),
)
