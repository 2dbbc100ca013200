"""``recops registry``: list registered versions, gate a challenger, promote, roll back.

The store is ``$MLFLOW_TRACKING_URI`` when set, else the embedded SQLite store under
``$RECOPS_HOME/mlflow``. mlflow is imported inside the commands, so ``recops --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer

from recops.cli.common import command_group

registry_app = command_group(
    "The MLflow model registry of session-recommender: list versions, gate the challenger "
    "against the champion, promote, roll back. Store: $MLFLOW_TRACKING_URI, else SQLite under "
    "$RECOPS_HOME/mlflow."
)

EXIT_REJECTED = 3


def short_dataset(spec: str, width: int = 16) -> str:
    """A dataset spec for a table column: a file source shows its file name (a retrain's
    snapshot, ``parquet:/.../snapshots/<fingerprint>.parquet``, shows ``parquet:<fingerprint>``),
    cut to ``width``; the full spec stays in the version's tags."""
    kind, sep, path = spec.partition(":")
    if sep and ("/" in path or "\\" in path):
        spec = f"{kind}:{Path(path).stem}"
    return spec if len(spec) <= width else spec[: width - 1] + "…"


def versus_baseline(tags: Mapping[str, str]) -> str:
    """How far the version's test NDCG@10 stands above the best simple baseline trained on its
    split, e.g. ``+0.0312 sr`` (``-`` when none was recorded)."""
    lift, model = tags.get("baseline_lift_ndcg_10"), tags.get("baseline_model")
    if not lift or not model:
        return "-"
    try:
        return f"{float(lift):+.4f} {model}"
    except ValueError:
        return f"? {model}"


def lineage(tags: Mapping[str, str]) -> str:
    """Where a version came from, in a few words: the Metaflow run, the git commit, the data
    fingerprint and the version it was warm-started from, e.g.
    ``TrainRecommenderFlow/7 @0123abc data c0651be7 warm:version 3`` (full values in its tags)."""
    parts = [tags.get("metaflow_pathspec") or "-"]
    if commit := tags.get("git_commit"):
        parts.append(f"@{commit[:7]}")
    if fingerprint := tags.get("data_fingerprint"):
        parts.append(f"data {fingerprint.rpartition(':')[2][:8]}")
    if warm := tags.get("warm_started_from"):
        parts.append(f"warm:{warm}")
    return " ".join(parts)


def gate_column(tags: Mapping[str, str]) -> str:
    """The latest gate decision, with how many there were when more than one (re-gated)."""
    from recops.registry.history import decision_history

    decisions = decision_history(tags)
    latest = tags.get("gate_decision", "-")
    return f"{latest} ({len(decisions)} decisions)" if len(decisions) > 1 else latest


@registry_app.command("list")
def list_command() -> None:
    """List every version with its aliases, test NDCG@10, its lead over the best simple
    baseline on the same split (NDCG@10 points), latest gate decision and lineage (Metaflow
    run, git commit, data fingerprint, warm start)."""
    from recops.redact import redact
    from recops.registry import MODEL_NAME, list_versions, tracking_uri

    versions = list_versions()
    if not versions:
        typer.echo(f"no versions of {MODEL_NAME} in {redact(tracking_uri())} yet")
        return
    rows = []
    for v in versions:
        tags = v.tags
        rolled_back = " (rolled back)" if "rolled_back_at" in tags else ""
        rows.append((v, f"{gate_column(tags)}{rolled_back}"))
    width = max(4, *(len(gate) for _, gate in rows))
    typer.echo(
        f"{'version':>7}  {'aliases':<21} {'model':<8} {'dataset':<16} {'ndcg@10':>8}  "
        f"{'vs baseline':<15} {'gate':<{width}}  lineage"
    )
    for v, gate in rows:
        tags = v.tags
        typer.echo(
            f"{v.version:>7}  {','.join(v.aliases) or '-':<21} {tags.get('model', '?'):<8} "
            f"{short_dataset(tags.get('dataset', '?')):<16} {tags.get('test_ndcg_10', '?')[:8]:>8}  "
            f"{versus_baseline(tags):<15} {gate:<{width}}  {lineage(tags)}"
        )


