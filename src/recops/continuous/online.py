"""Online figures: the served lists (:mod:`recops.serving.served_log`) joined with what each
shopper did next, measured with the offline metric code.

**The join.** A served row with a session id at time ``t`` is paired with the first event of
the same session after ``t`` and at most ``[online] follow_up_minutes`` later (``merge_asof``,
forward, exact times excluded). The event's item is the target; its rank is its position in
the served list, or "not in the list" (a rank past every cut-off). Rows without a session id,
or whose session did nothing more within the window, are counted and not measured.

**The figures**, per model version and role (champion or shadow): HR/NDCG/MRR@K by
:func:`recops.training.metrics.summarize` on those ranks (the function offline evaluation
calls), the catalogue coverage of the served lists (distinct items served / catalogue size),
and the share of served slots that hold popular items (the top ``popular_share_top`` of the
window's items by events). The report sets them beside each version's offline test NDCG@10
and gives the Pearson correlation of the two across versions (three or more with
``min_pairs`` joined pairs).

**Where follow-up events come from.** The incoming files of the store (``incoming/*.csv``,
``*.parquet``: ordinary events, as producers and ``recops simulate-traffic`` write them) whose
modification time is in the window; each is validated like a cycle reads it, and a file that
fails is skipped here (the cycle quarantines it).

What a cycle does with these figures (degradation, shadow decisions, trending lists) is in
:mod:`recops.continuous.online_check`.

No Prefect here; the registry is read and written through :mod:`recops.registry`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from recops.config import Config, OnlineConfig
from recops.continuous.inputs import INCOMING_SUFFIXES, read_incoming
from recops.data.schema import DataValidationError
from recops.serving.served_log import CHAMPION_ROLE, read_served
from recops.store import Store, open_store
from recops.training.metrics import summarize
from recops.training.slices import short_sessions, slice_figures

log = logging.getLogger(__name__)

INCOMING = "incoming"


@dataclass
class VersionFigures:
    """What one model version answered in one role, and how it did."""

    model_name: str
    model_version: str
    role: str
    served: int
    pairs: int  # served lists joined with a next event
    metrics: dict[str, float]  # {"hr@10", "ndcg@10", "mrr@10"}
    coverage: float
    popular_share: float
    offline_ndcg_at_10: float | None = None
    # recops.training.slices, online: cold (no known item: the fallback answered), sessions with
    # an item the model did not know, sessions of one or two events
    slices: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def ndcg(self) -> float:
        return next(value for name, value in self.metrics.items() if name.startswith("ndcg@"))


@dataclass
class OnlineReport:
    since: float
    until: float
    k: int
    follow_up_s: float
    served: int
    pairs: int
    without_session_id: int
    without_next_event: int
    dropped: int  # records the servers dropped and said so in the log
    follow_up_files: int
    skipped_files: list[str] = field(default_factory=list)
    versions: list[VersionFigures] = field(default_factory=list)
    correlation: float | None = None  # offline vs online NDCG across versions (champion role)
    correlated_versions: int = 0
    shadows: list[Any] = field(default_factory=list)  # recops.continuous.shadow.ShadowComparison

    def figures(self, version: str, role: str = CHAMPION_ROLE) -> VersionFigures | None:
        return next((v for v in self.versions if v.model_version == version and v.role == role), None)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shadows": [shadow.to_dict() for shadow in self.shadows]}

    def markdown(self, min_pairs: int) -> str:
        window = f"{_utc(self.since)} to {_utc(self.until)}"
        lines = [
            f"# Online report, {window}",
            "",
            f"{self.served} answers served, {self.pairs} joined with the session's next event within "
            f"{self.follow_up_s / 60:g} min ({self.without_session_id} without a session id, "
            f"{self.without_next_event} with no next event yet); {self.dropped} dropped by the servers' log; "
            f"follow-up events from {self.follow_up_files} incoming file(s)."
            + (f" Skipped (invalid): {', '.join(self.skipped_files)}." if self.skipped_files else ""),
            "",
            f"| version | role | served | pairs | HR@{self.k} | NDCG@{self.k} | MRR@{self.k} | coverage "
            "| popular share | offline NDCG@10 |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for v in self.versions:
            m = v.metrics
            offline = "" if v.offline_ndcg_at_10 is None else f"{v.offline_ndcg_at_10:.4f}"
            few = " (too few pairs)" if v.pairs < min_pairs else ""
            lines.append(
                f"| {v.model_version} | {v.role} | {v.served} | {v.pairs}{few} | {m[f'hr@{self.k}']:.4f} "
                f"| {m[f'ndcg@{self.k}']:.4f} | {m[f'mrr@{self.k}']:.4f} | {v.coverage:.4f} "
                f"| {v.popular_share:.4f} | {offline} |"
            )
        if not self.versions:
            lines.append("| (nothing served in the window) | | | | | | | | | |")
        lines.append("")
        if self.correlation is None:
            lines.append(
                f"Offline vs online NDCG across versions: needs 3 versions with {min_pairs}+ pairs "
                f"({self.correlated_versions} so far)."
            )
        else:
            lines.append(
                f"Offline vs online NDCG across {self.correlated_versions} versions: "
                f"Pearson r = {self.correlation:.3f}."
            )
        if any(v.slices for v in self.versions):
            lines += ["", f"Per slice (pairs, NDCG@{self.k}):", ""]
            lines += [
                "| version | role | cold sessions | with unknown items | one or two events |",
                "|---|---|---:|---:|---:|",
            ]
            for v in self.versions:
                cells = [
                    _slice_cell(v.slices.get(name, {}), self.k)
                    for name in ("cold", "unknown_items", "short_sessions")
                ]
                lines.append(f"| {v.model_version} | {v.role} | " + " | ".join(cells) + " |")
        for shadow in self.shadows:
            lines += ["", shadow.markdown(min_pairs)]
        return "\n".join(lines) + "\n"


def _slice_cell(row: dict[str, float], k: int) -> str:
    n = int(row.get("n", 0))
    return f"{n}: {row[f'ndcg@{k}']:.4f}" if n else "0"


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def follow_up_events(store: Store, since: float) -> tuple[pd.DataFrame, int, list[str]]:
    """Events of the incoming files modified at or after ``since``; the files read, and those
    skipped as invalid."""
    incoming = store.child(INCOMING)
    frames, read, skipped = [], 0, []
    for entry in incoming.list("", suffixes=INCOMING_SUFFIXES):
        if entry.modified_ns / 1e9 < since:
            continue
        try:
            frame = read_incoming(incoming.url(entry.key))
        except (DataValidationError, OSError, ValueError) as exc:
            log.warning("online report: skipped %s: %s", entry.key, exc)
            skipped.append(entry.key)
            continue
        frames.append(frame[["sequence_id", "item_id", "timestamp"]])
        read += 1
    if not frames:
        return pd.DataFrame({"sequence_id": [], "item_id": [], "timestamp": []}), read, skipped
    return pd.concat(frames, ignore_index=True), read, skipped


def join_next_events(served: pd.DataFrame, events: pd.DataFrame, follow_up_s: float) -> pd.Series:
    """For each served row, the item of its session's first event after it (within
    ``follow_up_s`` seconds) as text, else None; indexed like ``served``."""
    targets = pd.Series([None] * len(served), index=served.index, dtype=object)
    has_id = served["session_id"].notna()
    if not has_id.any() or events.empty:
        return targets
    left = pd.DataFrame(
        {
            "row": served.index[has_id],
            "key": served.loc[has_id, "session_id"].astype(str).to_numpy(),
            "at": served.loc[has_id, "served_at"].astype(np.float64).to_numpy(),
        }
    ).sort_values("at", kind="stable")
    right = pd.DataFrame(
        {
            "key": events["sequence_id"].astype(str).to_numpy(),
            "at": events["timestamp"].astype(np.float64).to_numpy(),
            "target": events["item_id"].astype(str).to_numpy(),
        }
    ).sort_values("at", kind="stable")
    joined = pd.merge_asof(
        left,
        right,
        on="at",
        by="key",
        direction="forward",
        allow_exact_matches=False,
        tolerance=follow_up_s,
    )
    found = joined["target"].notna()
    targets.loc[joined.loc[found, "row"].to_numpy()] = joined.loc[found, "target"].to_numpy()
    return targets


def served_ranks(items: pd.Series, targets: pd.Series) -> np.ndarray:
    """1-based position of each target in its served list; past every cut-off when absent."""
    ranks = np.empty(len(targets), dtype=np.int64)
    for i, (served, target) in enumerate(zip(items, targets, strict=True)):
        listed = list(served)
        ranks[i] = listed.index(target) + 1 if target in listed else np.iinfo(np.int32).max
    return ranks


def _popular_items(events: pd.DataFrame, served: pd.DataFrame, share: float) -> set[str]:
    """The top ``share`` of the window's items by events (the sessions served count as events
    too, so a window with few follow-ups still has a popularity)."""
    items = [str(item) for item in events["item_id"]]
    for session in served["session"]:
        items.extend(session)
    if not items:
        return set()
    counts = pd.Series(items).value_counts()
    top = max(1, math.ceil(share * len(counts)))
    return set(counts.index[:top])


def _correlation(versions: list[VersionFigures], min_pairs: int) -> tuple[float | None, int]:
    points = [
        (v.offline_ndcg_at_10, v.ndcg)
        for v in versions  # every role: a shadow's lists are a version's online figures too
        if v.offline_ndcg_at_10 is not None and v.pairs >= min_pairs
    ]
    if len(points) < 3:
        return None, len(points)
    offline, online = np.array(points).T
    if offline.std() == 0 or online.std() == 0:
        return None, len(points)
    return float(np.corrcoef(offline, online)[0, 1]), len(points)


def online_report(
    config: Config,
    *,
    since: float | None = None,
    until: float | None = None,
    store: Store | None = None,
    offline: dict[str, float] | None = None,
) -> OnlineReport:
    """The online figures of every version served between ``since`` (default: the last
    ``[online] window_hours``) and ``until`` (default: now). ``offline`` maps version -> offline
    test NDCG@10 (default: read from the registry's ``test_ndcg_10`` tags)."""
    settings = config.online
    store = store or open_store(config)
    until = time.time() if until is None else until
    since = until - settings.window_hours * 3600 if since is None else since
    read = read_served(store, since=since, until=until)
    rows = read.rows
    follow_up_s = settings.follow_up_minutes * 60
    events, n_files, skipped = follow_up_events(store, since)
    targets = join_next_events(rows, events, follow_up_s)
    report = _report(settings, rows, targets, events, since, until, read.dropped, n_files, skipped, offline)
    if len(rows):
        from recops.continuous.shadow import compare_shadows

        report.shadows = compare_shadows(rows, targets, settings.k, config.gate)
    return report


def _report(
    settings: OnlineConfig,
    rows: pd.DataFrame,
    targets: pd.Series,
    events: pd.DataFrame,
    since: float,
    until: float,
    dropped: int,
    n_files: int,
    skipped: list[str],
    offline: dict[str, float] | None,
) -> OnlineReport:
    follow_up_s = settings.follow_up_minutes * 60
    report = OnlineReport(
        since=since,
        until=until,
        k=settings.k,
        follow_up_s=follow_up_s,
        served=len(rows),
        pairs=int(targets.notna().sum()),
        without_session_id=int(rows["session_id"].isna().sum()) if len(rows) else 0,
        without_next_event=int((rows["session_id"].notna() & targets.isna()).sum()) if len(rows) else 0,
        dropped=dropped,
        follow_up_files=n_files,
        skipped_files=skipped,
    )
    if not len(rows):
        return report
    offline = offline_ndcg() if offline is None else offline
    popular = _popular_items(events, rows, settings.popular_share_top)
    for (name, version, role), group in rows.groupby(["model_name", "model_version", "role"], sort=True):
        figures = _figures(str(name), str(version), str(role), group, targets, popular, settings)
        figures.offline_ndcg_at_10 = offline.get(str(version))
        report.versions.append(figures)
    report.versions.sort(key=lambda v: (_as_number(v.model_version), v.role))
    report.correlation, report.correlated_versions = _correlation(report.versions, settings.min_pairs)
    return report


def _as_number(version: str) -> float:
    try:
        return float(version)
    except ValueError:
        return math.inf


def _figures(
    name: str,
    version: str,
    role: str,
    group: pd.DataFrame,
    targets: pd.Series,
    popular: set[str],
    settings: OnlineConfig,
) -> VersionFigures:
    joined = targets.loc[group.index].notna()
    pairs = group.loc[joined[joined].index]
    ranks = served_ranks(pairs["items"], targets.loc[pairs.index])
    masks = {
        "cold": pairs["fallback"].notna().to_numpy(),
        "unknown_items": np.array([len(items) > 0 for items in _column(pairs, "unknown_items")], dtype=bool),
        "short_sessions": short_sessions(list(pairs["session"])),
    }
    served_items = [item for items in group["items"] for item in items]
    catalogue = int(group["catalogue_size"].max()) if len(group) else 0
    return VersionFigures(
        model_name=name,
        model_version=version,
        role=role,
        served=len(group),
        pairs=len(ranks),
        metrics=summarize(ranks, ks=(settings.k,)),
        coverage=len(set(served_items)) / catalogue if catalogue else 0.0,
        popular_share=sum(item in popular for item in served_items) / max(1, len(served_items)),
        slices=slice_figures(ranks, masks, settings.k),
    )


def _column(rows: pd.DataFrame, name: str) -> list[Any]:
    """A list column, empty lists for rows of a log written before it existed."""
    if name not in rows.columns:
        return [[] for _ in range(len(rows))]
    return [list(value) if value is not None and not isinstance(value, float) else [] for value in rows[name]]


def offline_ndcg(versions: list[Any] | None = None) -> dict[str, float]:
    """Version -> offline test NDCG@10 (tag ``test_ndcg_10``) of ``versions`` (default: every
    registered version)."""
    if versions is None:
        from recops import registry

        versions = registry.list_versions()
    return {str(v.version): float(v.tags["test_ndcg_10"]) for v in versions if v.tags.get("test_ndcg_10")}


def record_report(report: OnlineReport, min_pairs: int) -> list[str]:
    """Write each registered version's figures (with ``min_pairs`` pairs or more) to the
    registry; the versions written."""
    from recops.registry.online import record_online

    written = []
    window = f"{_utc(report.since)} to {_utc(report.until)}"
    for v in report.versions:
        if v.pairs < min_pairs or not v.model_version.isdigit() or v.model_name != _model_name():
            continue
        figures = {**v.metrics, "coverage": v.coverage, "popular_share": v.popular_share}
        details = {"role": v.role, "pairs": str(v.pairs), "served": str(v.served), "window": window}
        record_online(int(v.model_version), figures, details, report.until)
        written.append(v.model_version)
    return written


def _model_name() -> str:
    from recops.registry import MODEL_NAME

    return MODEL_NAME
