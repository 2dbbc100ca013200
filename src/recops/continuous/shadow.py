"""A challenger in shadow: scored on the champion's requests, compared on what shoppers did next.

The service logs the shadow's list for each request under the champion's request id
(:class:`recops.serving.runtime.ShadowScorer`). :func:`compare_shadows` pairs the two lists of
every request both answered and measures

- **overlap**: rank-biased overlap of the two top-k lists (Webber et al. 2010, persistence
  ``p = 0.9``, the lower bound at depth k: 1 for identical lists, 0 for disjoint ones);
- **coverage** of each model's lists on those requests (distinct items / catalogue);
- **online NDCG@k** of each on the requests whose session's next event arrived, with the paired
  bootstrap of the gate (:func:`recops.registry.gate_rules.paired_bootstrap`, ``[gate]``
  confidence, resamples and seed) over the per-request difference (shadow - champion).

With ``gate.require_shadow`` a challenger that passed the offline gate waits in shadow
(``gate_decision = shadow``) and :func:`decide_shadows` settles it once it has
``[online] min_pairs`` joined requests: the alias moves when the interval's lower bound is at
least ``-gate.margin`` (the offline rule, online), else the challenger is rejected and leaves
the shadow slot.

Crash halfway through a decision: the comparison tags are written first, then the alias moves
(compare-and-set on the champion that was compared), then the decision tags. A crash after the
move leaves a champion whose ``gate_decision`` still says ``shadow``; the next check finds it
champion and finishes the tags. A crash before the move changes nothing the next check does not
redo (it measures again, on more requests).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from recops.config import GateConfig
from recops.serving.served_log import CHAMPION_ROLE, SHADOW_ROLE
from recops.training.metrics import ndcg

RBO_P = 0.9
SHADOW_DECISION = "shadow"  # gate_decision of a challenger waiting in shadow


def rbo(first: list[str], second: list[str], p: float = RBO_P) -> float:
    """Rank-biased overlap at the lists' depth, normalised so identical lists score 1."""
    depth = max(len(first), len(second))
    if depth == 0:
        return 1.0
    seen_a: set[str] = set()
    seen_b: set[str] = set()
    overlap, total, norm = 0, 0.0, 0.0
    for d in range(1, depth + 1):
        a = first[d - 1] if d <= len(first) else None
        b = second[d - 1] if d <= len(second) else None
        if a is not None and a == b:
            overlap += 1
        else:
            overlap += (a is not None and a in seen_b) + (b is not None and b in seen_a)
        if a is not None:
            seen_a.add(a)
        if b is not None:
            seen_b.add(b)
        weight = p ** (d - 1)
        total += weight * overlap / d
        norm += weight
    return total / norm


@dataclass
class ShadowComparison:
    champion_version: str
    shadow_version: str
    requests: int  # answered by both
    pairs: int  # of those, with the session's next event
    overlap_rbo: float
    champion_coverage: float
    shadow_coverage: float
    champion_ndcg: float | None
    shadow_ndcg: float | None
    delta: float | None  # shadow - champion, mean over pairs
    ci_low: float | None
    ci_high: float | None
    confidence: float
    k: int

    def passes(self, margin: float) -> bool:
        return self.ci_low is not None and self.ci_low >= -margin

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def tags(self) -> dict[str, str]:
        """What the challenger's registry tags say about it (``shadow_*``)."""
        figures = {
            "champion_version": self.champion_version,
            "requests": str(self.requests),
            "pairs": str(self.pairs),
            "overlap_rbo": f"{self.overlap_rbo:.6f}",
            "coverage": f"{self.shadow_coverage:.6f}",
            "champion_coverage": f"{self.champion_coverage:.6f}",
        }
        if self.delta is not None:
            figures.update(
                {
                    f"ndcg_at_{self.k}": f"{self.shadow_ndcg:.6f}",
                    f"champion_ndcg_at_{self.k}": f"{self.champion_ndcg:.6f}",
                    "delta": f"{self.delta:.6f}",
                    "ci_low": f"{self.ci_low:.6f}",
                    "ci_high": f"{self.ci_high:.6f}",
                    "ci": f"{self.confidence:.0%}",
                }
            )
        return {f"shadow_{key}": value for key, value in figures.items()}

    def markdown(self, min_pairs: int) -> str:
        head = (
            f"Shadow version {self.shadow_version} beside champion version {self.champion_version}: "
            f"{self.requests} requests answered by both, top-{self.k} overlap (RBO) {self.overlap_rbo:.3f}, "
            f"coverage {self.shadow_coverage:.4f} vs {self.champion_coverage:.4f}"
        )
        if self.delta is None:
            return head + f"; no request with a next event yet ({min_pairs} needed to decide)."
        few = f" (too few to decide: {min_pairs} needed)" if self.pairs < min_pairs else ""
        return (
            head + f"; NDCG@{self.k} on {self.pairs} requests{few}: {self.shadow_ndcg:.4f} vs "
            f"{self.champion_ndcg:.4f}, difference {self.delta:+.4f} "
            f"({self.confidence:.0%} CI {self.ci_low:+.4f} .. {self.ci_high:+.4f})."
        )


