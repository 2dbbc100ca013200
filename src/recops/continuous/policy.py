"""The retrain policy: did anything a model depends on change, and does this cycle train?

No Prefect here: :func:`change_report` compares the current data, code and config with the
champion's (and every version's) registry tags and measures drift; :func:`plan_retrain` turns
that into a :class:`RetrainPlan` with every reason. A cycle trains only when something changed
(data fingerprint, code hash, training-config hash), drift, the champion's age or its online
degradation (:mod:`recops.continuous.online`) says so, or when forced; inputs already trained
into a version (the champion, or one the gate rejected) are never trained again, unless forced
or the champion degraded online (a model that serves worse than it tested is trained anew).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from recops.config import Config
from recops.continuous.drift import DriftReport, drift_report
from recops.continuous.online_check import Degradation
from recops.training.lineage import code_hash, config_hash


@dataclass(frozen=True)
class PriorVersion:
    """A version already trained on exactly the current data, code and config."""

    version: int
    gate: str  # its gate decision tag: promoted, rejected, or "not gated"
    is_champion: bool


@dataclass
class ChangeReport:
    fingerprint: str
    code_hash: str
    config_hash: str
    champion_version: int | None = None
    champion_fingerprint: str = ""
    champion_age_hours: float | None = None
    code_changed: bool = False
    config_changed: bool = False
    drift: DriftReport | None = None  # when the data changed and the champion has a profile
    drift_note: str = ""
    trained_as: PriorVersion | None = None
    report_hash: str = ""  # of the report notebook (recops.continuous.report)
    report_stale: int | None = None  # the version whose report another notebook rendered
    online: Degradation | None = None  # the champion's online figure against its baseline

    @property
    def data_changed(self) -> bool:
        return self.champion_version is not None and self.fingerprint != self.champion_fingerprint

    def to_dict(self) -> dict[str, Any]:
        """Plain types, for ``recops retrain --json``."""
        drift = self.drift.to_dict() if self.drift else None
        online = self.online.to_dict() if self.online else None
        return {**asdict(self), "drift": drift, "online": online, "data_changed": self.data_changed}


def _age_hours(since: str) -> float | None:
    try:
        then = datetime.fromisoformat(since)
    except ValueError:
        return None
    return (datetime.now(UTC) - then).total_seconds() / 3600


def change_report(events: pd.DataFrame, fingerprint: str, config: Config, model: str) -> ChangeReport:
    """Compare the current data, code and config with the champion's (and with every version's)."""
    from recops import registry
    from recops.continuous.report import stale_report, template_hash

    report = ChangeReport(fingerprint, code_hash(), config_hash(config, model))
    report.report_hash = template_hash(config)
    versions = registry.list_versions()
    same_inputs = [
        v
        for v in versions
        if v.tags.get("data_fingerprint") == fingerprint
        and v.tags.get("code_hash") == report.code_hash
        and v.tags.get("config_hash") == report.config_hash
    ]
    if same_inputs:
        latest = same_inputs[-1]
        report.trained_as = PriorVersion(
            latest.version, latest.tags.get("gate_decision", "not gated"), latest.is_champion
        )
    champion = next((v for v in versions if v.is_champion), None)
    settled_on = same_inputs[-1] if same_inputs else champion  # the version a skipped cycle keeps
    if settled_on is not None and stale_report(settled_on.tags, report.report_hash):
        report.report_stale = settled_on.version
    if champion is None:
        return report
    report.champion_version = champion.version
    report.champion_fingerprint = champion.tags.get("data_fingerprint", "")
    report.champion_age_hours = _age_hours(champion.tags.get("champion_since", ""))
    report.code_changed = champion.tags.get("code_hash") != report.code_hash
    report.config_changed = champion.tags.get("config_hash") != report.config_hash
    profile = registry.load_data_profile(champion.version)
    if profile is None:
        report.drift_note = f"champion version {champion.version} has no data profile; drift not measured"
    elif report.data_changed:
        report.drift = drift_report(profile, events, config.drift)
    return report


@dataclass(frozen=True)
class RetrainPlan:
    """Whether a cycle trains, and every reason why (or why not)."""

    retrain: bool
    reasons: list[str] = field(default_factory=list)

    def text(self) -> str:
        return ("retrain: " if self.retrain else "skip: ") + "; ".join(self.reasons)


def plan_retrain(
    change: ChangeReport, config: Config, *, force: bool = False, on_new_data: bool | None = None
) -> RetrainPlan:
    """Whether this cycle trains, with every reason (the policy of ``[retrain]``)."""
    on_new_data = config.retrain.on_new_data if on_new_data is None else on_new_data
    degraded = change.online is not None and change.online.degraded
    # degradation retrains the champion's own inputs once; a version trained on them since (and
    # not promoted) already answered it, and another run would only repeat it every hour
    retrain_degraded = degraded and (change.trained_as is None or change.trained_as.is_champion)
    if change.trained_as and not force and not retrain_degraded:
        done = change.trained_as
        verdict = "it is the champion" if done.is_champion else f"gate: {done.gate}"
        reasons = [
            f"data, code and config unchanged since version {done.version} was trained on them "
            f"({verdict}); nothing new to train"
        ]
        if degraded:
            reasons.append(f"{change.online.summary()}, and retraining on these inputs was done")  # type: ignore[union-attr]
        return RetrainPlan(False, reasons)
    reasons = []
    if force and change.trained_as is not None:  # these very inputs were trained into a version
        reasons.append(
            f"forced, on the inputs version {change.trained_as.version} was trained on: the gate "
            "promotes only a model significantly better than the champion, which a retrain on "
            "the same data, code and config rarely is"
        )
    elif force:
        reasons.append("forced")
    if change.champion_version is None:
        reasons.append("no champion yet")
    else:
        if degraded:
            reasons.append(change.online.summary())  # type: ignore[union-attr]
        if change.drift is not None and change.drift.detected:
            reasons.append(change.drift.summary())
        elif change.data_changed and on_new_data:
            reasons.append(f"new data ({change.champion_fingerprint[:19]} -> {change.fingerprint[:19]})")
        if change.code_changed:
            reasons.append("code changed since the champion was trained")
        if change.config_changed:
            reasons.append("training config changed since the champion was trained")
        age, limit = change.champion_age_hours, config.retrain.max_champion_age_hours
        if age is not None and age > limit:
            reasons.append(f"champion is {age:.1f} h old (limit {limit:g} h)")
    if reasons:
        return RetrainPlan(True, reasons)
    why = [f"champion version {change.champion_version} is current"]
    if change.data_changed:
        if change.drift is not None and not change.drift.judged:  # too few or no new events
            why.append(f"data changed but retrain.on_new_data is off ({change.drift.summary()})")
        else:
            detail = f" ({change.drift.summary()})" if change.drift else ""
            why.append(f"data changed but retrain.on_new_data is off and there is no drift{detail}")
    else:
        why.append("data, code and config unchanged")
    if change.champion_age_hours is not None:
        limit = config.retrain.max_champion_age_hours
        why.append(f"champion age {change.champion_age_hours:.1f} h < {limit:g} h")
    return RetrainPlan(False, why)
