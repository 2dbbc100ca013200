"""What the step cache saved (``recops cache report``) and whether its hits were right
(``recops cache audit``): both read the hit records ``@cached`` writes into the Metaflow datastore.

The audit re-executes sampled hits with Metaflow's ``spin`` (one step, the hit task's own inputs,
cache off) and compares every output artifact's :func:`~recops.pipeline.digest.stable_digest` with
the reused one. A difference is a hidden input (something the step read that its trace does not
name) or non-determinism; either way the cached result cannot be trusted, and the audit fails
naming the step and the artifact.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from recops.errors import RecopsError
from recops.paths import REPO_ROOT
from recops.pipeline.cache import ENV
from recops.pipeline.cache_index import all_hits
from recops.pipeline.digest import stable_digest

_SPAN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str) -> timedelta:
    """'7d', '12h', '30m', '2w', '90s' -> timedelta; anything else is a clear error."""
    match = _SPAN.match(text or "")
    if not match:
        raise RecopsError(f"--since must be a number and a unit (s, m, h, d, w), e.g. 7d; got {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _when(hit: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(hit["time"])


def cache_report(since: timedelta | None = None, hits: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Hits, seconds and dollars saved, per flow and step and in all, since ``since`` ago."""
    hits = all_hits() if hits is None else hits
    if since is not None:
        cutoff = datetime.now(UTC) - since
        hits = [h for h in hits if _when(h) >= cutoff]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for hit in hits:
        row = rows.setdefault(
            (hit["flow"], hit["step"]),
            {"flow": hit["flow"], "step": hit["step"], "hits": 0, "seconds_saved": 0.0, "cost_saved": None},
        )
        row["hits"] += 1
        row["seconds_saved"] += hit["seconds_saved"]
        if hit.get("cost_saved") is not None:
            row["cost_saved"] = (row["cost_saved"] or 0.0) + hit["cost_saved"]
    steps = sorted(rows.values(), key=lambda r: -r["seconds_saved"])
    for row in steps:
        row["seconds_saved"] = round(row["seconds_saved"], 2)
        row["cost_saved"] = None if row["cost_saved"] is None else round(row["cost_saved"], 6)
    costs = [r["cost_saved"] for r in steps if r["cost_saved"] is not None]
    return {
        "since": None if since is None else str(since),
        "hits": len(hits),
        "seconds_saved": round(sum(r["seconds_saved"] for r in steps), 2),
        "cost_saved": round(sum(costs), 6) if costs else None,
        "first": min((h["time"] for h in hits), default=None),
        "last": max((h["time"] for h in hits), default=None),
        "steps": steps,
    }


def report_text(report: dict[str, Any]) -> str:
    span = f" in the last {report['since']}" if report["since"] else ""
    if not report["hits"]:
        return f"step cache: no hits{span}"
    cost = "" if report["cost_saved"] is None else f", ${report['cost_saved']:.4f}"
    lines = [f"step cache: {report['hits']} hits{span}, {report['seconds_saved']:.1f} s saved{cost}"]
    lines.append(f"  {'flow':<26} {'step':<12} {'hits':>5} {'seconds':>10} {'USD':>10}")
    for row in report["steps"]:
        usd = "-" if row["cost_saved"] is None else f"{row['cost_saved']:.4f}"
        lines.append(
            f"  {row['flow']:<26} {row['step']:<12} {row['hits']:>5} {row['seconds_saved']:>10.1f} {usd:>10}"
        )
    return "\n".join(lines)


@dataclass
class AuditResult:
    pathspec: str  # the hit
    step: str
    cached_from: str
    rerun: str = ""  # the spun task
    differing: list[str] = field(default_factory=list)  # output artifacts whose digests differ
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.differing and not self.error


def _flow_file(hit: dict[str, Any]) -> Path:
    path = Path(hit["flow_file"])
    for candidate in (path, REPO_ROOT / path, Path.cwd() / path):
        if candidate.is_file():
            return candidate
    raise RecopsError(
        f"flow file {hit['flow_file']!r} of {hit['pathspec']} not found (run from the repo root)"
    )


def audit_hit(hit: dict[str, Any]) -> AuditResult:
    """Re-execute one hit (Metaflow spin, cache off) and compare its outputs with the reused ones."""
    from metaflow import Runner, Task, namespace

    namespace(None)
    result = AuditResult(hit["pathspec"], hit["step"], hit["cached_from"])
    env = {**os.environ, ENV: "off"}
    try:
        with Runner(str(_flow_file(hit)), show_output=False, env=env).spin(
            hit["pathspec"], persist=True
        ) as spun:
            if spun.status != "successful":
                result.error = f"the re-execution failed ({spun.status}): {spun.stderr[-600:]}"
                return result
            result.rerun = spun.task.pathspec
            reused = Task(hit["pathspec"], _namespace_check=False)
            for name in hit["outputs"]:
                if stable_digest(reused[name].data) != stable_digest(spun.task[name].data):
                    result.differing.append(name)
    except RecopsError as exc:
        result.error = str(exc)
    return result


def cache_audit(
    sample: int, step: str | None = None, seed: int | None = None, hits: list[dict[str, Any]] | None = None
) -> list[AuditResult]:
    """Re-execute ``sample`` hits drawn at random (of ``step`` only, if given)."""
    if sample < 1:
        raise RecopsError(f"--sample must be at least 1, got {sample}")
    hits = all_hits() if hits is None else hits
    if step:
        hits = [h for h in hits if h["step"] == step]
    chosen = random.Random(seed).sample(hits, min(sample, len(hits)))
    return [audit_hit(hit) for hit in chosen]


def audit_text(results: list[AuditResult]) -> str:
    if not results:
        return "step cache audit: no hits to audit"
    bad = [r for r in results if not r.ok]
    lines = [f"step cache audit: {len(results) - len(bad)} of {len(results)} re-executed hits match"]
    for r in results:
        if r.error:
            lines.append(f"  FAILED   {r.pathspec}: {r.error}")
        elif r.differing:
            names = ", ".join(repr(n) for n in r.differing)
            lines.append(
                f"  DIFFERS  step {r.step!r} ({r.pathspec}, reused from {r.cached_from}): artifact {names} "
                "differs on re-execution: a hidden input or non-determinism"
            )
        else:
            lines.append(f"  ok       {r.pathspec} (re-executed as {r.rerun})")
    return "\n".join(lines)
