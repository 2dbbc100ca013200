"""Running the champion/challenger gate against the registry (the rule itself is in
:mod:`recops.registry.gate_rules`, which knows no MLflow).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from mlflow import MlflowClient

from recops.config import BASELINES, GateConfig
from recops.registry.aliases import move_champion
from recops.registry.gate_rules import BaselineRanks, GateAction, GateDecision, behavioural_checks, decide
from recops.registry.store import (
    CHALLENGER,
    CHAMPION,
    MODEL_NAME,
    SESSION_TAIL,
    RegistryError,
    mlflow_client,
    utc_now,
)
from recops.registry.versions import (
    ModelVersionInfo,
    SavedEvaluation,
    alias_version,
    download_checkpoint,
    download_evaluation,
    version_info,
)
from recops.serving.recommender import Recommender
from recops.training import slices
from recops.training.checkpoint import Checkpoint


def gate(version: int | None = None, config: GateConfig = GateConfig()) -> GateDecision:
    """Compare a challenger (``version``, else alias ``challenger``) with the champion.

    Both are compared on the challenger's held-out test split. When they were trained on the
    same data (same ``data_fingerprint``) that is the champion's own split too, and its saved
    ranks are used; when the data changed (continuous training on new events), the champion
    is ranked on the challenger's saved test histories and targets, as it would serve them
    (items it never saw rank last). Before that, when ``config.require_beat_baseline``, the
    challenger is compared with the best simple baseline its registration trained on the same
    split and saved (none for a version registered before baselines were, or one that is a
    simple baseline itself: judged without). The decision, its figures and reason are written
    to the challenger's tags (``gate_*``); on promotion ``champion`` moves to it and
    ``challenger`` is removed from it.
    """
    with mlflow_client() as client, tempfile.TemporaryDirectory(prefix="recops-gate-") as tmp:
        if version is None and alias_version(client, CHALLENGER) is None:
            raise RegistryError(
                "no challenger to gate: each registration gets alias challenger until it is gated "
                "into champion; register a model or name a version"
            )
        challenger = version_info(client, CHALLENGER if version is None else version)
        champion_version = alias_version(client, CHAMPION)
        if champion_version == challenger.version:
            raise RegistryError(f"version {challenger.version} is already the champion; nothing to gate")
        mine = download_evaluation(client, challenger, Path(tmp) / "challenger")
        theirs, champion_vocab = None, None
        if champion_version is not None:
            champion = version_info(client, champion_version)
            theirs, evaluated_on, champion_vocab = _champion_on_split(
                client, champion, challenger, mine, Path(tmp)
            )
        checkpoint = download_checkpoint(client, challenger, Path(tmp) / "model")
        recommender = Recommender(checkpoint)
        sessions = _check_sessions(checkpoint, mine.sessions, config)
        checks = behavioural_checks(recommender, sessions, config.k, config.latency_budget_ms)
        decision = decide(
            mine.ranks,
            None if theirs is None else theirs.ranks,
            checks,
            config.margin,
            k=config.k,
            resamples=config.resamples,
            seed=config.seed,
            confidence=config.confidence,
            baseline=_baseline_ranks(mine),
            require_beat_baseline=config.require_beat_baseline,
        )
        figures = {
            **decision.figures,
            **_why_no_baseline(challenger, mine, config),
            "challenger_version": challenger.version,
            "champion_version": champion_version,
            "champion_evaluated_on": evaluated_on if theirs is not None else "",
            **{f"check_{c.name}": c.detail for c in checks},
            **_slice_figures(mine, theirs, champion_vocab, config.k),
        }
        decision = GateDecision(decision.action, decision.reason, figures)
        if decision.promote and config.require_shadow and champion_version is not None:
            decision = GateDecision(
                GateAction.SHADOW,
                f"{decision.reason}; gate.require_shadow: scored in shadow beside champion version "
                f"{champion_version} until its online NDCG@{config.k} interval decides",
                figures,
            )
        _tag_decision(client, challenger.version, decision)
        if decision.promote:
            move_champion(client, challenger.version, "gate", expected_champion=champion_version)
        return decision


def _champion_on_split(
    client: MlflowClient,
    champion: ModelVersionInfo,
    challenger: ModelVersionInfo,
    mine: SavedEvaluation,
    tmp: Path,
) -> tuple[SavedEvaluation, str, Any]:
    """The champion's per-sequence test ranks on the challenger's test split, how they were got,
    and the champion's vocabulary when it was loaded (the data changed), else None."""
    mine_fp, theirs_fp = challenger.tags.get("data_fingerprint"), champion.tags.get("data_fingerprint")
    if mine_fp and mine_fp == theirs_fp:
        theirs = download_evaluation(client, champion, tmp / "champion")
        if theirs.sequence_ids != mine.sequence_ids or len(theirs.ranks) != len(mine.ranks):
            raise RegistryError(
                f"challenger version {challenger.version} and champion version {champion.version} "
                "have the same data fingerprint but different test sequences; they cannot be paired"
            )
        return theirs, "its own saved test ranks (same data)", None
    if mine.test_set is None or len(mine.test_set["targets"]) != len(mine.ranks):
        raise RegistryError(
            f"challenger version {challenger.version} was trained on other data than champion version "
            f"{champion.version} (data_fingerprint {mine_fp or 'missing'} vs {theirs_fp or 'missing'}) "
            "and has no saved test set to rank the champion on; re-register it with its test set, "
            "or promote it with --force"
        )
    recommender = Recommender(download_checkpoint(client, champion, tmp / "champion-model"))
    ranks = recommender.rank_targets(mine.test_set["histories"], mine.test_set["targets"])
    how = f"the challenger's test split (data changed: {theirs_fp or 'missing'} -> {mine_fp or 'missing'})"
    return SavedEvaluation(ranks, mine.sequence_ids, None, None), how, recommender.vocab


