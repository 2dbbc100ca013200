"""Help screens read well at 80 columns: paragraphs wrap at the terminal's width, not at the
docstring's line breaks, and flags show no ``<bool>`` as if they took a value."""

import itertools

import pytest
from typer.testing import CliRunner

from recops.cli.common import reflowed
from recops.cli.main import app

pytestmark = pytest.mark.unit


def test_paragraphs_become_one_line_and_lists_stay_as_written():
    text = """First line
    goes on here.

    - a list item
    - another

    Last paragraph
    in two lines."""
    expected = "First line goes on here.\n\n- a list item\n- another\n\nLast paragraph in two lines."
    assert reflowed(text) == expected


@pytest.mark.parametrize("command", [["retrain"], ["schedule", "status"], ["serve"], ["evaluate"]])
def test_help_at_80_columns_has_no_ragged_lines_and_no_bool_on_flags(command):
    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    lines = [line.rstrip() for line in result.output.splitlines()]
    description = lines[lines.index(next(line for line in lines if line.startswith(" Usage:"))) + 2 :]
    description = description[: next(i for i, line in enumerate(description) if line.startswith("╭"))]
    # wrapped at the width, a line ends only where the next word would not fit; a docstring
    # line broken at 100 columns and wrapped at 80 leaves a short line with room for it
    for line, following in itertools.pairwise(description):
        if line.strip() and following.strip():
            assert len(line) + 1 + len(following.split()[0]) > 76, f"ragged: {line!r} before {following!r}"
