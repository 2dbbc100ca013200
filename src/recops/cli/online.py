"""``recops online-report`` (served lists against what shoppers did next) and
``recops simulate-traffic`` (simulated shoppers against the running service)."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from recops.cli.common import log_to_stderr
from recops.data import DATASET_HELP
from recops.errors import RecopsError

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config (see configs/default.toml).")
]
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float) -> float:
    """``"24h"``, ``"90m"``, ``"7d"`` (ago) or an ISO time (UTC unless it says otherwise)."""
    if match := _DURATION.fullmatch(text.strip()):
        return now - float(match[1]) * _UNIT_S[match[2]]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise RecopsError(f"--since {text!r}: give a duration (30m, 24h, 7d) or an ISO time") from None
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def online_report_command(
    since: Annotated[
        str | None,
        typer.Option(
            help="Start of the window: 30m, 24h, 7d ago or an ISO time (default: online.window_hours ago)."
        ),
    ] = None,
    record: Annotated[
        bool,
        typer.Option(
            "--record/--no-record",
            help="Write each version's figures (with online.min_pairs pairs or more) to the registry.",
        ),
    ] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """What the service answered, joined with what each shopper did next: HR/NDCG/MRR@K (the
    offline metric code), catalogue coverage and popular share per model version and role,
    beside each version's offline test NDCG@10, and their correlation across versions.

    Served lists come from the served-list log in the store (<store>/served/), follow-up events
    from its incoming files. Answers need a session_id in the request to be joined.
    """
    from recops.config import load_config
    from recops.continuous.online import online_report, record_report

    log_to_stderr(quiet=json_out)
    settings = load_config(config)
    now = time.time()
    report = online_report(settings, since=None if since is None else parse_since(since, now), until=now)
    written = record_report(report, settings.online.min_pairs) if record and report.versions else []
    if json_out:
        typer.echo(json.dumps({**report.to_dict(), "recorded_versions": written}, default=str))
        return
    typer.echo(report.markdown(settings.online.min_pairs), nl=False)
    if written:
        typer.echo(f"recorded online figures of version(s) {', '.join(written)} in the registry")


def simulate_traffic_command(
    sessions: Annotated[
        int, typer.Option(help="Simulated shoppers (sessions of two events or more).", min=1)
    ] = 200,
    dataset: Annotated[str, typer.Option("--dataset", "-d", help=DATASET_HELP)] = "synthetic",
    url: Annotated[
        str | None,
        typer.Option(
            help="The service (default: the running `recops serve`, else a server started for the run)."
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Which block of held-out sessions (default: from the clock).")
    ] = None,
    k: Annotated[int, typer.Option(help="Items asked for per request.", min=1, max=1000)] = 10,
    config: ConfigOpt = None,
) -> None:
    """Replay held-out sessions against the service and write what each shopper did next into
    <store>/incoming: each session's events but the last go to POST /recommend with its
    session_id, then the whole session, its last event a second after the answer, becomes one
    new incoming file. Without --url and no running `recops serve`, the deployed bento is
    served for the run and stopped after it (which also flushes its served-list log)."""
    from recops.config import load_config
    from recops.continuous.traffic import held_out_sessions, simulate_traffic
    from recops.data.schema import id_kind
    from recops.store import open_store

    log_to_stderr()
    settings = load_config(config)
    seed = int(time.time()) % 100_000 if seed is None else seed
    frame = held_out_sessions(dataset, settings, sessions, seed)
    text_ids = id_kind(frame["session_id"]) == "text"
    store = open_store(settings)
    server = None
    if url is None:
        from recops.serving.server import running_server

        url = running_server()
    if url is None:
        server = _start_deployed_server()
        url = server.url
    try:
        typer.echo(f"replaying {frame['session_id'].nunique()} held-out sessions (seed {seed}) against {url}")
        result = simulate_traffic(url, store, frame, k=k, text_ids=text_ids)
    finally:
        if server is not None:
            server.stop()
    if result.example:
        typer.echo(f"for example: POST {url}/recommend {json.dumps(result.example['request'])}")
        typer.echo(json.dumps(result.example["answer"], indent=2))
    by_version = ", ".join(f"version {v}: {n}" for v, n in sorted(result.versions.items()))
    typer.echo(
        f"{result.requests} requests ({result.failed} failed) in {result.seconds:.1f}s, answered by model "
        f"{by_version or 'none'}; "
        f"wrote {result.events} events of what the shoppers did next to {result.file or '(nothing)'}"
    )
    if result.failed == result.requests:
        raise RecopsError(f"every request to {url} failed; is the service up? (see the warnings above)")


def _start_deployed_server():
    from recops.localproc import free_port
    from recops.serving.deployment import deployment_file, read_deployment
    from recops.serving.model_store import BentoError
    from recops.serving.server import serve

    record = read_deployment()
    if not record:
        raise BentoError("nothing is deployed and no server runs: run `recops deploy` (or pass --url)")
    typer.echo(f"starting {record['bento_tag']} on 127.0.0.1 for the run", err=True)
    return serve(record["bento_tag"], port=free_port(), deployment=deployment_file())
