"""``recops bento build`` and ``recops serve``.

``python -m recops.cli.bento build ...`` runs the bento commands on their own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from recops.cli.common import command_group, log_to_stderr
from recops.localproc import signals_as_ctrl_c

bento_app = command_group("Package a model as a BentoML bento.")


@bento_app.callback()
def _bento_group() -> None:
    """Package a model as a BentoML bento."""  # keeps `build` a subcommand when it is the only one


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
    from recops.serving.build import build_bento

    log_to_stderr()
    if (checkpoint is None) == (alias is None):
        raise typer.BadParameter("give exactly one of --checkpoint PATH or --alias NAME")
    typer.echo(build_bento(checkpoint_path=checkpoint, alias=alias))


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
    `recops retrain` deploys a new champion, the workers swap to it without a restart. With
    $RECOPS_API_TOKEN set, requests need `Authorization: Bearer <token>` (the health probes
    excepted); --smoke sends it.
    """
    from recops.serving.deployment import read_deployment

    log_to_stderr()
    bento = bento or (read_deployment() or {}).get("bento_tag") or "session_recommender:latest"
    with signals_as_ctrl_c():  # kill, kill %1, a closed terminal: stopped as by Ctrl-C
        _serve_until_stopped(bento, host, port, workers, smoke)


def _serve_until_stopped(bento: str, host: str, port: int, workers: int | None, smoke: str | None) -> None:
    import httpx

    from recops.serving.auth import auth_headers
    from recops.serving.deployment import deployment_file
    from recops.serving.model_store import BentoError
    from recops.serving.server import serve, server_record

    try:
        server = serve(
            bento,
            host=host,
            port=port,
            workers=workers,
            show_output=smoke is None,
            deployment=deployment_file(),
        )
    except KeyboardInterrupt:  # stopped while it started: serve() has stopped the server already
        typer.echo("server stopped", err=True)
        return
    if smoke is not None:
        try:
            response = httpx.post(
                f"{server.url}/recommend",
                content=smoke,
                headers={"Content-Type": "application/json", **auth_headers()},
                timeout=30,
            )
            response.raise_for_status()
            typer.echo(f"POST {server.url}/recommend {smoke}")
            typer.echo(json.dumps(response.json(), indent=2))
        except (httpx.HTTPError, ValueError) as exc:
            raise BentoError(f"smoke request failed: {exc}") from exc
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
        typer.echo("server stopped", err=True)
    if server.process.returncode not in (0, -15):
        raise BentoError(f"bentoml serve exited with code {server.process.returncode}")


if __name__ == "__main__":  # pragma: no cover - python -m recops.cli.bento
    bento_app()
