"""Parsing notebook cells: IPython lines, trailing comments, and the ``parameters`` cell's
``name = literal  # help`` lines as flow Parameters.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass

from recops.promote.notebook import Cell, PromotionError

# Names a FlowSpec already uses: an artifact or parameter with one of them would replace it.
FLOWSPEC_ATTRIBUTES = frozenset(
    {"cmd", "foreach_stack", "index", "input", "merge_artifacts", "name", "next", "script_name"}
)


# Metaflow refuses these as parameter names (they are options of `run` itself).
METAFLOW_RESERVED_PARAMETERS = frozenset(
    {
        "params",
        "with",
        "tag",
        "namespace",
        "obj",
        "tags",
        "decospecs",
        "run_id_file",
        "max_num_splits",
        "max_workers",
        "max_log_size",
        "user_namespace",
        "run_id",
        "task_id",
        "runner_attribute_file",
    }
)


PARAMETER_TYPES = {bool: "bool", int: "int", float: "float", str: "str"}


def _ipython_line(source: str) -> tuple[int, str] | None:
    for number, line in enumerate(source.splitlines(), start=1):
        if line.lstrip().startswith(("%", "!")):
            return number, line.strip()
    return None


def parse_cell(cell: Cell) -> ast.Module:
    """Parse a cell as plain Python; IPython magics and shell escapes are named as such."""
    candidate = _ipython_line(cell.source)
    try:
        tree = ast.parse(cell.source)
        # ast.parse accepts what only the compiler rejects, such as `return` outside a function.
        compile(tree, f"<{cell.where}>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        # A line starting with % or ! can be valid Python inside brackets; only blame it on failure.
        if candidate is not None:
            number, line = candidate
            kind = "a shell escape" if line.startswith("!") else "an IPython magic"
            raise PromotionError(
                f"{cell.where}: line {number} `{line}` is {kind}, which cannot run inside a flow step; "
                "move package installs to the project's requirements and remove display magics"
            ) from exc
        raise PromotionError(f"{cell.where}: syntax error at line {exc.lineno}: {exc.msg}") from exc
    return tree


def _trailing_comments(source: str) -> dict[int, str]:
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    return comments


@dataclass(frozen=True)
class FlowParameter:
    name: str
    default: str  # the literal as written in the notebook
    type_name: str  # int, float, str or bool
    help: str | None
    cell: Cell


def _parameter(statement: ast.stmt, cell: Cell, comments: dict[int, str]) -> FlowParameter:
    problem = (
        f"{cell.where}: line {statement.lineno}: a parameters cell holds only `name = literal` lines "
        "(an int, float, str or bool literal, optionally with a `# help` comment)"
    )
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
        target, value, annotation = statement.targets[0], statement.value, None
    elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
        target, value, annotation = statement.target, statement.value, statement.annotation
    else:
        raise PromotionError(problem)
    if not isinstance(target, ast.Name):
        raise PromotionError(problem)
    try:
        literal = ast.literal_eval(value)
    except ValueError:
        raise PromotionError(problem) from None
    type_name = PARAMETER_TYPES.get(type(literal))
    if type_name is None:
        raise PromotionError(f"{problem}; {target.id} is a {type(literal).__name__}")
    default = ast.get_source_segment(cell.source, value) or repr(literal)
    if isinstance(annotation, ast.Name) and annotation.id == "float" and type_name == "int":
        type_name, default = "float", repr(float(literal))
    elif isinstance(annotation, ast.Name) and annotation.id != type_name:
        raise PromotionError(f"{problem}; {target.id} is annotated {annotation.id} but set to {default}")
    return FlowParameter(target.id, default, type_name, comments.get(statement.end_lineno), cell)


def parse_parameters(cells: Sequence[Cell]) -> list[FlowParameter]:
    """Each `name = literal` of the parameters cells, with its type and `# comment` as help."""
    parameters: dict[str, FlowParameter] = {}
    for cell in cells:
        tree = parse_cell(cell)
        comments = _trailing_comments(cell.source)
        for statement in tree.body:
            parameter = _parameter(statement, cell, comments)
            if parameter.name in parameters:
                raise PromotionError(
                    f"{cell.where}: parameter {parameter.name} is already set in "
                    f"{parameters[parameter.name].cell.where}"
                )
            if parameter.name.startswith("_") or parameter.name in (
                FLOWSPEC_ATTRIBUTES | METAFLOW_RESERVED_PARAMETERS
            ):
                raise PromotionError(
                    f"{cell.where}: parameter name {parameter.name!r} is reserved by Metaflow; rename it"
                )
            parameters[parameter.name] = parameter
    return list(parameters.values())
