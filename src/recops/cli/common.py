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


class _CurrentStderr(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a record is emitted, not as it was when logging was
    set up: a command run in-process (typer's CliRunner, pytest's capture) swaps stderr for a
    buffer that is closed afterwards, and later records must not go to that closed buffer."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:  # StreamHandler.__init__ assigns it
        pass


def log_to_stderr(quiet: bool = False) -> None:
    """Progress lines on stderr (stdout stays for results, e.g. --json)."""
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(message)s",
        handlers=[_CurrentStderr()],
        force=True,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness poll otherwise
