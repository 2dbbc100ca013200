"""What every `recops` sub-command shares: the error exit and logging to stderr."""

from __future__ import annotations

import logging
import sys

import typer

EXIT_ERROR = 2


def fail(exc: Exception) -> typer.Exit:
    """Print ``error: ...`` on stderr; the caller raises the returned Exit (code 2)."""
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=EXIT_ERROR)


def log_to_stderr(quiet: bool = False) -> None:
    """Progress lines on stderr (stdout stays for results, e.g. --json)."""
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr, force=True
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness poll otherwise
