"""Moving ``champion``: promote, roll back, and the history kept of it.

Whenever ``champion`` moves to a version, that version gets ``champion_since`` (UTC time),
``promoted_by`` and ``previous_champion`` (the version that held the alias before, absent when
none did), and the move is appended to the champion history (:mod:`recops.registry.history`).
:func:`rollback` steps back through that history, one champion per call: promote A, B, then A
again, and two rollbacks go to B, then to A, then there is nothing left to roll back to.
Neither ``promote`` nor ``rollback`` reinstates a version the gate rejected (its latest
decision) unless forced.

Every move is a compare-and-set (:func:`move_champion`): the caller says which version it
expects to hold ``champion``, and the move is refused when another one does. MLflow has no
atomic alias swap, so the check and the move are two calls; callers that can race (cycles,
``registry promote``, ``rollback``) hold the cycle lock (:mod:`recops.continuous.lock`) around
them, and the check catches a move made by anything that did not.

Crash halfway: a promotion removes the version's ``challenger`` alias, moves ``champion``,
then writes ``previous_champion``, ``champion_since`` and ``promoted_by`` and appends to the
history. A death before ``champion`` moved leaves the old champion and a gate-promoted version
that never became champion, which the next cycle's repair promotes (``recops.continuous.health``);
after it, the champion is right, the history is completed when next read, and only those tags
may be missing (the champion's age then reads as unknown).

A rollback writes the shortened history, moves the alias, then tags the version it left
(``rolled_back_at``/``_to``); a death before the alias moved reads as no rollback at all (run it
again), after it the champion is right and only those two tags are missing.
"""

from __future__ import annotations

from mlflow import MlflowClient

from recops.registry.gate_rules import GateAction
from recops.registry.history import champion_history, write_champion_history
from recops.registry.store import CHALLENGER, CHAMPION, MODEL_NAME, RegistryError, mlflow_client, utc_now
from recops.registry.versions import ModelVersionInfo, alias_map, alias_version, version_info


class ChampionMovedError(RegistryError):
    """The champion is not the version the caller expected: someone else moved it meanwhile."""


ANY_CHAMPION = -1  # expected_champion for a deliberate move from whatever holds the alias now


def move_champion(
    client: MlflowClient, version: int, promoted_by: str, *, expected_champion: int | None
) -> None:
    """Point ``champion`` at ``version`` if it is still at ``expected_champion`` (None: no
    champion), recording who held it before (for rollback)."""
    aliases = alias_map(client)
    current = aliases.get(CHAMPION)
    if expected_champion != ANY_CHAMPION and current != expected_champion:
        raise ChampionMovedError(
            f"champion is version {current} now, not version {expected_champion} as expected: it moved "
            f"meanwhile; version {version} was not promoted"
        )
    if current == version:
        raise RegistryError(f"version {version} is already the champion")
    name, v = MODEL_NAME, str(version)
    if aliases.get(CHALLENGER) == version:
        client.delete_registered_model_alias(name, CHALLENGER)
    client.set_registered_model_alias(name, CHAMPION, v)
    if current is None:
        mv = client.get_model_version(name, v)
        if "previous_champion" in (mv.tags or {}):
            client.delete_model_version_tag(name, v, "previous_champion")
    else:
        client.set_model_version_tag(name, v, "previous_champion", str(current))
    client.set_model_version_tag(name, v, "champion_since", utc_now())
    client.set_model_version_tag(name, v, "promoted_by", promoted_by)
    write_champion_history(client, champion_history(client))  # the read appended the move


def set_alias(alias: str, version: int) -> ModelVersionInfo:
    """Point an alias other than ``champion`` at a version (champion moves only by promote/gate)."""
    if alias == CHAMPION:
        raise RegistryError(
            "champion moves only through the gate, promote(version, force=True) or rollback(), "
            "which record the previous champion"
        )
    with mlflow_client() as client:
        info = version_info(client, version)
        client.set_registered_model_alias(MODEL_NAME, alias, str(info.version))
        return version_info(client, info.version)


def _refuse_unapproved(info: ModelVersionInfo, doing: str) -> None:
    """RegistryError unless the version's latest gate decision is ``promoted``."""
    decision = info.tags.get("gate_decision")
    if decision == GateAction.PROMOTED:
        return
    verdict = f"the gate {decision} it" if decision else "it has not been through the gate"
    raise RegistryError(
        f"will not {doing} version {info.version}: {verdict}. Run `recops registry gate "
        f"--version {info.version}` to compare it with the champion, or pass --force to "
        f"{doing} it without the comparison"
    )


def promote(
    version: int, force: bool = False, expected_champion: int | None = ANY_CHAMPION
) -> ModelVersionInfo:
    """Make ``version`` the champion outside the gate's usual path.

    Without ``force`` only a version the gate approved may be promoted (e.g. to restore it
    after a rollback); ``force=True`` skips the gate and is recorded as ``promoted_by=force``.
    ``expected_champion`` makes it a compare-and-set against the current champion.
    """
    with mlflow_client() as client:
        info = version_info(client, version)
        if not force:
            _refuse_unapproved(info, "promote")
        promoted_by = "force" if force else "promote"
        move_champion(client, info.version, promoted_by, expected_champion=expected_champion)
        return version_info(client, info.version)


def rollback_target() -> int | None:
    """The version :func:`rollback` would make champion (None: nothing to roll back to). It is
    the champion's ``previous_champion`` except after rollbacks: then further back."""
    with mlflow_client() as client:
        if alias_version(client, CHAMPION) is None:
            return None
        history = champion_history(client)
        return history[-2] if len(history) >= 2 else None


def rollback(force: bool = False) -> ModelVersionInfo:
    """Move ``champion`` back to the version that held it before the current one in the champion
    history; returns it. Refuses, unless ``force``, a version whose latest gate decision is
    ``rejected`` (forced in over the gate's rejection, or re-gated and rejected since), as
    :func:`promote` does; one that never went through the gate (promoted by hand before there
    was a gate decision to override) is restored, so that the cycle's repair of a corrupt
    champion can restore it."""
    with mlflow_client() as client:
        current = alias_version(client, CHAMPION)
        if current is None:
            raise RegistryError("there is no champion to roll back")
        history = champion_history(client)
        if len(history) < 2:
            raise RegistryError(
                f"version {current} became champion with no champion before it; nothing to roll back to"
            )
        previous = history[-2]
        try:
            target = version_info(client, previous)
        except RegistryError as exc:
            raise RegistryError(
                f"the previous champion, version {previous}, no longer exists; "
                "promote a version explicitly with `recops registry promote VERSION --force`"
            ) from exc
        if not force and target.tags.get("gate_decision") == GateAction.REJECTED:
            _refuse_unapproved(target, "roll back to")
        if alias_version(client, CHAMPION) != current:  # compare-and-set, as move_champion
            raise ChampionMovedError(f"champion moved from version {current} meanwhile; nothing rolled back")
        write_champion_history(client, history[:-1])
        client.set_registered_model_alias(MODEL_NAME, CHAMPION, str(previous))
        client.set_model_version_tag(MODEL_NAME, str(current), "rolled_back_at", utc_now())
        client.set_model_version_tag(MODEL_NAME, str(current), "rolled_back_to", str(previous))
        return version_info(client, previous)
