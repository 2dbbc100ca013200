"""Read a tagged notebook into its parts: parameters, module code, and the steps in order.

Cells are numbered from 1 in notebook order, markdown cells included, so "cell 4" is the
fourth cell a reader counts in Jupyter. Tags (cell metadata ``tags``) decide each code cell's
role; an untagged code cell continues the step above it.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import json
import keyword
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from recops.errors import RecopsError

ROLE_TAGS = ("parameters", "imports", "functions", "skip")
# papermill's executed copy carries the values of one run in a cell tagged like this.
PAPERMILL_INJECTED_TAG = "injected-parameters"
RESOURCE_KEYS = ("cpu", "memory", "gpu", "disk")
RESERVED_STEP_NAMES = ("start", "end")
# a step with side effects (writes outside its artifacts) must run every time: no @cached
NO_CACHE_TAG = "no-cache"


class PromotionError(RecopsError):
    """The notebook cannot become a flow; the message names the cell and the problem."""


@dataclass(frozen=True)
class Cell:
    number: int
    label: str  # "parameters", "imports", "functions", "step:NAME", or "" before the first step
    source: str

    @property
    def where(self) -> str:
        return f"cell {self.number} ({self.label})" if self.label else f"cell {self.number}"


@dataclass(frozen=True)
class Step:
    name: str
    cells: tuple[Cell, ...]
    docstring: str
    resources: tuple[tuple[str, int], ...]
    retry: int | None
    cache: bool = True  # @cached (recops.pipeline.cache) unless a cell of the step is tagged no-cache


@dataclass(frozen=True)
class NotebookLayout:
    path: Path
    flow_docstring: str
    parameter_cells: tuple[Cell, ...]
    import_cells: tuple[Cell, ...]
    function_cells: tuple[Cell, ...]
    steps: tuple[Step, ...]
    digest: str


def read_notebook(notebook_path: str | Path) -> nbformat.NotebookNode:
    path = Path(notebook_path)
    # Schema violations are not fatal: a comma in a tag (resources:cpu=4,memory=16000) breaks the
    # schema's tag pattern, and only cell types, sources and tags matter here.
    try:
        return nbformat.read(path, as_version=4)
    except (nbformat.reader.NotJSONError, ValueError, TypeError, KeyError, AttributeError) as exc:
        # nbformat reports a malformed file with whatever its converter tripped on.
        raise PromotionError(f"{path}: not a readable Jupyter notebook ({exc})") from exc


def _source(cell) -> str:
    return str(cell.get("source", "")).replace("\r\n", "\n")


def without_display_expression(source: str) -> str:
    """Drop a cell's last line when it is a bare name or attribute, there only to show its value."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return source  # the analysis reports it, with the line
    if not body or not isinstance(body[-1], ast.Expr):
        return source
    shown = body[-1].value
    parts = shown.elts if isinstance(shown, ast.Tuple) else [shown]
    while parts and isinstance(parts[-1], ast.Attribute):
        parts[-1] = parts[-1].value
    alone_on_its_lines = len(body) == 1 or body[-2].end_lineno < body[-1].lineno
    if not all(isinstance(part, ast.Name) for part in parts) or not alone_on_its_lines:
        return source
    lines = source.split("\n")
    return "\n".join(lines[: body[-1].lineno - 1] + lines[body[-1].end_lineno :])


def _tags(cell) -> list[str]:
    return [str(tag).strip() for tag in cell.get("metadata", {}).get("tags", [])]


