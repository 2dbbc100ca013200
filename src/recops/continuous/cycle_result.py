"""What one continuous-training cycle did (:class:`CycleResult`), as ``recops retrain --json``
prints it, as the ``retrain-summary`` artifact shows it (:func:`summary_markdown`) and as
`recops status` reads it back (:func:`record_cycle`). No Prefect here: the flow
(:mod:`recops.continuous.flow`) builds the result, this module only describes it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from recops.config import Config
from recops.continuous.alerts import write_last_cycle
from recops.continuous.health import StuckState
from recops.continuous.inputs import DataSnapshot
from recops.continuous.policy import ChangeReport, RetrainPlan
from recops.continuous.quarantine import Quarantined
from recops.continuous.training_run import TrainedRun
from recops.serving.reconcile import Reconciliation


class CycleOutcome(StrEnum):
    SKIPPED = "skipped"
    PROMOTED = "retrained, promoted"
    REJECTED = "retrained, rejected"
    SHADOW = "retrained, in shadow"  # passed offline; the online check decides (gate.require_shadow)
    BUSY = "skipped, another cycle holds the lock"


@dataclass(frozen=True)
class CycleResult:
    """What one cycle did: its inputs, the change it saw, its plan, and what training, the gate
    and the deploy produced (None for the steps it did not reach)."""

    outcome: CycleOutcome
    plan: RetrainPlan
    data: DataSnapshot | None = None  # None: the cycle never got the lock
    change: ChangeReport | None = None
    trained: TrainedRun | None = None
    bento_tag: str | None = None
    deployed: Reconciliation | None = None
    repairs: list[StuckState] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    report_refreshed: int | None = None  # the version whose report was re-rendered

    @property
    def champion_before(self) -> int | None:
        return self.change.champion_version if self.change else None

    def to_dict(self) -> dict[str, Any]:
        """Plain types, for ``recops retrain --json``."""
        trained = None
        if self.trained is not None:
            trained = {**asdict(self.trained), "gate": self.trained.gate.to_dict()}
        return {
            "outcome": self.outcome.value,
            "plan": self.plan.text(),
            "data": asdict(self.data) if self.data else None,
            "change": self.change.to_dict() if self.change else None,
            "champion_before": self.champion_before,
            "trained": trained,
            "bento_tag": self.bento_tag,
            "deployed": self.deployed.to_dict() if self.deployed else None,
            "repairs": [state.to_dict() for state in self.repairs],
            "quarantined": [asdict(q) for q in self.quarantined],
            "report_refreshed": self.report_refreshed,
        }


def summary_markdown(result: CycleResult) -> str:
    lines = [f"# recops retrain: {result.outcome.value}", "", f"**Plan:** {result.plan.text()}", ""]
    lines += ["| | |", "|---|---|"]
    for bad in result.quarantined:
        lines.append(f"| quarantined | `{bad.file}`: {bad.reason} |")
    for state in result.repairs:
        lines.append(f"| repair | {state.kind} version {state.version}: {state.repaired or 'not repaired'} |")
    if result.data is not None:
        data = result.data
        lines.append(f"| data | {data.n_events} events from {', '.join(data.sources)} |")
        lines.append(f"| fingerprint | `{data.fingerprint}` |")
    lines.append(f"| champion before | {result.champion_before or 'none'} |")
    drift = result.change.drift if result.change else None
    if drift:
        verdict = "detected: " + ", ".join(drift.drifted) if drift.detected else "none detected"
        lines.append(
            f"| drift | popularity JS {drift.popularity_js:.3f}, unseen {drift.unseen_share:.1%}, "
            f"length JS {drift.length_js:.3f} over {drift.new_events} {drift.window} events; {verdict} |"
        )
    online = result.change.online if result.change else None
    if online is not None:
        lines.append(f"| online | {online.summary()} |")
    trained = result.trained
    if trained:
        metrics = trained.metrics
        lines.append(f"| Metaflow run | `{trained.pathspec}` |")
        lines.append(
            f"| test metrics | NDCG@10 {metrics['ndcg@10']:.4f}, HR@10 {metrics['hr@10']:.4f}, "
            f"MRR@10 {metrics['mrr@10']:.4f} |"
        )
        lines.append(f"| registered | version {trained.model_version} |")
        lines.append(f"| gate | {trained.gate.action.value}: {trained.gate.reason} |")
        if trained.step_cache:
            saved = trained.step_cache
            cost = "" if saved.get("cost_saved") is None else f", ${saved['cost_saved']:.4f}"
            lines.append(
                f"| step cache | reused {', '.join(saved['hits']) or 'nothing'}; "
                f"saved {saved['seconds_saved']:.1f} s{cost} |"
            )
    if result.report_refreshed is not None:
        version = result.report_refreshed
        lines.append(f"| report | the report notebook changed: version {version}'s report re-rendered |")
    if result.deployed:
        served = ", ".join(f"{s.target}: version {s.model_version}" for s in result.deployed.services)
        lines.append(
            f"| serving | champion {result.deployed.desired_version}, bento `{result.deployed.bento_tag}`; "
            f"{served or 'no local server running'} |"
        )
    return "\n".join(lines) + "\n"


def record_cycle(result: CycleResult, flow_run_id: str, config: Config | None = None) -> None:
    """The last cycle's result, for `recops status` (replaced whole: old or new, never half)."""
    record = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "flow_run_id": flow_run_id,
        **result.to_dict(),
    }
    write_last_cycle(record, config)
