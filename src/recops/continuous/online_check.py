"""Each cycle's online check (:mod:`recops.continuous.online` measures, this module decides).

- **Degradation** (:func:`degradation`): the champion's online NDCG@K over the window against its
  baseline (tag ``online_baseline_ndcg_at_10``: its first online window that did not degrade; its
  offline test NDCG@10 until then). A drop of more than ``max_drop`` of the baseline is a retrain
  reason (:mod:`recops.continuous.policy`).
- **Shadow decisions**: challengers waiting in shadow are settled (:mod:`recops.continuous.shadow`).
- **Trending lists** for cold sessions are published to the store (:func:`publish_trending`).

No Prefect here; the registry is read and written through :mod:`recops.registry`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from recops.config import Config, OnlineConfig
from recops.continuous.online import OnlineReport, offline_ndcg, online_report, record_report
from recops.serving.served_log import CHAMPION_ROLE
from recops.store import Store, open_store


@dataclass(frozen=True)
class Degradation:
    """The champion's online NDCG@K against its baseline over one window."""

    version: int
    observed: float | None  # None: too few pairs to judge
    pairs: int
    baseline: float | None
    baseline_source: str  # "online" (its first window), "offline" (test NDCG@10) or ""
    max_drop: float

    @property
    def degraded(self) -> bool:
        if self.observed is None or not self.baseline:
            return False
        return self.observed < self.baseline * (1 - self.max_drop)

    def summary(self) -> str:
        if self.observed is None:
            return f"online: champion version {self.version} has {self.pairs} joined pairs, too few to judge"
        if not self.baseline:
            return f"online: champion version {self.version} has no baseline to compare with"
        drop = 1 - self.observed / self.baseline
        verdict = "degraded" if self.degraded else "holds"
        return (
            f"online NDCG@10 of champion version {self.version} {verdict}: {self.observed:.4f} vs "
            f"{self.baseline_source} baseline {self.baseline:.4f} "
            f"({abs(drop):.0%} {'below' if drop > 0 else 'above'}, limit {self.max_drop:.0%} below, "
            f"{self.pairs} pairs)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "degraded": self.degraded}


def degradation(report: OnlineReport, champion: Any, settings: OnlineConfig) -> Degradation:
    """Judge the champion (a :class:`recops.registry.ModelVersionInfo`) on ``report``."""
    from recops.registry.online import BASELINE_TAG

    figures = report.figures(str(champion.version), CHAMPION_ROLE)
    pairs = figures.pairs if figures else 0
    observed = figures.ndcg if figures and pairs >= settings.min_pairs else None
    baseline, source = None, ""
    if champion.tags.get(BASELINE_TAG):
        baseline, source = float(champion.tags[BASELINE_TAG]), "online"
    elif champion.tags.get("test_ndcg_10"):
        baseline, source = float(champion.tags["test_ndcg_10"]), "offline"
    return Degradation(champion.version, observed, pairs, baseline, source, settings.max_drop)


@dataclass(frozen=True)
class OnlineCheck:
    """One cycle's online check: the report, what it recorded, the champion's verdict."""

    report: OnlineReport
    recorded: list[str]
    degradation: Degradation | None  # None: no champion
    baseline_set: bool = False
    shadow_decisions: list[Any] = field(default_factory=list)  # recops.continuous.shadow.ShadowDecision


def check_online(config: Config, now: float | None = None) -> OnlineCheck:
    """The online report over the last ``[online] window_hours``, each version's figures
    recorded in the registry, and the champion judged against its baseline; a champion without
    an online baseline gets this window's figure as one when it has enough pairs and did not
    degrade against its offline figure."""
    from recops import registry
    from recops.registry.online import BASELINE_TAG, set_online_baseline

    settings = config.online
    versions = registry.list_versions()
    report = online_report(config, until=now, offline=offline_ndcg(versions))
    recorded = record_report(report, settings.min_pairs) if report.versions else []
    decisions = _settle_shadows(report, versions, config)
    champion = next((v for v in versions if v.is_champion), None)
    if champion is None:
        return OnlineCheck(report, recorded, None, shadow_decisions=decisions)
    judged = degradation(report, champion, settings)
    baseline_set = False
    if judged.observed is not None and not judged.degraded and not champion.tags.get(BASELINE_TAG):
        set_online_baseline(champion.version, judged.observed)
        baseline_set = True
    return OnlineCheck(report, recorded, judged, baseline_set, decisions)


def _settle_shadows(report: OnlineReport, versions: list[Any], config: Config) -> list[Any]:
    """Decide the challengers waiting in shadow; a rejected one leaves the shadow slot."""
    from recops.continuous.shadow import decide_shadows
    from recops.serving.reconcile import deploy_shadow, deployed_shadow

    decisions = decide_shadows(report.shadows, versions, config.online.min_pairs, config.gate.margin)
    for decision in decisions:
        if decision.action == "rejected" and deployed_shadow() == str(decision.version):
            deploy_shadow(None)
    return decisions


def publish_trending(events: pd.DataFrame, config: Config, store: Store | None = None) -> Any:
    """Write the cold-start lists of ``events`` (the newest ``[online] trending_hours``) to
    ``<store>/serving/trending.json``, which servers follow; returns them."""
    from recops.data.trending import TRENDING_KEY, trending_from_events

    settings = config.online
    trending = trending_from_events(events, settings.trending_hours, new_item_slots=settings.new_item_slots)
    (store or open_store(config)).write_text(TRENDING_KEY, trending.to_json())
    return trending