def _slice_figures(
    mine: SavedEvaluation, theirs: SavedEvaluation | None, vocab: Any, k: int
) -> dict[str, Any]:
    """NDCG@k of challenger and champion on each slice of the challenger's test split (figures
    ``slice_<name>_n``, ``..._challenger_ndcg``, ``..._champion_ndcg``; recops.training.slices):
    short sessions; with the champion's vocabulary (the data changed), sessions holding items it
    does not know and sessions whose next item it does not know (new since its data)."""
    if mine.test_set is None or len(mine.test_set["targets"]) != len(mine.ranks):
        return {}
    histories, targets = mine.test_set["histories"], mine.test_set["targets"]
    masks = {"short_sessions": slices.short_sessions(histories)}
    if vocab is not None:
        known = lambda item: vocab.index_of(item) != 0  # noqa: E731
        masks["unknown_items"] = slices.with_unknown_items(histories, known)
        masks["new_items"] = slices.unknown_targets(targets, known)
    figures: dict[str, Any] = {}
    ours = slices.slice_figures(mine.ranks, masks, k)
    others = slices.slice_figures(theirs.ranks, masks, k) if theirs is not None else {}
    for name, row in ours.items():
        figures[f"slice_{name}_n"] = int(row["n"])
        if row["n"]:
            figures[f"slice_{name}_challenger_ndcg"] = row[f"ndcg@{k}"]
            if name in others:
                figures[f"slice_{name}_champion_ndcg"] = others[name][f"ndcg@{k}"]
    return figures


def _baseline_ranks(mine: SavedEvaluation) -> BaselineRanks | None:
    return None if mine.baseline is None else BaselineRanks(mine.baseline.name, mine.baseline.ranks)


def _why_no_baseline(
    challenger: ModelVersionInfo, mine: SavedEvaluation, config: GateConfig
) -> dict[str, str]:
    """A more precise ``baseline`` figure than the rule's "none recorded", where there is one."""
    model = challenger.tags.get("model", "")
    if config.require_beat_baseline and mine.baseline is None and model in BASELINES:
        return {"baseline": f"not compared: {model} is itself a simple baseline"}
    return {}


def _check_sessions(
    checkpoint: Checkpoint, saved: list[list[Any]] | None, config: GateConfig
) -> list[list[Any]]:
    """The saved test histories, else random sessions drawn from the vocabulary (seeded)."""
    if saved:
        return saved[: config.sessions]
    rng = np.random.default_rng(config.seed)
    items = checkpoint.vocab.items
    longest = max(1, min(SESSION_TAIL, len(items)))
    return [
        [items[i] for i in rng.integers(0, len(items), size=rng.integers(1, longest + 1))]
        for _ in range(config.sessions)
    ]


def _tag_decision(client: MlflowClient, version: int, decision: GateDecision) -> None:
    tags = {
        "gate_decision": decision.action.value,
        "gate_reason": decision.reason,
        "gate_at": utc_now(),
    }
    for key, value in decision.figures.items():
        if value is None or value == "":
            continue
        tags[f"gate_{key}"] = f"{value:.6f}" if isinstance(value, float) else str(value)
    stale = client.get_model_version(MODEL_NAME, str(version)).tags or {}
    for key in stale:
        if key.startswith("gate_") and key not in tags:  # figures of an earlier gating
            client.delete_model_version_tag(MODEL_NAME, str(version), key)
    for key, value in tags.items():
        client.set_model_version_tag(MODEL_NAME, str(version), key, value)
