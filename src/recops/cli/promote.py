"""``recops promote``: a tagged notebook becomes a Metaflow flow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

PROMOTE_EPILOG = "Example: recops promote notebooks/02_train_sequence_model.ipynb -o flows/train.py"


def promote_command(
    notebook: Annotated[Path, typer.Argument(help="The tagged Jupyter notebook (.ipynb).")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the flow to this file (atomically) instead of stdout."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="Flow class name (default: from the file name, 02_train.ipynb -> TrainFlow)."),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Write nothing; exit 1 if OUTPUT is missing or not what promotion gives now."
        ),
    ] = False,
) -> None:
    """Turn a tagged notebook into a Metaflow flow (a FlowSpec file).

    Tags on code cells:
      parameters - lines `name = literal  # help` become Parameters
      imports, functions - module-level code of the flow file
      step:NAME - starts step NAME; the untagged cells below it join the step
      skip - left out
      resources:cpu=4, resources:memory=16000, retry:N - decorate the step
        (one tag per key: a comma in a tag breaks the notebook schema)
      no-cache - the step always runs; every other step is @cached (reused while
        its code and inputs are unchanged; --no-cache on the flow runs all)

    Values pass between steps as artifacts, found by reading the code.
    """
    from recops.promote import check_flow, promote_notebook, write_flow

    if check:
        if output is None:
            raise typer.BadParameter(
                "--check compares with an existing flow file; give it", param_hint="--output"
            )
        up_to_date, message = check_flow(notebook, output, name)
    elif output is not None:
        write_flow(notebook, output, name)
    else:
        source = promote_notebook(notebook, name)
    if check:
        typer.echo(message, err=not up_to_date)
        raise typer.Exit(code=0 if up_to_date else 1)
    if output is not None:
        typer.echo(f"wrote {output}", err=True)
    else:
        typer.echo(source, nl=False)
