"""Microsoft's MLOps maturity levels 0-4, judged on the live system's facts (recops.cicd.facts).

Microsoft, Azure Architecture Center, "Machine Learning operations maturity model": level 0 no
MLOps; 1 DevOps but no MLOps (automated builds and tests of the application code, version
control); 2 automated training (training automated, tracked and managed; recurring training;
managed environments; releases still manual); 3 automated model deployment (automatic
releases, traceability from deployment back to the data, A/B testing of model performance,
tests of each model release); 4 full MLOps automated operations (retraining triggered by
production metrics, verbose metrics from the deployed model, policy-based promotion).

Only the technical characteristics are judged: the model's "people" columns (who works with
whom) cannot be read off a system's metadata. Characteristics Google's rubric judges the same
way reuse its judge.
"""

from __future__ import annotations

import json
import re

from recops.cicd import google_levels as google
from recops.cicd.facts import Facts, LevelRubric, retrain_deployments, scheduled, where

ENVIRONMENT_FILES = ("constraints.txt", "infra/docker/training/Dockerfile")


def _version_control(facts: Facts) -> tuple[bool, str]:
    if not facts.git_commit:
        return False, f"{facts.root} is not a git checkout: the code is not under version control"
    return True, f"git: the checkout is at commit {facts.git_commit[:12]}"


def _tracked(facts: Facts) -> tuple[bool, str]:
    scored = [v for v in facts.versions or [] if v.tags.get("test_ndcg_10") and v.run_id]
    if not scored:
        return False, facts.notes.get("registry", "no registered version carries its run's test metrics")
    v = scored[-1]
    return True, (
        f"MLflow: {len(scored)} version(s) with their run's metrics; version {v.version} "
        f"(run {v.run_id[:12]}): test NDCG@10 {v.tags['test_ndcg_10']}"
    )


def _managed(facts: Facts) -> tuple[bool, str]:
    if facts.champion is None:
        return False, facts.notes.get("registry", "no version holds the champion alias")
    return True, (
        f"MLflow registry: {len(facts.versions or [])} version(s), champion alias on version "
        f"{facts.champion.version} (promoted by {facts.champion_tag('promoted_by') or 'hand'})"
    )


def _recurring(facts: Facts) -> tuple[bool, str]:
    firing = scheduled(retrain_deployments(facts))
    if not firing:
        return False, facts.notes.get("prefect", "no retrain deployment with an active schedule in Prefect")
    return True, "Prefect: " + ", ".join(f"{d.name} ({d.id[:8]})" for d in firing)


def _environments(facts: Facts) -> tuple[bool, str]:
    missing = [name for name in ENVIRONMENT_FILES if not (facts.root / name).is_file()]
    if missing:
        return False, f"no {', '.join(missing)}: the training environment is not defined in the checkout"
    pins = where(facts.root, "constraints.txt", r"^torch==")
    image = where(facts.root, ENVIRONMENT_FILES[1], r"^FROM ")
    return True, f"pinned dependency set ({pins}) and the training image ({image})"


def _released_automatically(facts: Facts) -> tuple[bool, str]:
    deployed = (facts.last_cycle or {}).get("deployed") or {}
    if deployed.get("in_sync") and any(a.startswith("deployed ") for a in deployed.get("actions", [])):
        cycle = facts.last_cycle or {}
        return True, (
            f"Prefect flow run {cycle.get('flow_run_id')}: the cycle deployed version "
            f"{deployed.get('desired_version')} as {deployed.get('bento_tag')} itself, after its gate"
        )
    if facts.provenance:
        last = facts.provenance[-1]
        return True, f"CD release recorded at {last.released_at} to {last.stack}"
    return False, "no cycle deployed a model by itself and no CD release is recorded"