def digest_cells(notebook: nbformat.NotebookNode) -> str:
    """Hash what promotion reads (types, sources, tags, order), so running a notebook keeps it."""
    content = [
        {"cell_type": cell.get("cell_type"), "source": _source(cell), "tags": sorted(_tags(cell))}
        for cell in notebook.cells
    ]
    encoded = json.dumps(content, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return "sha256:" + hashlib.sha256(encoded).hexdigest()


def notebook_hash(notebook_path: str | Path) -> str:
    """``sha256:...`` over the cells' types, sources, tags and order; outputs do not count."""
    return digest_cells(read_notebook(notebook_path))


def default_flow_name(notebook_path: str | Path) -> str:
    """``02_train_sequence_model.ipynb`` -> ``TrainSequenceModelFlow``."""
    stem = re.sub(r"^[\d_\-\s]+", "", Path(notebook_path).stem)
    words = [word for word in re.split(r"[^0-9A-Za-z]+", stem) if word]
    name = "".join(word[0].upper() + word[1:] for word in words)
    if not name or not name.isidentifier():
        raise PromotionError(
            f"{notebook_path}: cannot derive a flow class name from the file name; pass one with --name"
        )
    return name if name.endswith("Flow") else name + "Flow"


def _first_line(markdown: str) -> str:
    for line in markdown.splitlines():
        text = line.strip().lstrip("#").strip()
        if text:
            return text
    return ""


@dataclass
class _StepDraft:
    name: str
    first_cell: int
    docstring: str
    cells: list[Cell]
    resources: dict[str, int]
    retry: int | None = None
    cache: bool = True


def _parse_resources(tag: str, where: str) -> dict[str, int]:
    spec = tag.partition(":")[2]
    resources: dict[str, int] = {}
    for item in spec.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or key not in RESOURCE_KEYS:
            raise PromotionError(
                f"{where}: tag {tag!r}: expected resources:KEY=INT, one tag per key (Jupyter tags "
                f"cannot hold commas), e.g. resources:cpu=4; keys {', '.join(RESOURCE_KEYS)}; "
                f"got {item.strip()!r}"
            )
        if not (value.isascii() and value.isdigit()) or (int(value) == 0 and key != "gpu"):
            raise PromotionError(f"{where}: tag {tag!r}: {key} must be a positive integer, got {value!r}")
        if key in resources:
            raise PromotionError(f"{where}: tag {tag!r}: {key} is given twice")
        resources[key] = int(value)
    return resources


def _parse_retry(tag: str, where: str) -> int:
    value = tag.partition(":")[2].strip()
    if not (value.isascii() and value.isdigit()):
        raise PromotionError(f"{where}: tag {tag!r}: expected retry:N with N a whole number of retries")
    return int(value)


def _step_name(tag: str, where: str) -> str:
    name = tag.partition(":")[2].strip()
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise PromotionError(
            f"{where}: tag {tag!r}: a step name must be a Python identifier not starting with '_'"
        )
    if name in RESERVED_STEP_NAMES:
        raise PromotionError(f"{where}: tag {tag!r}: 'start' and 'end' are generated; choose another name")
    return name


TAG_PREFIXES = ("step", "resources", "retry")  # used as PREFIX:VALUE


def _refuse_near_misses(tags: list[str], where: str) -> None:
    """A tag that is not recops' but nearly is (``sikp``, ``step-train``, ``resource:cpu=2``)
    is a typo that would silently change the flow; other tags (a notebook's own) are left alone."""
    known = (*ROLE_TAGS, NO_CACHE_TAG, PAPERMILL_INJECTED_TAG)
    for tag in tags:
        if tag in known or any(_ours(tag, prefix) for prefix in TAG_PREFIXES):
            continue
        head = re.split(r"[:=\-_ ]", tag, maxsplit=1)[0] if ":" in tag or "-" in tag else tag
        close = difflib.get_close_matches(head, [*known, *TAG_PREFIXES], n=1, cutoff=0.75)
        close = close or difflib.get_close_matches(tag, [*known, *TAG_PREFIXES], n=1, cutoff=0.75)
        if close:
            suggestion = f"{close[0]}:..." if close[0] in TAG_PREFIXES else close[0]
            raise PromotionError(
                f"{where}: unknown tag {tag!r}; did you mean {suggestion!r}? (recops' tags: "
                f"{', '.join(known[:-1])}, step:NAME, resources:KEY=INT, retry:N)"
            )


def _ours(tag: str, prefix: str) -> bool:
    return tag == prefix or tag.startswith(prefix + ":")


def _merge_extras(draft: _StepDraft, resources: dict[str, int], retry: int | None, where: str) -> None:
    for key, value in resources.items():
        if draft.resources.get(key, value) != value:
            raise PromotionError(
                f"{where}: resources {key}={value} conflicts with {key}={draft.resources[key]} "
                f"given on another cell of step {draft.name}"
            )
        draft.resources[key] = value
    if retry is not None:
        if draft.retry is not None and draft.retry != retry:
            raise PromotionError(
                f"{where}: retry:{retry} conflicts with retry:{draft.retry} given on another cell "
                f"of step {draft.name}"
            )
        draft.retry = retry


def read_layout(notebook_path: str | Path) -> NotebookLayout:
    """Sort the notebook's cells into parameters, module code and steps; reject what cannot run."""
    path = Path(notebook_path)
    notebook = read_notebook(path)
    flow_docstring = ""
    seen_markdown = False
    previous_markdown: str | None = None
    module_cells: dict[str, list[Cell]] = {"parameters": [], "imports": [], "functions": []}
    drafts: list[_StepDraft] = []

    for number, cell in enumerate(notebook.cells, start=1):
        source = _source(cell)
        if cell.get("cell_type") == "markdown":
            if not seen_markdown:
                flow_docstring, seen_markdown = _first_line(source), True
            previous_markdown = source
            continue
        markdown_above, previous_markdown = previous_markdown, None
        if cell.get("cell_type") != "code":
            continue

        tags = _tags(cell)
        where = f"cell {number}"
        _refuse_near_misses(tags, where)
        roles = [t for t in tags if t in ROLE_TAGS or t == PAPERMILL_INJECTED_TAG or _ours(t, "step")]
        if len(roles) > 1:
            raise PromotionError(f"{where}: tags {', '.join(roles)} conflict; a cell has one role")
        role = roles[0] if roles else ""
        if role in ("skip", PAPERMILL_INJECTED_TAG):
            continue
        resources: dict[str, int] = {}
        retry: int | None = None
        no_cache = NO_CACHE_TAG in tags
        for tag in tags:
            if _ours(tag, "resources"):
                for key, value in _parse_resources(tag, where).items():
                    if resources.setdefault(key, value) != value:
                        raise PromotionError(f"{where}: resources {key} is given twice")
            elif _ours(tag, "retry"):
                retry = _parse_retry(tag, where)

        if role.startswith("step"):
            name = _step_name(role, where)
            if any(draft.name == name for draft in drafts):
                first = next(draft.first_cell for draft in drafts if draft.name == name)
                raise PromotionError(f"{where} (step:{name}): step {name} already starts at cell {first}")
            docstring = _first_line(markdown_above) if markdown_above else ""
            drafts.append(_StepDraft(name, number, docstring or f"Notebook step {name}.", [], {}))

        if role in module_cells:
            if resources or retry is not None or no_cache:
                raise PromotionError(
                    f"{where} ({role}): resources:/retry:/no-cache tags belong on the cells of a step:NAME"
                )
            module_cells[role].append(Cell(number, role, source))
            continue

        if not drafts:
            if not source.strip():
                continue
            raise PromotionError(
                f"{where}: code before the first step: tag; tag it imports/functions/step:NAME/skip"
            )
        draft = drafts[-1]
        _merge_extras(draft, resources, retry, f"{where} (step:{draft.name})")
        draft.cache = draft.cache and not no_cache
        draft.cells.append(Cell(number, f"step:{draft.name}", without_display_expression(source)))

    if not drafts:
        raise PromotionError(
            f"{path}: no cell is tagged step:NAME; tag the first cell of each step "
            "(the untagged cells below it join that step)"
        )
    steps = tuple(
        Step(d.name, tuple(d.cells), d.docstring, tuple(d.resources.items()), d.retry, d.cache)
        for d in drafts
    )
    return NotebookLayout(
        path=path,
        flow_docstring=flow_docstring or f"Flow promoted from the notebook {path.name}.",
        parameter_cells=tuple(module_cells["parameters"]),
        import_cells=tuple(module_cells["imports"]),
        function_cells=tuple(module_cells["functions"]),
        steps=steps,
        digest=digest_cells(notebook),
    )
