"""Running the champion/challenger gate against the registry (the rule itself is in
:mod:`recops.registry.gate_rules`, which knows no MLflow).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from mlflow import MlflowClient

from recops.config import BASELINES, GateConfig
from recops.localproc import cpu_share
from recops.registry.aliases import move_champion
from recops.registry.gate_checks import (
    behavioural_checks,
    catalogue_mismatch,
    leak_refusal,
    leaked_test_sequences,
)
from recops.registry.gate_rules import BaselineRanks, GateAction, GateDecision, decide, refused
from recops.registry.history import record_decision
from recops.registry.store import (
    CHALLENGER,
    CHAMPION,
    SESSION_TAIL,
    RegistryError,
    mlflow_client,
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
from recops.serving.server import DEFAULT_WORKERS
from recops.training import slices
from recops.training.checkpoint import Checkpoint


def gate(
    version: int | None = None, config: GateConfig = GateConfig(), *, force: bool = False
) -> GateDecision:
    """Compare a challenger (``version``, else alias ``challenger``) with the champion.

    Refused first (rejected, with the reason, no comparison): a challenger whose held-out test
    items appear in its training data or in that of the version it was warm-started from, and,
    unless ``force``, a champion and challenger over different item catalogues
    (:mod:`recops.registry.gate_checks`).

    Both are compared on the challenger's held-out test split. When they were trained on the
    same data (same ``data_fingerprint``) that is the champion's own split too, and its saved
    ranks are used; when the data changed (continuous training on new events), the champion
    is ranked on the challenger's saved test histories and targets, as it would serve them
    (items it never saw rank last). Before that, when ``config.require_beat_baseline``, the
    challenger is compared with the best simple baseline its registration trained on the same
    split and saved (none for a version registered before baselines were, or one that is a
    simple baseline itself: judged without). Latency is timed beside the champion's, with the
    torch threads of one server worker. The decision, its figures and reason become the
    challenger's latest (``gate_*`` tags) and are appended to its gate history; on promotion
    ``champion`` moves to it and ``challenger`` is removed from it.
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
        checkpoint = download_checkpoint(client, challenger, Path(tmp) / "model")
        champion = None if champion_version is None else version_info(client, champion_version)
        theirs = None
        if champion is not None:
            theirs = download_checkpoint(client, champion, Path(tmp) / "champion-model")
        figures: dict[str, Any] = {
            "challenger_version": challenger.version,
            "champion_version": champion_version,
        }
        sides = _Sides(client, challenger, checkpoint, mine, champion, theirs, Path(tmp))
        refusals = _refusals(sides, force)
        if refusals:
            decision = refused(refusals, figures)
        else:
            decision = _compare(sides, config)
            decision = GateDecision(decision.action, decision.reason, {**figures, **decision.figures})
        if decision.promote and config.require_shadow and champion_version is not None:
            decision = GateDecision(
                GateAction.SHADOW,
                f"{decision.reason}; gate.require_shadow: scored in shadow beside champion version "
                f"{champion_version} until its online NDCG@{config.k} interval decides",
                decision.figures,
            )
        record_decision(client, challenger.version, decision)
        if decision.promote:
            move_champion(client, challenger.version, "gate", expected_champion=champion_version)
        return decision


class _Sides(NamedTuple):
    """What the gate holds of the two versions while it decides."""

    client: MlflowClient
    challenger: ModelVersionInfo
    checkpoint: Checkpoint
    mine: SavedEvaluation
    champion: ModelVersionInfo | None
    champion_checkpoint: Checkpoint | None
    tmp: Path


