"""What every `recops` sub-command shares: the one error handler and logging to stderr.

Every command group is a :func:`command_group`; its group class turns a
:class:`recops.errors.RecopsError` raised anywhere below a command into ``error: <message>``
on stderr and exit code 2. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup, TyperOption

from recops.config import Config, load_config, parse_override
from recops.data import DATASET_HELP
from recops.errors import RecopsError
from recops.redact import install_log_redaction, redact

EXIT_ERROR = 2


def fail(exc: Exception) -> typer.Exit:
    """Print ``error: ...`` (credentials masked) on stderr; the caller raises the returned Exit
    (code 2)."""
    typer.secho(f"error: {redact(str(exc))}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=EXIT_ERROR)


class RecopsGroup(TyperGroup):
    """A command group whose commands report a RecopsError as ``error: ...`` (exit 2)."""

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except RecopsError as exc:
            raise fail(exc) from exc


def reflowed(text: str) -> str:
    """Help text whose paragraphs are one line each, for the help screen to wrap at the
    terminal's width (typer keeps a docstring's line breaks, so lines broken at 100 columns wrap
    raggedly at 80). A paragraph holding a list or indented lines is kept as written."""
    paragraphs = re.split(r"\n\s*\n", inspect.cleandoc(text))
    kept = [
        paragraph
        if any(re.match(r"\s|[-*] |\d+\. ", line) for line in paragraph.splitlines())
        else " ".join(line.strip() for line in paragraph.splitlines())
        for paragraph in paragraphs
    ]
    return "\n\n".join(kept)


def _flags_show_no_type(display_type_rich: Callable) -> Callable:
    """typer 0.29 shows a type for every option, ``<bool>`` on flags too (``--json <bool>``,
    ``--help <bool>``), which reads as if the flag took a value; a flag shows none."""

    def display(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else display_type_rich(self, ctx)

    return display


TyperOption.display_type_rich = _flags_show_no_type(TyperOption.display_type_rich)  # type: ignore[method-assign]


class RecopsTyper(typer.Typer):
    """``typer.Typer`` whose commands' help (their docstrings) is reflowed (:func:`reflowed`)."""

    def command(self, name: str | None = None, **kwargs: Any) -> Callable[[Callable], Callable]:
        def register(function: Callable) -> Callable:
            if kwargs.get("help") is None and function.__doc__:
                kwargs["help"] = reflowed(function.__doc__)
            return super(RecopsTyper, self).command(name, **kwargs)(function)

        return register


def command_group(help: str, **kwargs) -> typer.Typer:
    """A ``typer.Typer`` with recops' error handler, help on no arguments and plain tracebacks."""
    return RecopsTyper(
        cls=RecopsGroup, help=reflowed(help), no_args_is_help=True, pretty_exceptions_enable=False, **kwargs
    )


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
    """Progress lines on stderr (stdout stays for results, e.g. --json), every one with its
    credentials masked (:class:`recops.redact.RedactingFilter` on the root logger's handler)."""
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(message)s",
        handlers=[_CurrentStderr()],
        force=True,
    )
    install_log_redaction()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness poll otherwise


def quiet_temporary_api() -> None:
    """Call before and after reading Prefect: its temporary API, started to read RECOPS_HOME's history, logs
    its stop at exit at INFO, through the handler Prefect set up on first use (after
    :func:`log_to_stderr`): not a result of the command."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # Prefect's setup, when still to come
    logging.getLogger("prefect").setLevel(logging.WARNING)  # and when it is done


DatasetOpt = Annotated[str, typer.Option("--dataset", "-d", help=DATASET_HELP)]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (see configs/default.toml).")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key, e.g. --set sasrec.lr=0.001 (repeatable)."),
]


def load_cli_config(path: Path | None, sets: list[str] | None, extra: dict | None = None) -> Config:
    """The config file with --set overrides and option values (``extra``) applied."""
    overrides = dict(parse_override(s) for s in sets or [])
    overrides.update(extra or {})
    return load_config(path, overrides)


def print_epoch(prefix: str = ""):
    """An on_epoch callback printing one progress line per epoch on stderr."""

    from recops.training.train import epoch_line

    def show(stats) -> None:
        typer.echo(epoch_line(stats, prefix), err=True)

    return show
