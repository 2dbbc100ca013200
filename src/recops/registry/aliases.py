"""Moving ``champion``: promote, roll back, and the history kept in version tags.

Whenever ``champion`` moves to a version, that version gets ``champion_since`` (UTC time) and
``previous_champion`` (the version that held the alias before, absent when none did).
:func:`rollback` follows ``previous_champion`` from the current champion, so rollbacks walk
back through the promotions one at a time.

Every move is a compare-and-set (:func:`move_champion`): the caller says which version it
expects to hold ``champion``, and the move is refused when another one does. MLflow has no
atomic alias swap, so the check and the move are two calls; callers that can race (cycles,
``registry promote``, ``rollback``) hold the cycle lock (:mod:`recops.continuous.lock`) around
them, and the check catches a move made by anything that did not.
"""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from recops.registry.gate_rules import GateAction
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
    if current is None:
        mv = client.get_model_version(name, v)
        if "previous_champion" in (mv.tags or {}):
            client.delete_model_version_tag(name, v, "previous_champion")
    else:
        client.set_model_version_tag(name, v, "previous_champion", str(current))
    client.set_model_version_tag(name, v, "champion_since", utc_now())
    client.set_model_version_tag(name, v, "promoted_by", promoted_by)
    client.set_registered_model_alias(name, CHAMPION, v)
    if aliases.get(CHALLENGER) == version:
        client.delete_registered_model_alias(name, CHALLENGER)


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
        decision = info.tags.get("gate_decision")
        if not force and decision != GateAction.PROMOTED:
            verdict = f"the gate {decision} it" if decision else "it has not been through the gate"
            raise RegistryError(
                f"will not promote version {info.version}: {verdict}. Run `recops registry gate "
                f"--version {info.version}` to compare it with the champion, or pass --force to "
                "promote it without the comparison"
            )
        promoted_by = "force" if force else "promote"
        move_champion(client, info.version, promoted_by, expected_champion=expected_champion)
        return version_info(client, info.version)


def rollback() -> ModelVersionInfo:
    """Move ``champion`` back to the version that held it before the current one; returns it."""
    with mlflow_client() as client:
        current = alias_version(client, CHAMPION)
        if current is None:
            raise RegistryError("there is no champion to roll back")
        info = version_info(client, current)
        previous = info.tags.get("previous_champion")
        if not previous:
            raise RegistryError(
                f"version {current} became champion with no champion before it; nothing to roll back to"
            )
        try:
            client.get_model_version(MODEL_NAME, previous)
        except MlflowException as exc:
            raise RegistryError(
                f"the previous champion, version {previous}, no longer exists; "
                "promote a version explicitly with `recops registry promote VERSION --force`"
            ) from exc
        if alias_version(client, CHAMPION) != current:  # compare-and-set, as move_champion
            raise ChampionMovedError(f"champion moved from version {current} meanwhile; nothing rolled back")
        client.set_registered_model_alias(MODEL_NAME, CHAMPION, previous)
        client.set_model_version_tag(MODEL_NAME, str(current), "rolled_back_at", utc_now())
        client.set_model_version_tag(MODEL_NAME, str(current), "rolled_back_to", previous)
        return version_info(client, previous)