@registry_app.command()
def gate(
    version: Annotated[
        int | None,
        typer.Option("--version", help="Version to gate (default: the one with alias challenger)."),
    ] = None,
    margin: Annotated[
        float | None,
        typer.Option(help="Tolerated NDCG@10 loss: the CI's lower bound must stay above -margin [0]."),
    ] = None,
    latency_budget_ms: Annotated[
        float | None,
        typer.Option(help="Ceiling on the challenger's p95 latency of one recommendation, ms [200]."),
    ] = None,
    latency_ratio: Annotated[
        float | None,
        typer.Option(help="Its p95 may be at most this many times the champion's, timed side by side [2]."),
    ] = None,
    require_beat_baseline: Annotated[
        bool | None,
        typer.Option(
            "--require-beat-baseline/--no-require-beat-baseline",
            help="Reject a challenger that does not beat the best simple baseline saved with it [on].",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Compare champion and challenger even when they rank different item catalogues."
        ),
    ] = False,
    config_path: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="TOML config whose [gate] section is the base (the options above win).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Compare the challenger with the champion on the same test sequences and decide.

    Paired bootstrap of per-sequence NDCG@10, against the champion and against the best simple
    baseline trained on the challenger's split at registration, plus behavioural checks
    (well-formed top-k, finite scores, latency timed beside the champion's). Refused
    (rejected without a comparison): a challenger whose test sequences appear in its training
    data, and one over another item catalogue than the champion's unless --force. On promotion
    the champion alias moves to the challenger. The decision and its figures become the
    version's gate_* tags and are appended to its gate history. Exit code 0: promoted, 3:
    rejected.
    """
    from recops.config import GateConfig, load_config
    from recops.continuous.lock import cycle_lock
    from recops.registry import gate as run_gate

    overrides = {
        "margin": margin,
        "latency_budget_ms": latency_budget_ms,
        "latency_ratio": latency_ratio,
        "require_beat_baseline": require_beat_baseline,
    }
    base = load_config(config_path).gate  # the config's [gate] (default: configs/default.toml)
    config = GateConfig(**{**base.model_dump(), **{k: v for k, v in overrides.items() if v is not None}})
    with cycle_lock("recops registry gate"):
        decision = run_gate(version, config, force=force)
    figures = decision.figures
    verdict = "PROMOTED" if decision.promote else "REJECTED"
    champion = figures.get("champion_version")
    against = f"champion version {champion}" if champion is not None else "no champion"
    typer.echo(f"version {figures.get('challenger_version')} vs {against}: {verdict}")
    for key, value in figures.items():
        if key.startswith("check_") or key in ("challenger_version", "champion_version"):
            continue
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        typer.echo(f"  {key:<16} {shown}")
    for key, value in figures.items():
        if key.startswith("check_"):
            typer.echo(f"  {key.removeprefix('check_'):<16} {value}")
    typer.echo(f"reason: {decision.reason}")
    if not decision.promote:
        raise typer.Exit(code=EXIT_REJECTED)


NoDeployOpt = Annotated[
    bool,
    typer.Option(
        "--no-deploy", help="Only move the alias; leave serving as it is (`recops deploy` reconciles later)."
    ),
]
TimeoutOpt = Annotated[
    float, typer.Option(help="Seconds to wait for serving to answer with the new champion.")
]


def _moved(no_deploy: bool, timeout: float) -> None:
    """After the champion moved: reconcile serving with it, unless told not to."""
    from recops.cli.deploy import EXIT_UNHEALTHY, reconcile_now

    if no_deploy:
        typer.echo("serving left as it is (--no-deploy); `recops deploy` makes it answer with the champion")
    elif not reconcile_now(timeout, "recops registry"):
        raise typer.Exit(code=EXIT_UNHEALTHY)


@registry_app.command()
def promote(
    version: Annotated[int, typer.Argument(help="Version number to make champion.")],
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Promote without the gate's comparison with the champion (recorded as such)."
        ),
    ] = False,
    no_deploy: NoDeployOpt = False,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Make VERSION the champion by hand, then make serving answer with it (unless --no-deploy).
    Refuses a version the gate has not approved unless --force.

    The previous champion is recorded, so `recops registry rollback` undoes this. Holds the
    cycle lock: it waits for a running retrain cycle to finish.
    """
    from recops.continuous.lock import cycle_lock
    from recops.registry import promote as run_promote

    with cycle_lock(f"recops registry promote {version}"):
        info = run_promote(version, force=force)
    previous = info.tags.get("previous_champion")
    after = f" (previous champion: version {previous})" if previous else ""
    typer.echo(f"version {info.version} is now the champion{after}")
    _moved(no_deploy, timeout)


@registry_app.command()
def rollback(
    force: Annotated[
        bool,
        typer.Option("--force", help="Roll back even to a version the gate rejected."),
    ] = False,
    no_deploy: NoDeployOpt = False,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Move the champion alias back to the version that held it before the current champion,
    then make serving answer with it (unless --no-deploy). Each rollback steps one champion
    further back. Refuses a version the gate rejected unless --force, as promote does.
    Holds the cycle lock."""
    from recops.continuous.lock import cycle_lock
    from recops.registry import CHAMPION, RegistryError, get_version
    from recops.registry import rollback as run_rollback

    with cycle_lock("recops registry rollback"):
        try:
            current = f" from version {get_version(CHAMPION).version}"
        except RegistryError:
            current = ""  # rollback() says there is no champion
        info = run_rollback(force=force)
    typer.echo(f"champion rolled back{current} to version {info.version}")
    _moved(no_deploy, timeout)
