"""The ML Test Score (Breck et al., "The ML Test Score: A Rubric for ML Production Readiness and
Technical Debt Reduction", IEEE Big Data 2017), judged on the live system's facts.

28 tests in four sections of seven: data, model development, infrastructure, monitoring. Each
test scores 0.5 when it is done by hand and documented, 1 when it is automated and repeated;
the final score is the smallest of the four section sums (a system is as ready as its weakest
area). How each test is judged here:

- **1, automated**: a live fact shows the check ran on this system (a gate tag on the champion,
  the last cycle's record, a Metaflow run), or a test of the suite that CI runs on every pull
  request checks it (``file:line`` and the workflow line).
- **0.5, by hand and documented**: the procedure is in the README or a ``make`` target but
  nothing runs it by itself (a suite test with no CI workflow to run it is this too).
- **0, with the reason**: not done here. Four tests score 0 on any recops system, by design of
  the data: no ablation of the inputs, no inclusion test (the events hold no user attributes),
  no measured impact of staleness, no canary unless shadow mode is on.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from recops.cicd.facts import (
    CI_WORKFLOW,
    Facts,
    Judged,
    ci_runs_the_suite,
    documented,
    retrain_deployments,
    scheduled,
    tested,
    where,
)

SECTIONS = ("data", "model", "infrastructure", "monitoring")
# Breck et al., section V: what a final score means.
READINESS = (
    (0.0, "more of a research project than a productionized system"),
    (1.0, "not totally untested, but there may be serious holes in reliability"),
    (2.0, "a first pass at basic productionization; more investment may be needed"),
    (3.0, "reasonably tested; more of the tests and procedures may be automated"),
    (5.0, "strong levels of automated testing and monitoring, fit for mission-critical systems"),
    (float("inf"), "exceptional levels of automated testing and monitoring"),
)


@dataclass(frozen=True)
class MLTest:
    key: str
    section: str
    title: str
    points: float  # 0, 0.5 or 1
    evidence: str


@dataclass(frozen=True)
class MLTestScore:
    tests: tuple[MLTest, ...]

    @property
    def sections(self) -> dict[str, float]:
        return {s: sum(t.points for t in self.tests if t.section == s) for s in SECTIONS}

    @property
    def score(self) -> float:
        return min(self.sections.values())

    @property
    def readiness(self) -> str:
        return next(text for upper, text in READINESS if self.score <= upper)

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "readiness": self.readiness,
            "sections": self.sections,
            "tests": [asdict(t) for t in self.tests],
        }


def by_test(path: str, test: str, what: str) -> Callable[[Facts], Judged]:
    """A judge that is one test of the suite (:func:`recops.cicd.facts.tested`)."""
    return lambda facts: tested(facts, path, test, what)


def _with(judged: Judged, live: str) -> Judged:
    return (judged[0], f"{judged[1]}; {live}") if live and judged[0] else judged


# --- data ------------------------------------------------------------------------------------


def _schema(facts: Facts) -> Judged:
    judged = tested(
        facts, "tests/unit/test_data.py", "test_schema_errors_name_column_and_rows",
        "the event schema (recops.data.schema) refuses what breaks it, naming column and rows",
    )  # fmt: skip
    run = facts.champion_run()
    validated = run is not None and run["steps"].get("validate")
    return _with(
        judged, f"the champion's run {run['pathspec']} passed its validate step" if validated else ""
    )


def _features_beneficial(facts: Facts) -> Judged:
    return 0.0, (
        "no ablation measures what each input adds (item ids, positions, the history bias); "
        "the tuning flow searches hyperparameters, not inputs"
    )


def _feature_cost(facts: Facts) -> Judged:
    return documented(
        facts, r"recops bench scale", "training and serving cost per catalogue size is measured",
        "no measurement of what the inputs (catalogue size, history length) cost",
    )  # fmt: skip


_meta_requirements = by_test(
    "tests/unit/test_data_contract.py", "test_columns_beyond_the_contract_never_reach_training",
    "only the contract's columns (session, item, time, event type, category) reach a model",
)  # fmt: skip


def _privacy(facts: Facts) -> Judged:
    module = "infra/terraform/modules/s3_bucket/main.tf"
    encrypted = where(facts.root, module, r"aws_s3_bucket_server_side_encryption_configuration")
    private = where(facts.root, module, r"aws_s3_bucket_public_access_block")
    if not (encrypted and private):
        return 0.0, f"the store's bucket ({module}) is not both encrypted and closed to the public"
    scanned = where(facts.root, CI_WORKFLOW, r"run: make infra-check")
    controls = f"data encrypted at rest ({encrypted}), no public access ({private})"
    if scanned:
        return 1.0, f"{controls}; checkov scans every change (make infra-check, {scanned})"
    return 0.5, f"{controls}; scanned by hand (make infra-check)"


_new_features = by_test(
    "tests/e2e/test_promote_flow.py",
    "test_promoted_notebook_runs_as_a_flow_and_gives_the_notebook_result",
    "a notebook's tagged cells become the training flow's steps (recops promote)",
)  # fmt: skip


_feature_code = by_test(
    "tests/unit/test_data.py", "test_split_is_leave_one_out_without_leakage",
    "the input code (readers, sequences, the split) is unit-tested",
)  # fmt: skip


# --- model development -------------------------------------------------------------------------


def _specs_reviewed(facts: Facts) -> Judged:
    commit, config = facts.champion_tag("git_commit"), facts.champion_tag("config_hash")
    if not (commit and config):
        return 0.0, "no champion tagged with the commit and config it was trained from"
    submitted = f"the champion was trained from commit {commit[:12]} with config {config}"
    if ci_runs_the_suite(facts.root):
        return 1.0, f"{submitted}; every change is a pull request CI checks ({CI_WORKFLOW})"
    return 0.5, f"{submitted}; no CI on pull requests: review is by hand"


def _offline_online(facts: Facts) -> Judged:
    pairs = [
        (float(v.tags["test_ndcg_10"]), float(v.tags["online_ndcg_at_10"]))
        for v in facts.versions or []
        if v.tags.get("online_role") == "champion"
        and v.tags.get("test_ndcg_10")
        and v.tags.get("online_ndcg_at_10")
    ]
    if len(pairs) < 3:
        return 0.0, (
            f"online figures as champion on {len(pairs)} version(s): the offline/online correlation needs "
            "three (recops online-report)"
        )
    try:
        r = statistics.correlation(*zip(*pairs, strict=True))
    except statistics.StatisticsError:  # a constant series
        return 0.0, f"{len(pairs)} versions, but their offline or online figures do not vary"
    return 1.0, f"offline vs online NDCG@10 over {len(pairs)} versions: Pearson r = {r:.3f}"


def _tuned(facts: Facts) -> Judged:
    done = [r for r in facts.tuning_runs or [] if r["successful"]]
    if not done:
        return 0.0, "no TuneRecommenderFlow run in this home: the hyperparameters are the config's"
    return 1.0, f"Metaflow run {done[0]['pathspec']} searched them ({len(done)} search(es))"


def _staleness_known(facts: Facts) -> Judged:
    age = facts.config.retrain.max_champion_age_hours if facts.config is not None else None
    return 0.0, (
        f"no measurement of quality against model age: retrain.max_champion_age_hours ({age}) "
        "is a chosen bound, not a measured one"
    )


def _simpler_not_better(facts: Facts) -> Judged:
    if facts.champion is None:
        return 0.0, "no champion"
    figures = facts.champion_tag("gate_baseline_mean_diff")
    versus = (
        f"the gate compared it with {facts.champion_tag('gate_baseline_model')}: NDCG@10 difference {figures}"
        if figures
        else facts.champion_tag("gate_baseline")
    )
    if not versus:
        return 0.0, f"version {facts.champion.version} was never compared with a simple baseline"
    enforced = facts.config is not None and facts.config.gate.require_beat_baseline
    points = 1.0 if enforced else 0.5
    rule = "gate.require_beat_baseline rejects a loser" if enforced else "not enforced: a person reads it"
    return points, f"version {facts.champion.version}: {versus} ({rule})"


def _slices(facts: Facts) -> Judged:
    sliced = facts.champion_tags("gate_slice_")
    if not sliced:
        return 0.0, "the champion carries no per-slice figures (gate_slice_* tags)"
    shown = "; ".join(f"{k.removeprefix('gate_slice_')}={v}" for k, v in list(sliced.items())[:3])
    return 0.5, f"version {facts.champion.version}: {shown}; recorded on every gate, no floor enforces them"


def _inclusion(facts: Facts) -> Judged:
    return 0.0, "the events hold no user attributes (sessions, items, times): no group to test inclusion in"


# --- infrastructure ------------------------------------------------------------------------------


_reproducible = by_test(
    "tests/integration/test_training.py", "test_training_is_deterministic_under_a_seed",
    "two trainings under one seed give the same weights",
)  # fmt: skip


_model_specs_tested = by_test(
    "tests/unit/test_chunked_ce.py", "test_a_models_chunked_training_loss_equals_its_full_one",
    "each model's training code is unit-tested",
)  # fmt: skip


def _pipeline(facts: Facts) -> Judged:
    judged = tested(
        facts, "tests/integration/test_pipeline_level2.py", "test_training_converges_on_a_tiny_slice",
        "the pipeline on a tiny slice (the flow itself: tests/integration/test_train_flow.py)",
    )  # fmt: skip
    done = [r for r in facts.metaflow_runs or [] if r["successful"]]
    return _with(judged, f"{len(done)} successful run(s) here" if done else "")


def _validated(facts: Facts) -> Judged:
    if facts.champion is None:
        return 0.0, "no champion"
    decision = facts.champion_tag("gate_decision")
    if facts.champion_tag("promoted_by") == "gate" and decision == "promoted":
        reason = facts.champion_tag("gate_reason").split(":")[0]
        return 1.0, f"version {facts.champion.version}: the gate promoted it ({reason})"
    return 0.5, f"version {facts.champion.version} was moved by hand (gate decision: {decision or 'none'})"


def _debuggable(facts: Facts) -> Judged:
    return documented(
        facts, r"card get", "a run's steps, curves and report are inspected",
        "no documented way to inspect a run step by step",
    )  # fmt: skip


def _canary(facts: Facts) -> Judged:
    if facts.config is not None and facts.config.gate.require_shadow:
        return 1.0, "gate.require_shadow: a challenger serves in shadow beside the champion before promotion"
    return 0.0, "gate.require_shadow is off: a challenger that passes the offline gate serves at once"


_rollback = by_test(
    "tests/integration/test_reconcile.py",
    "test_promote_and_rollback_change_what_answers_shoppers",
    "a rollback changes what answers shoppers",
)  # fmt: skip


# --- monitoring ----------------------------------------------------------------------------------


def _dependencies(facts: Facts) -> Judged:
    bot = where(facts.root, ".github/dependabot.yml", r"package-ecosystem: .?pip")
    if bot:
        return 1.0, f"{bot}: Dependabot proposes each dependency update as a pull request (runs on GitHub)"
    return documented(
        facts, r"^## Updating dependencies", "the pinned set (constraints.txt) is updated",
        "nothing pins the dependencies or tells of their changes",
    )  # fmt: skip


def _invariants(facts: Facts) -> Judged:
    data = (facts.last_cycle or {}).get("data") or {}
    if not data.get("sources"):
        return 0.0, "no cycle has checked incoming events against the contract"
    quarantined = len((facts.last_cycle or {}).get("quarantined") or [])
    _, serving = tested(
        facts, "tests/integration/test_bento_service.py",
        "test_bad_input_is_a_helpful_4xx_and_the_service_keeps_serving", "the server refuses bad requests",
    )  # fmt: skip
    checked = f"the last cycle checked {len(data['sources'])} source(s) against the contract"
    return 1.0, f"{checked} ({quarantined} quarantined); {serving}"


def _skew(facts: Facts) -> Judged:
    judged = tested(
        facts, "tests/integration/test_bento_service.py",
        "test_live_answers_equal_the_in_process_recommender",
        "the served answers equal the evaluated model's",
    )  # fmt: skip
    deployed = (facts.last_cycle or {}).get("deployed") or {}
    serving = f"version {deployed['deployed_version']} serves, in sync" if deployed.get("in_sync") else ""
    return _with(judged, serving)


def _not_stale(facts: Facts) -> Judged:
    change = (facts.last_cycle or {}).get("change") or {}
    if facts.config is None or change.get("champion_age_hours") is None:
        return 0.0, "no cycle has judged the champion's age"
    limit = facts.config.retrain.max_champion_age_hours
    age = change["champion_age_hours"]
    return 1.0, f"each cycle retrains a champion older than {limit:g} h; the last saw it at {age:.1f} h"


def _numerically_stable(facts: Facts) -> Judged:
    finite = facts.champion_tag("gate_check_finite_scores")
    if not finite:
        return 0.0, "the champion's scores were not checked for NaN or infinity"
    return 1.0, f"version {facts.champion.version}: {finite}"


def _performance(facts: Facts) -> Judged:
    latency = facts.champion_tag("gate_check_latency_p95")
    if not latency:
        return 0.0, "the champion's latency was not measured before promotion"
    return 1.0, f"version {facts.champion.version}: {latency}"


def _quality(facts: Facts) -> Judged:
    online = ((facts.last_cycle or {}).get("change") or {}).get("online")
    if not online:
        return 0.0, "no cycle has compared the champion's online quality with its baseline"
    checking = [d for d in scheduled(retrain_deployments(facts)) if d.name.endswith("drift-check")]
    when = f"hourly ({checking[0].name})" if checking else "by hand (the drift check is not scheduled)"
    points = 1.0 if checking else 0.5
    return points, (
        f"each cycle compares online NDCG@10 with the {online.get('baseline_source')} baseline "
        f"{online.get('baseline')} (retrain below {1 - online.get('max_drop', 0):.0%} of it), {when}"
    )


ML_TESTS: tuple[tuple[str, str, str, Callable[[Facts], Judged]], ...] = (  # key, section, title, judge
    ("feature_expectations_schema", "data", "feature expectations are captured in a schema", _schema),
    ("all_features_beneficial", "data", "all features are beneficial", _features_beneficial),
    ("feature_cost", "data", "no feature's cost is too much", _feature_cost),
    ("meta_level_requirements", "data", "features adhere to meta-level requirements", _meta_requirements),
    ("privacy_controls", "data", "the data pipeline has appropriate privacy controls", _privacy),
    ("new_features_quickly", "data", "new features can be added quickly", _new_features),
    ("feature_code_tested", "data", "all input feature code is tested", _feature_code),
    ("specs_reviewed", "model", "model specs are reviewed and submitted", _specs_reviewed),
    ("offline_online_correlate", "model", "offline and online metrics correlate", _offline_online),
    ("hyperparameters_tuned", "model", "all hyperparameters have been tuned", _tuned),
    ("staleness_impact_known", "model", "the impact of model staleness is known", _staleness_known),
    ("simpler_model_not_better", "model", "a simpler model is not better", _simpler_not_better),
    ("quality_on_slices", "model", "model quality is sufficient on important data slices", _slices),
    ("inclusion", "model", "the model is tested for considerations of inclusion", _inclusion),
    ("training_reproducible", "infrastructure", "training is reproducible", _reproducible),
    ("model_specs_unit_tested", "infrastructure", "model specs are unit tested", _model_specs_tested),
    ("pipeline_integration_tested", "infrastructure", "the ML pipeline is integration tested", _pipeline),
    ("validated_before_serving", "infrastructure", "model quality is validated before serving", _validated),
    ("debuggable", "infrastructure", "the model is debuggable", _debuggable),
    ("canaried", "infrastructure", "models are canaried before serving", _canary),
    ("rollback", "infrastructure", "serving models can be rolled back", _rollback),
    ("dependency_changes", "monitoring", "dependency changes result in notification", _dependencies),
    ("data_invariants", "monitoring", "data invariants hold for inputs", _invariants),
    ("training_serving_skew", "monitoring", "training and serving are not skewed", _skew),
    ("not_stale", "monitoring", "models are not too stale", _not_stale),
    ("numerically_stable", "monitoring", "models are numerically stable", _numerically_stable),
    ("performance_not_regressed", "monitoring", "computing performance has not regressed", _performance),
    ("quality_not_regressed", "monitoring", "prediction quality has not regressed", _quality),
)


def score_tests(facts: Facts) -> MLTestScore:
    return MLTestScore(
        tuple(MLTest(key, section, title, *judge(facts)) for key, section, title, judge in ML_TESTS)
    )