def _traceable(facts: Facts) -> tuple[bool, str]:
    deployed = (facts.last_cycle or {}).get("deployed") or {}
    version = str(deployed.get("deployed_version") or "")
    found = next((v for v in facts.versions or [] if str(v.version) == version), None)
    if found is None:
        return False, "no deployed version recorded by a cycle: nothing to trace back"
    links = {k: found.tags.get(k) for k in ("metaflow_pathspec", "data_fingerprint", "git_commit")}
    missing = [k for k, value in links.items() if not value]
    if missing:
        return False, f"deployed version {version} lacks {', '.join(missing)}"
    return True, (
        f"bento {deployed.get('bento_tag')} -> version {version} -> run {links['metaflow_pathspec']} -> "
        f"data {links['data_fingerprint'][:19]} at commit {links['git_commit'][:12]}"
    )


def _ab_tested(facts: Facts) -> tuple[bool, str]:
    shadowed = [v for v in facts.versions or [] if any(k.startswith("shadow_") for k in v.tags)]
    if shadowed:
        v = shadowed[-1]
        return True, f"version {v.version} was compared with the champion online, in shadow"
    if facts.config is not None and facts.config.gate.require_shadow:
        return True, "gate.require_shadow: a passing challenger is compared online, in shadow, first"
    return False, (
        "gate.require_shadow is off and no version ran in shadow: challengers are compared with the "
        "champion offline (paired bootstrap), not on live traffic"
    )


def _release_tests(facts: Facts) -> tuple[bool, str]:
    checks = facts.champion_tags("gate_check_")
    if not checks:
        return False, "the champion carries no behavioural checks of its release (gate_check_* tags)"
    names = ", ".join(k.removeprefix("gate_check_") for k in checks)
    return (
        True,
        f"version {facts.champion.version}: {len(checks)} behavioural checks before its release ({names})",
    )


def _production_triggers(facts: Facts) -> tuple[bool, str]:
    plan = str((facts.last_cycle or {}).get("plan", ""))
    if not re.search(r"drift|degrad", plan):
        return False, "no cycle has retrained on drift or degradation seen in production"
    checking = [d for d in scheduled(retrain_deployments(facts)) if d.name.endswith("drift-check")]
    if not checking:
        return False, "the drift check is not scheduled: production signals start nothing"
    return True, f"last cycle: {plan[:90]}; checked by {checking[0].name}"


def _deployed_metrics(facts: Facts) -> tuple[bool, str]:
    online = facts.champion_tags("online_")
    if not online.get("online_ndcg_at_10"):
        return False, "the champion carries no online figures from the served lists (online_* tags)"
    return True, (
        f"version {facts.champion.version}: online NDCG@10 {online['online_ndcg_at_10']} over "
        f"{online.get('online_pairs')} answers ({online.get('online_window')})"
    )


def _policy_promotion(facts: Facts) -> tuple[bool, str]:
    if facts.champion_tag("promoted_by") != "gate":
        return False, "the champion was not promoted by the gate's policy"
    history = json.loads(facts.champion_tag("gate_history") or "[]")
    reason = str(history[-1].get("reason", ""))[:80] if history else ""
    return True, f"version {facts.champion.version} promoted by the gate ([gate] policy): {reason}"


MICROSOFT: LevelRubric = (
    ("version_control", 1, "version control for code", _version_control),
    ("automated_builds_and_tests", 1, "automated builds and tests of the code", google.ci),
    ("automated_training", 2, "automated model training", google.orchestrated),
    ("training_tracked", 2, "centralized tracking of training performance", _tracked),
    ("model_management", 2, "model management", _managed),
    ("recurring_training", 2, "scheduled or event-driven recurring training", _recurring),
    ("managed_environments", 2, "managed environments", _environments),
    ("automatic_release", 3, "releases low friction and automatic", _released_automatically),
    ("traceable_to_data", 3, "traceability from deployment back to the data", _traceable),
    ("ab_testing", 3, "A/B testing of model performance for deployment", _ab_tested),
    ("release_tests", 3, "tests for each model release", _release_tests),
    ("production_triggers", 4, "retraining triggered by production metrics", _production_triggers),
    ("deployed_metrics", 4, "verbose, centralized metrics from the deployed model", _deployed_metrics),
    ("policy_promotion", 4, "policy-based automated model promotion", _policy_promotion),
)
