"""States a crash can leave in the registry, found and repaired before a cycle decides anything.

Idempotency keys on a *completed* gate decision (a ``gate_decision`` tag), so a half-finished
registration can never make later cycles skip forever. What a crash can leave, and the repair:

- ``ungated``: a version registered but never gated (the process died between register and
  gate), and never made champion by hand either. Repair: gate it now; it is promoted or
  rejected like any challenger.
- ``promoted_not_champion``: a version the gate tagged ``promoted`` whose alias move never
  happened (died between the tag and the move), while the champion is still the one it was
  compared against. Repair: finish the move (compare-and-set against that champion).
- ``corrupt_champion``: the champion's stored checkpoint no longer matches the sha256 recorded
  at registration. Repair: roll back to the previous champion when its checkpoint is intact;
  otherwise it stays reported (alert and `recops status`) until a person acts.

:func:`find_stuck` only reads; :func:`repair_stuck` must run under the cycle lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from recops.config import GateConfig

log = logging.getLogger(__name__)

UNGATED = "ungated"
PROMOTED_NOT_CHAMPION = "promoted_not_champion"
CORRUPT_CHAMPION = "corrupt_champion"


@dataclass(frozen=True)
class StuckState:
    kind: str
    version: int
    detail: str
    repaired: str = ""  # what the repair did; empty: not repaired

    def to_dict(self) -> dict[str, object]:
        return self.__dict__.copy()


def find_stuck(verify_champion: bool = True) -> list[StuckState]:
    """Every stuck state in the registry now (reads only; downloads the champion's checkpoint to
    verify its checksum unless ``verify_champion`` is off)."""
    from recops import registry

    versions = registry.list_versions()
    champion = next((v for v in versions if v.is_champion), None)
    stuck = []
    for v in versions:
        decision = v.tags.get("gate_decision")
        if decision is None and not v.is_champion and "champion_since" not in v.tags:
            stuck.append(
                StuckState(UNGATED, v.version, f"version {v.version} was registered but never gated")
            )
        elif (
            decision == "promoted"
            and not v.is_champion
            and "rolled_back_at" not in v.tags
            and "champion_since" not in v.tags
            and v.tags.get("gate_champion_version", "") == (str(champion.version) if champion else "")
        ):
            stuck.append(
                StuckState(
                    PROMOTED_NOT_CHAMPION,
                    v.version,
                    f"the gate promoted version {v.version} over "
                    f"{'version ' + str(champion.version) if champion else 'no champion'}, "
                    "but the champion alias never moved",
                )
            )
    if verify_champion and champion is not None:
        problem = _checkpoint_problem(champion.version)
        if problem:
            stuck.append(StuckState(CORRUPT_CHAMPION, champion.version, problem))
    return stuck


def _checkpoint_problem(version: int) -> str:
    from recops import registry

    try:
        registry.load_checkpoint(version)
    except registry.CorruptCheckpointError as exc:
        return str(exc)
    return ""


def repair_stuck(gate_config: GateConfig) -> list[StuckState]:
    """Find every stuck state and repair what can be repaired; returns them with what was done.
    Call under the cycle lock."""
    from recops import registry

    results = []
    for state in find_stuck():
        try:
            results.append(_repair(state, gate_config, registry))
        except registry.RegistryError as exc:
            log.error("cannot repair %s of version %s: %s", state.kind, state.version, exc)
            results.append(state)
    return results


def _repair(state: StuckState, gate_config: GateConfig, registry) -> StuckState:
    if state.kind == UNGATED:
        decision = registry.gate(state.version, gate_config)
        return replace(state, repaired=f"gated now: {decision.action.value}")
    if state.kind == PROMOTED_NOT_CHAMPION:
        gated_against = registry.get_version(state.version).tags.get("gate_champion_version", "")
        registry.promote(state.version, expected_champion=int(gated_against) if gated_against else None)
        return replace(state, repaired=f"champion moved to version {state.version}, as the gate decided")
    if state.kind == CORRUPT_CHAMPION:
        previous = registry.rollback_target()  # the champion history's, further back after rollbacks
        if previous is not None and not _checkpoint_problem(previous):
            registry.rollback()  # a gate-rejected one is refused: the state stays reported
            return replace(state, repaired=f"rolled back to version {previous}, whose checkpoint is intact")
    return state