def compare_shadows(
    rows: pd.DataFrame, targets: pd.Series, k: int, gate: GateConfig
) -> list[ShadowComparison]:
    """One comparison per (champion version, shadow version) pair found in the served rows."""
    from recops.continuous.online import served_ranks
    from recops.registry.gate_rules import paired_bootstrap

    shadow_rows = rows[rows["role"] == SHADOW_ROLE]
    if shadow_rows.empty:
        return []
    champion_rows = rows[rows["role"] == CHAMPION_ROLE].drop_duplicates("request_id")
    shadow_rows = shadow_rows.drop_duplicates("request_id")  # a request is answered once per role
    both = champion_rows.reset_index().merge(
        shadow_rows.reset_index(), on="request_id", suffixes=("_c", "_s"), validate="one_to_one"
    )
    comparisons = []
    for (champion, shadow), group in both.groupby(["model_version_c", "model_version_s"], sort=True):
        lists = zip(group["items_c"], group["items_s"], strict=True)
        overlap = float(np.mean([rbo(list(a), list(b)) for a, b in lists]))
        pair_targets = targets.loc[group["index_c"].to_numpy()].reset_index(drop=True)
        joined = pair_targets.notna().to_numpy()
        comparison = ShadowComparison(
            str(champion),
            str(shadow),
            len(group),
            int(joined.sum()),
            overlap,
            _coverage(group["items_c"], group["catalogue_size_c"]),
            _coverage(group["items_s"], group["catalogue_size_s"]),
            None,
            None,
            None,
            None,
            None,
            gate.confidence,
            k,
        )
        if joined.any():
            hits = pair_targets[joined]
            mine = ndcg(served_ranks(group["items_s"][joined], hits), k)
            theirs = ndcg(served_ranks(group["items_c"][joined], hits), k)
            interval = paired_bootstrap(mine, theirs, gate.resamples, gate.seed, gate.confidence)
            comparison.shadow_ndcg, comparison.champion_ndcg = float(mine.mean()), float(theirs.mean())
            comparison.delta, comparison.ci_low, comparison.ci_high = (
                interval.mean_diff,
                interval.low,
                interval.high,
            )
        comparisons.append(comparison)
    return comparisons


def _coverage(lists: pd.Series, catalogue: pd.Series) -> float:
    size = int(catalogue.max()) if len(catalogue) else 0
    return len({item for items in lists for item in items}) / size if size else 0.0


@dataclass(frozen=True)
class ShadowDecision:
    version: int
    action: str  # "promoted", "rejected", "waiting"
    reason: str


def decide_shadows(
    comparisons: list[ShadowComparison], versions: list[Any], min_pairs: int, margin: float
) -> list[ShadowDecision]:
    """Record every comparison on its shadow version's tags and settle the challengers waiting
    in shadow (``gate_decision = shadow``) that have ``min_pairs`` joined requests; finish a
    decision a crash interrupted (a waiting version that is champion already)."""
    from recops.registry.online import finish_promotion, record_shadow, settle_shadow

    by_number = {v.version: v for v in versions}
    decisions = []
    for v in versions:  # the alias moved, the tags did not: finish them
        if v.is_champion and v.tags.get("gate_decision") == SHADOW_DECISION:
            finish_promotion(v.version)
            decisions.append(
                ShadowDecision(v.version, "promoted", "finished a promotion a crash interrupted")
            )
    for comparison in comparisons:
        if not comparison.shadow_version.isdigit():
            continue
        number = int(comparison.shadow_version)
        info = by_number.get(number)
        if info is None:
            continue
        waiting = info.tags.get("gate_decision") == SHADOW_DECISION and not info.is_champion
        champion = next((v for v in versions if v.is_champion), None)
        compared_with = champion is not None and str(champion.version) == comparison.champion_version
        if not waiting or not compared_with or comparison.pairs < min_pairs or comparison.delta is None:
            record_shadow(number, comparison.tags())
            if waiting:
                decisions.append(ShadowDecision(number, "waiting", comparison.markdown(min_pairs)))
            continue
        promote = comparison.passes(margin)
        verdict = "passes" if promote else "fails"
        reason = (
            f"online in shadow: NDCG@{comparison.k} difference {comparison.delta:+.4f} "
            f"({comparison.confidence:.0%} CI {comparison.ci_low:+.4f} .. {comparison.ci_high:+.4f}) over "
            f"{comparison.pairs} requests {verdict} the margin -{margin:g} against champion version "
            f"{comparison.champion_version}"
        )
        settle_shadow(number, comparison.tags(), promote, reason, int(comparison.champion_version))
        decisions.append(ShadowDecision(number, "promoted" if promote else "rejected", reason))
    return decisions
