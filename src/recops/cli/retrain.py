"""`recops retrain` (one continuous-training cycle now) and `recops simulate-events`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from recops.cli.common import fail, log_to_stderr
from recops.data import DATASET_HELP


def retrain_command(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help=DATASET_HELP)] = "synthetic",
    force: Annotated[bool, typer.Option("--force", help="Train even if nothing changed.")] = False,
    on_new_data: Annotated[
        bool | None,
        typer.Option(
            "--on-new-data/--only-on-drift",
            help="Whether new events alone trigger training (default: config retrain.on_new_data).",
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML config (see configs/default.toml).")
    ] = None,
    incoming: Annotated[
        str | None,
        typer.Option(
            help="Folder or store URI (s3://bucket/prefix/incoming) of new event files added to the "
            "dataset (default <store>/incoming: $RECOPS_STORE, else config store.uri, else $RECOPS_HOME)."
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model to train (default: config retrain.model).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the cycle's result as JSON.")] = False,
) -> None:
    """Run one continuous-training cycle now, as the Prefect flow `retrain`.

    Loads DATASET plus the incoming files, compares them (fingerprint, drift), the code and the
    config with the champion's, and trains only when something changed, the champion is too old
    or --force is given. A trained model is registered and gated; a promoted one is packaged as a
    bento and deployed (a running `recops serve` swaps to it). Without PREFECT_API_URL the run
    goes to a temporary local Prefect API with its state under $RECOPS_HOME/prefect.
    """
    from recops.config import load_config
    from recops.paths import use_local_prefect_home

    log_to_stderr(quiet=json_out)
    # a typo fails here, in a second, not as a failed Prefect run
    settings = load_config(config)
    settings.model_section(model or settings.retrain.model)
    from recops.continuous.report import report_template

    report_template(settings)  # a missing notebook, too
    use_local_prefect_home()
    from recops.continuous.flow import retrain

    try:
        result = retrain(
            dataset=dataset,
            force=force,
            retrain_on_new_data=on_new_data,
            config_path=str(config) if config else None,
            incoming=incoming or None,
            model=model,
        )
    except Exception as exc:
        raise fail(exc) from exc
    if json_out:
        typer.echo(json.dumps(result.to_dict(), default=str))
        return
    typer.echo(f"{result.outcome.value}. {result.plan.text()}")
    if result.report_refreshed is not None:
        typer.echo(f"the report notebook changed: version {result.report_refreshed}'s report re-rendered")
    if result.bento_tag:
        typer.echo(f"bento {result.bento_tag}")


def simulate_events_command(
    out: Annotated[Path, typer.Argument(help="CSV file to write (e.g. $RECOPS_HOME/incoming/0001.csv).")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help=DATASET_HELP)] = "synthetic",
    sessions: Annotated[int, typer.Option(help="New sessions to write.", min=1)] = 500,
    shift_popularity: Annotated[
        bool, typer.Option("--shift-popularity", help="Swap items by popularity rank (drift).")
    ] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML config (the synthetic data's shape).")
    ] = None,
    incoming: Annotated[
        str | None,
        typer.Option(
            help="The incoming folder or store URI whose events the new ones must stay clear of, as "
            "`recops retrain --incoming` (default <store>/incoming)."
        ),
    ] = None,
) -> None:
    """Write new events resampled from DATASET, timed after every event a cycle would see.

    New sessions get ids that no known session has and times after the newest known event (the
    dataset, the last snapshot and the files in the incoming folder and in OUT's folder), and end
    by now where there is room: run it again, with the same seed, and the events are new again.
    OUT must not exist: incoming files are append-only (a changed one is quarantined); it is
    written whole, as a temporary file linked into place.
    """
    import time

    from recops.config import load_config
    from recops.continuous.inputs import known_events
    from recops.data import load_events
    from recops.data.synthetic import new_events_like
    from recops.store import Store, StoreConflictError

    log_to_stderr()
    settings = load_config(config)
    folder = Store(out.parent)
    try:
        base = load_events(dataset, settings.data)
        known = known_events(dataset, incoming, settings, also=folder if out.parent.is_dir() else None)
        new = new_events_like(
            base, sessions, shift_popularity=shift_popularity, seed=seed, known=known, now=time.time()
        )
        # whole (a temporary file, then a link), and only where the name is free
        folder.write_bytes(out.name, new.to_csv(index=False).encode(), if_absent=True)
    except StoreConflictError as exc:
        raise fail(
            StoreConflictError(
                str(out),
                "exists already; incoming files are append-only (a cycle quarantines a consumed "
                "file that changed): write the new events to a new name",
            )
        ) from exc
    except Exception as exc:
        raise fail(exc) from exc
    what = "with popularity shifted" if shift_popularity else "like the data"
    ids, first = new["session_id"], datetime.fromtimestamp(float(new["timestamp"].min()), UTC)
    typer.echo(
        f"wrote {len(new)} events in {sessions} sessions {what} to {out} "
        f"(session ids {ids.min()}..{ids.max()}, from {first:%Y-%m-%d %H:%M:%S} UTC)"
    )
