"""``recops bento build``, ``recops serve`` and ``recops bench serve``.

Registered in ``recops.cli.main``::

    from recops.cli.bento import bench_serve_command, bento_app, serve_command

    app.add_typer(bento_app, name="bento")
    app.command("serve")(serve_command)
    bench_app.command("serve")(bench_serve_command)

``python -m recops.cli.bento build ...`` runs the bento commands on their own.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from recops.cli.common import fail, log_to_stderr

bento_app = typer.Typer(
    help="Package a model as a BentoML bento.", no_args_is_help=True, pretty_exceptions_enable=False
)


@bento_app.callback()
def _bento_group() -> None:
    """Package a model as a BentoML bento."""  # keeps `build` a subcommand when it is the only one


def _user_errors() -> tuple[type[Exception], ...]:
    from recops.serving.runtime import BentoError
    from recops.training.checkpoint import CheckpointError

    errors: list[type[Exception]] = [BentoError, CheckpointError, ValueError, FileNotFoundError]
    registry = sys.modules.get("recops.registry")  # imported by --alias; MLflow is slow to import
    if registry is not None:
        errors.append(registry.RegistryError)
    return tuple(errors)


@bento_app.command("build")
def build_command(
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="checkpoint.pt written by `recops train`.")
    ] = None,
    alias: Annotated[
        str | None, typer.Option("--alias", help="Registry alias to package, e.g. champion or challenger.")
    ] = None,
) -> None:
    """Import a model into the BentoML store and build the bento that serves it.

    Prints the bento tag (session_recommender:VERSION) on stdout; the bento and its model are
    labelled with the model's name, version, run id and data lineage.
    """
    from recops.serving.runtime import build_bento

    log_to_stderr()
    if (checkpoint is None) == (alias is None):
        raise fail(ValueError("give exactly one of --checkpoint PATH or --alias NAME"))
    try:
        tag = build_bento(checkpoint_path=checkpoint, alias=alias)
    except _user_errors() as exc:
        raise fail(exc) from exc
    typer.echo(tag)


def serve_command(
    bento: Annotated[
        str | None,
        typer.Argument(
            help="Bento tag or a service folder (default: the deployed bento, see `recops retrain`, "
            "else the newest session_recommender bento)."
        ),
    ] = None,
    port: Annotated[int, typer.Option("--port", "-p", help="Port on 127.0.0.1.")] = 3000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default: the service's, 2).", min=1)
    ] = None,
    smoke: Annotated[
        str | None,
        typer.Option(
            help="Send this JSON body to /recommend once, print the answer and stop "
            '(e.g. \'{"session": [1, 2], "k": 5}\').'
        ),
    ] = None,
) -> None:
    """Serve a bento over HTTP (POST /recommend, /recommend_batch; /readyz, /metrics) until Ctrl-C.

    The server follows the local deployment record ($RECOPS_HOME/serving/deployment.json): when
    `recops retrain` deploys a new champion, the workers swap to it without a restart.
    """
    import json
    import urllib.request

    from recops.serving.runtime import BentoError, deployment_file, read_deployment, serve, server_record

    log_to_stderr()
    bento = bento or (read_deployment() or {}).get("bento_tag") or "session_recommender:latest"
    try:
        server = serve(
            bento,
            host=host,
            port=port,
            workers=workers,
            show_output=smoke is None,
            deployment=deployment_file(),
        )
    except _user_errors() as exc:
        raise fail(exc) from exc
    if smoke is not None:
        try:
            request = urllib.request.Request(
                f"{server.url}/recommend", data=smoke.encode(), headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read())
            typer.echo(f"POST {server.url}/recommend {smoke}")
            typer.echo(json.dumps(answer, indent=2))
        except OSError as exc:
            raise fail(BentoError(f"smoke request failed: {exc}")) from exc
        finally:
            server.stop()
        typer.echo("server stopped", err=True)
        return
    typer.echo(f"serving {bento} at {server.url}; Ctrl-C stops it", err=True)
    try:
        with server_record(server):
            server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    if server.process.returncode not in (0, -15):
        raise fail(BentoError(f"bentoml serve exited with code {server.process.returncode}"))


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise ValueError(f"{option} takes comma-separated integers, not {text!r}") from exc
    if not values:
        raise ValueError(f"{option} needs at least one value")
    return values


def bench_serve_command(
    catalogs: Annotated[str, typer.Option(help="Comma-separated catalogue sizes.")] = "1000,10000,100000",
    concurrency: Annotated[str, typer.Option(help="Comma-separated client concurrency levels.")] = "1,8,32",
    requests: Annotated[int, typer.Option(help="Timed requests per concurrency level.", min=1)] = 1000,
    workers: Annotated[int | None, typer.Option(help="Server worker processes.", min=1)] = None,
    batching: Annotated[
        bool | None, typer.Option("--batching/--no-batching", help="Batch queued queries in the server.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print only the JSON object on stdout.")] = False,
) -> None:
    """Latency (p50/p99), throughput and errors of POST /recommend against the in-process floor."""
    from recops.serving.bench import bench_serve

    log_to_stderr(quiet=json_out)
    try:
        result = bench_serve(
            _int_list(catalogs, "--catalogs"),
            _int_list(concurrency, "--concurrency"),
            requests,
            workers=workers,
            batching=batching,
        )
    except _user_errors() as exc:
        raise fail(exc) from exc
    typer.echo(json.dumps(result, indent=None if json_out else 2))


if __name__ == "__main__":  # pragma: no cover - python -m recops.cli.bento
    bento_app()