def _compare(sides: _Sides, config: GateConfig) -> GateDecision:
    """The comparison: NDCG@k (paired bootstrap) against champion and baseline, and the checks."""
    client, challenger, checkpoint, mine, champion, champion_checkpoint, tmp = sides
    theirs, champion_vocab, evaluated_on, champion_recommender = None, None, "", None
    if champion is not None and champion_checkpoint is not None:
        champion_recommender = Recommender(champion_checkpoint)
        theirs, evaluated_on, champion_vocab = _champion_on_split(
            client, champion, champion_recommender, challenger, mine, tmp
        )
    sessions = _check_sessions(checkpoint, mine.sessions, config)
    with _serving_threads():
        checks = behavioural_checks(
            Recommender(checkpoint),
            sessions,
            config.k,
            config.latency_budget_ms,
            champion=champion_recommender,
            latency_ratio=config.latency_ratio,
            latency_floor_ms=config.latency_floor_ms,
        )
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
        "champion_evaluated_on": evaluated_on,
        **{f"check_{c.name}": c.detail for c in checks},
        **_slice_figures(mine, theirs, champion_vocab, config.k),
    }
    return GateDecision(decision.action, decision.reason, figures)


@contextmanager
def _serving_threads() -> Iterator[None]:
    """Torch threads as one of the server's workers has them (bentos/session_recommender:
    the CPUs split between the workers), restored afterwards: latency as served, and no
    intra-op threads spinning against a neighbour's for the same cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cpu_share(DEFAULT_WORKERS))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _refusals(sides: _Sides, force: bool) -> list[str]:
    """Why the comparison must not be made: leaked test sequences; other catalogues (unless
    ``force``). Same data as the champion (same fingerprint) is one catalogue by definition."""
    client, challenger, checkpoint, mine, champion, champion_checkpoint, tmp = sides
    refusals = []
    if mine.test_set is not None and len(mine.test_set["targets"]) == len(mine.sequence_ids):
        warm_from, earlier = _warm_start_training(client, challenger, tmp)
        leaked = leaked_test_sequences(
            mine.test_set["histories"], mine.test_set["targets"], mine.sequence_ids, earlier
        )
        if problem := leak_refusal(len(leaked), len(mine.sequence_ids), warm_from):
            refusals.append(problem)
    same_data = challenger.tags.get("data_fingerprint") == (champion.tags if champion else {}).get(
        "data_fingerprint"
    )
    if champion is not None and champion_checkpoint is not None and not same_data and not force:
        vocab = champion_checkpoint.vocab
        problem = catalogue_mismatch(
            checkpoint.dataset or challenger.tags.get("dataset", ""),
            checkpoint.vocab.items,
            champion_checkpoint.dataset or champion.tags.get("dataset", ""),
            lambda item: vocab.index_of(item) != 0,
        )
        if problem:
            refusals.append(
                f"champion version {champion.version} and the challenger rank different item "
                f"catalogues ({problem}), so their NDCG says nothing of which is better; "
                "gate with --force to compare them anyway (a catalogue replaced on purpose), "
                "or promote with --force"
            )
    return refusals


def _warm_start_training(
    client: MlflowClient, challenger: ModelVersionInfo, tmp: Path
) -> tuple[str, dict[Any, list[Any]] | None]:
    """("version N", sequence id -> training part) of the version the challenger was
    warm-started from, from N's saved test histories; ("", None) when it was not, or N is gone."""
    match = re.fullmatch(r"version (\d+)", challenger.tags.get("warm_started_from", ""))
    if match is None:
        return "", None
    try:
        source = version_info(client, int(match.group(1)))
        saved = download_evaluation(client, source, tmp / "warm-start")
    except RegistryError:
        return "", None
    if saved.test_set is None:
        return "", None
    histories = saved.test_set["histories"]
    return f"version {source.version}", {
        sid: history[:-1] for sid, history in zip(saved.sequence_ids, histories, strict=False)
    }


def _champion_on_split(
    client: MlflowClient,
    champion: ModelVersionInfo,
    recommender: Recommender,
    challenger: ModelVersionInfo,
    mine: SavedEvaluation,
    tmp: Path,
) -> tuple[SavedEvaluation, str, Any]:
    """The champion's per-sequence test ranks on the challenger's test split, how they were got,
    and the champion's vocabulary when it was ranked here (the data changed), else None."""
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
