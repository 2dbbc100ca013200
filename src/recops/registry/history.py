"""The registry's two histories, append-only, and what a crash halfway leaves of them.

**Gate decisions, per version.** The latest decision is in the version's ``gate_*`` tags (what
``registry list``, ``promote`` and the retrain cycle read); every decision, the latest included,
is a record in the version's ``gate_history`` tag (a JSON list: action, reason, champion, time),
so re-gating never erases an earlier verdict. :func:`record_decision` writes in this order:

1. ``gate_history`` gets the previous decision when it lacks it (a version gated before the
   history existed, or a crash at step 4), then ``gate_decision`` is deleted: from here until
   step 3 the version has no completed decision, so a crash leaves it as if it had never been
   re-gated: the next cycle gates an ungated version again (``recops.continuous.health``), a
   person re-runs the gate;
2. the new figures, reason and time are written and the previous decision's figures deleted;
3. ``gate_decision`` is written, last of the tags: the decision is complete;
4. the record is appended to ``gate_history``. A crash before this leaves a history one record
   short, which :func:`decision_history` completes from the tags when it is read, and the next
   decision writes back.

**Champion moves.** The registered model's ``champion_history`` tag lists the versions that
held ``champion``, oldest first (each move one entry; a rollback removes the last), so a
rollback steps back through the champions one at a time instead of toggling between the last
two. The ``champion`` alias is the truth and the history follows it: :func:`champion_history`
appends the champion when the history does not end with it. So a promotion moves the alias
first and then appends (a crash between: the read completes the history), and a rollback
writes the shortened history first and then moves the alias (a crash between: the read puts
the champion back on top, as if the rollback had not started; run it again). A registry
written before this tag existed gets its history from the ``previous_champion`` tags.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from recops.registry.gate_rules import GateDecision
from recops.registry.store import CHAMPION, MODEL_NAME, utc_now
from recops.registry.versions import alias_map

GATE_HISTORY = "gate_history"
CHAMPION_HISTORY = "champion_history"
MAX_CHAMPIONS = 500  # entries kept: the tag holds 5,000 characters on a SQL store
LATEST = ("gate_decision", "gate_reason", "gate_at", "gate_champion_version")


def decision_history(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """Every gate decision of a version, oldest first (``action``, ``reason``, ``at``,
    ``champion``), including the latest in its tags when a crash kept it out of the record."""
    try:
        history = [dict(r) for r in json.loads(tags.get(GATE_HISTORY) or "[]")]
    except (ValueError, TypeError):  # edited by hand: the tags still say the latest
        history = []
    latest = _latest_in_tags(tags)
    if latest and (not history or history[-1].get("at") != latest["at"]):
        history.append(latest)
    return history


def _latest_in_tags(tags: Mapping[str, str]) -> dict[str, str] | None:
    if "gate_decision" not in tags:
        return None
    return {
        "action": tags["gate_decision"],
        "reason": tags.get("gate_reason", ""),
        "at": tags.get("gate_at", ""),
        "champion": tags.get("gate_champion_version", ""),
    }


def record_decision(
    client: MlflowClient,
    version: int,
    decision: GateDecision,
    extra_tags: Mapping[str, str] | None = None,
    *,
    replace_figures: bool = True,
) -> None:
    """Make ``decision`` the version's latest and append it to its history (module docstring).
    ``extra_tags`` (e.g. a shadow comparison's figures) are written with the figures.
    ``replace_figures=False`` settles an earlier decision (shadow -> promoted or rejected): its
    figures stay, and ``gate_decision`` keeps the earlier value until the new one replaces it."""
    name, v = MODEL_NAME, str(version)
    before = dict(client.get_model_version(name, v).tags or {})
    history = decision_history(before)
    if json.dumps(history) != before.get(GATE_HISTORY, "[]"):
        client.set_model_version_tag(name, v, GATE_HISTORY, json.dumps(history))
    if replace_figures and "gate_decision" in before:
        client.delete_model_version_tag(name, v, "gate_decision")
    tags = {key: value for key, value in (extra_tags or {}).items()}
    for key, value in decision.figures.items():
        if value is None or value == "":
            continue
        tags[f"gate_{key}"] = f"{value:.6f}" if isinstance(value, float) else str(value)
    tags["gate_reason"] = decision.reason
    tags["gate_at"] = utc_now()
    for key, value in tags.items():
        client.set_model_version_tag(name, v, key, value)
    for key in before if replace_figures else ():  # figures of an earlier decision
        if key.startswith("gate_") and key not in tags and key not in (GATE_HISTORY, "gate_decision"):
            client.delete_model_version_tag(name, v, key)
    client.set_model_version_tag(name, v, "gate_decision", decision.action.value)
    record = {
        "action": decision.action.value,
        "reason": decision.reason,
        "at": tags["gate_at"],
        "champion": tags.get("gate_champion_version", ""),
    }
    client.set_model_version_tag(name, v, GATE_HISTORY, json.dumps([*history, record]))


def champion_history(client: MlflowClient) -> list[int]:
    """The versions that held ``champion``, oldest first, ending with the champion (module
    docstring); [] when there has never been one."""
    model = client.get_registered_model(MODEL_NAME)
    stored = (model.tags or {}).get(CHAMPION_HISTORY)
    champion = alias_map(client).get(CHAMPION)
    if stored is None:
        history = _from_previous_champion(client, champion)
    else:
        history = [int(v) for v in stored.split(",") if v.strip().isdigit()]
    if champion is not None and (not history or history[-1] != champion):
        history.append(champion)
    return history


def write_champion_history(client: MlflowClient, history: list[int]) -> None:
    kept = history[-MAX_CHAMPIONS:]
    client.set_registered_model_tag(MODEL_NAME, CHAMPION_HISTORY, ",".join(map(str, kept)))


def _from_previous_champion(client: MlflowClient, champion: int | None) -> list[int]:
    """A registry from before ``champion_history``: follow ``previous_champion`` back."""
    chain: list[int] = []
    current = champion
    while current is not None and current not in chain:
        chain.append(current)
        try:
            tags: dict[str, Any] = dict(client.get_model_version(MODEL_NAME, str(current)).tags or {})
        except MlflowException:  # a deleted version ends the chain
            break
        previous = tags.get("previous_champion", "")
        current = int(previous) if previous.isdigit() else None
    return chain[::-1]
