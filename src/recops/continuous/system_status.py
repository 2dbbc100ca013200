"""`recops status`: desired state (the champion) against actual state (what serving answers
with), the last cycle and its reason, the last drift figures, and any stuck state.

Healthy means: serving answers with the champion (or nothing is deployed because there is no
champion yet) and no stuck state is left. Reads only; nothing here changes a store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recops.continuous.alerts import last_failure, monitoring_store, read_last_cycle
from recops.continuous.health import UNGATED, StuckState, find_stuck
from recops.continuous.lock import current_holder
from recops.serving.deployment import read_deployment
from recops.serving.reconcile import Reconciliation, observe


@dataclass(frozen=True)
class SystemStatus:
    champion: dict[str, Any] | None
    challenger: int | None
    serving: Reconciliation
    deployment: dict[str, Any] | None
    last_cycle: dict[str, Any] | None
    last_failure: dict[str, Any] | None
    lock_holder: dict[str, Any] | None
    stuck: list[StuckState] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.serving.in_sync and not self.stuck

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "champion": self.champion,
            "challenger": self.challenger,
            "serving": self.serving.to_dict(),
            "deployment": self.deployment,
            "last_cycle": self.last_cycle,
            "last_failure": self.last_failure,
            "lock_holder": self.lock_holder,
            "stuck": [s.to_dict() for s in self.stuck],
        }


def system_status() -> SystemStatus:
    """Reads the registry, serving, the lock and the store (``$RECOPS_STORE``, else
    ``$RECOPS_HOME``: this command takes no config) for the last cycle and failure."""
    from recops import registry

    versions = registry.list_versions()
    champion = next((v for v in versions if v.is_champion), None)
    challenger = next((v.version for v in versions if registry.CHALLENGER in v.aliases), None)
    holder = current_holder()
    stuck = find_stuck()
    if holder is not None:  # a cycle is running: its version may not be gated yet
        stuck = [s for s in stuck if s.kind != UNGATED]
    champion_info = None
    if champion is not None:
        tags = champion.tags
        champion_info = {
            "version": champion.version,
            "since": tags.get("champion_since"),
            "promoted_by": tags.get("promoted_by"),
            "test_ndcg_10": tags.get("test_ndcg_10"),
            "data_fingerprint": tags.get("data_fingerprint"),
        }
    monitoring = monitoring_store()
    return SystemStatus(
        champion=champion_info,
        challenger=challenger,
        serving=observe(),
        deployment=read_deployment(),
        last_cycle=read_last_cycle(monitoring),
        last_failure=last_failure(monitoring),
        lock_holder=holder,
        stuck=stuck,
    )


def render(status: SystemStatus) -> str:
    lines = []
    champion = status.champion
    if champion:
        by = f"since {champion['since']}, by {champion['promoted_by']}"
        lines.append(f"champion    version {champion['version']} ({by}, NDCG@10 {champion['test_ndcg_10']})")
    else:
        lines.append("champion    none yet")
    lines.append(f"challenger  {'version ' + str(status.challenger) if status.challenger else 'none'}")
    serving = status.serving
    deployed = status.deployment or {}
    bento = deployed.get("bento_tag") or serving.bento_tag or "nothing"  # a local bento, or an image
    lines.append(f"deployed    {bento} (model version {serving.deployed_version or '-'})")
    shadow = deployed.get("shadow") or {}
    if shadow:
        version = shadow.get("labels", {}).get("model_version", "-")
        lines.append(
            f"shadow      {shadow.get('bento_tag')} (model version {version}; "
            "`recops online-report` compares it)"
        )
    if not serving.services:
        lines.append("serving     no running service (`recops serve` starts one with the deployed bento)")
    for service in serving.services:
        lines.append(f"serving     {service.target} answers with model version {service.model_version}")
    cycle = status.last_cycle
    if cycle:
        lines.append(f"last cycle  {cycle.get('at')}: {cycle.get('outcome')}; {cycle.get('plan')}")
        drift = (cycle.get("change") or {}).get("drift")
        if drift:
            verdict = "detected" if drift["detected"] else "none"
            lines.append(
                f"drift       popularity JS {drift['popularity_js']:.3f}, "
                f"unseen {drift['unseen_share']:.1%}, length JS {drift['length_js']:.3f} ({verdict})"
            )
    else:
        lines.append("last cycle  none recorded")
    if status.last_failure:
        lines.append(
            f"last failure {status.last_failure.get('at')}: {status.last_failure.get('message', '')[:200]}"
        )
    if status.lock_holder:
        lines.append(f"running     {status.lock_holder.get('what')} (pid {status.lock_holder.get('pid')})")
    for state in status.stuck:
        lines.append(f"STUCK       {state.kind} version {state.version}: {state.detail}")
    if not serving.in_sync:
        lines.append(
            f"NOT IN SYNC champion version {serving.desired_version}, deployed {serving.deployed_version}, "
            f"answering {[s.model_version for s in serving.services]}; `recops deploy` reconciles"
        )
    lines.append("healthy" if status.healthy else "unhealthy")
    return "\n".join(lines)
