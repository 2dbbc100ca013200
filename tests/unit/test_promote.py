"""`recops promote`: tags, parameters, data flow between steps, errors, and the file it writes."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from recops.promote import (
    PromotionError,
    check_flow,
    default_flow_name,
    notebook_hash,
    promote_notebook,
    write_flow,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "notebooks" / "plain_pipeline.ipynb"


def write_notebook(path: Path, cells: list) -> Path:
    """Cells are (tags, source) for code, or ("md", text) for markdown."""
    notebook = new_notebook()
    for number, (tags, source) in enumerate(cells, start=1):
        if tags == "md":
            notebook.cells.append(new_markdown_cell(source, id=f"c{number}"))
            continue
        cell = new_code_cell(source, id=f"c{number}")
        if tags:
            cell.metadata["tags"] = list(tags)
        notebook.cells.append(cell)
    nbformat.write(notebook, path)
    return path


@pytest.fixture
def promote(tmp_path):
    def run(cells: list, name: str = "demo.ipynb") -> str:
        return promote_notebook(write_notebook(tmp_path / name, cells))

    return run


def promotion_error(promote, cells: list) -> str:
    with pytest.raises(PromotionError) as caught:
        promote(cells)
    return str(caught.value)


def method(source: str, name: str) -> str:
    """The text of one step method of a generated flow."""
    start = source.index(f"    def {name}(self):")
    end = source.find("\n    @", start)
    return source[start:end]


# --- the notebook's identity ---------------------------------------------------------------


def test_hash_ignores_outputs_and_execution_counts(tmp_path):
    notebook = nbformat.read(FIXTURE, as_version=4)
    for count, cell in enumerate((c for c in notebook.cells if c.cell_type == "code"), start=1):
        cell.execution_count = count
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"run {count}\n")]
    executed = tmp_path / "executed.ipynb"
    nbformat.write(notebook, executed)
    assert notebook_hash(executed) == notebook_hash(FIXTURE)
    assert notebook_hash(FIXTURE).startswith("sha256:") and len(notebook_hash(FIXTURE)) == 71

    notebook.cells[5].source += "\nx = x * 2"
    nbformat.write(notebook, executed)
    assert notebook_hash(executed) != notebook_hash(FIXTURE)


def test_hash_follows_tags_and_order(tmp_path):
    cells = [(["step:a"], "x = 1"), (["step:b"], "y = 2")]
    base = notebook_hash(write_notebook(tmp_path / "base.ipynb", cells))
    retagged_cells = [(["step:a"], "x = 1"), (["skip"], "y = 2")]
    retagged = notebook_hash(write_notebook(tmp_path / "tags.ipynb", retagged_cells))
    reordered = notebook_hash(write_notebook(tmp_path / "order.ipynb", cells[::-1]))
    assert len({base, retagged, reordered}) == 3


@pytest.mark.parametrize(
    ("file_name", "flow_name"),
    [
        ("02_train_sequence_model.ipynb", "TrainSequenceModelFlow"),
        ("plain_pipeline.ipynb", "PlainPipelineFlow"),
        ("10-eval-models.ipynb", "EvalModelsFlow"),
        ("notebooks/1_sasrec_vs_gru4rec.ipynb", "SasrecVsGru4recFlow"),
        ("nightly_flow.ipynb", "NightlyFlow"),
    ],
)
def test_default_flow_name_comes_from_the_file_name(file_name, flow_name):
    assert default_flow_name(file_name) == flow_name


def test_a_file_name_without_words_needs_an_explicit_name():
    with pytest.raises(PromotionError, match="--name"):
        default_flow_name("2024_01.ipynb")


# --- parameters ----------------------------------------------------------------------------


def test_parameter_types_defaults_and_help_come_from_the_cell(promote):
    source = promote(
        [
            (
                ["parameters"],
                "epochs = 10  # passes over the data\n"
                "lr = 1e-3  # learning rate\n"
                "model = 'sasrec'\n"
                "use_gpu = False  # train on the GPU\n"
                "offset: float = 2\n"
                "shift = -1",
            ),
            (["step:train"], "result = epochs * lr + offset + shift if use_gpu else len(model)"),
        ]
    )
    assert 'epochs = Parameter("epochs", default=10, type=int, help="passes over the data")' in source
    assert 'lr = Parameter("lr", default=1e-3, type=float, help="learning rate")' in source
    assert 'model = Parameter("model", default="sasrec", type=str)' in source
    assert 'use_gpu = Parameter("use_gpu", default=False, type=bool, help="train on the GPU")' in source
    assert 'offset = Parameter("offset", default=2.0, type=float)' in source
    assert 'shift = Parameter("shift", default=-1, type=int)' in source
    train = method(source, "train")
    for name in ("epochs", "lr", "model", "use_gpu", "offset", "shift"):
        assert f"{name} = self.{name}" in train


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("sizes = [1, 2]", "sizes is a list"),
        ("n = compute()", "parameters cell holds only"),
        ("print('hello')", "parameters cell holds only"),
        ("a = b = 1", "parameters cell holds only"),
    ],
)
def test_a_parameters_cell_holds_only_literal_assignments(promote, line, problem):
    message = promotion_error(promote, [(["parameters"], f"n_rows = 5\n{line}"), (["step:a"], "x = 1")])
    assert message.startswith("cell 1 (parameters): line 2")
    assert problem in message


def test_a_step_cannot_reassign_a_parameter(promote):
    message = promotion_error(promote, [(["parameters"], "seed = 1"), (["step:a"], "seed = seed + 1")])
    assert "cell 2 (step:a): assigns to parameter 'seed'" in message


# --- errors that name the cell -------------------------------------------------------------


def test_a_misspelt_name_is_reported_with_its_cell(promote):
    message = promotion_error(
        promote,
        [
            (["imports"], "import math"),
            (["step:train"], "model = math.sqrt(4)"),
            ([], "scale = 2"),
            ("md", "## Evaluate"),
            (["step:evaluate"], "score = scale * 2"),
            ([], "print(score)\nprint(modle)"),
        ],
    )
    assert message == "cell 6 (step:evaluate): name 'modle' is used but never defined (line 2)"


def test_a_name_used_before_it_is_assigned_points_at_the_assignment(promote):
    message = promotion_error(promote, [(["step:a"], "total = count + 1"), (["step:b"], "count = 3")])
    assert message.startswith("cell 1 (step:a): name 'count' is used before it is assigned")
    assert "first assigned in cell 2 (step:b)" in message


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("!pip install lightgbm", "shell escape"),
        ("%matplotlib inline", "IPython magic"),
        ("  %time total = 1", "IPython magic"),
    ],
)
def test_magics_and_shell_escapes_cannot_run_in_a_step(promote, line, kind):
    message = promotion_error(promote, [(["imports"], "import os"), (["step:a"], f"x = 1\n{line}")])
    assert message.startswith(f"cell 2 (step:a): line 2 `{line.strip()}` is an {kind}".replace("an s", "a s"))
    assert "cannot run inside a flow step" in message
    assert "requirements" in message


def test_a_syntax_error_names_cell_and_line(promote):
    message = promotion_error(promote, [(["step:a"], "x = 1\ny = (2 +\n")])
    assert message.startswith("cell 1 (step:a): syntax error at line 2")


def test_a_notebook_without_steps_is_named(promote, tmp_path):
    message = promotion_error(promote, [(["imports"], "import os"), (["parameters"], "n = 1")])
    assert message.startswith(f"{tmp_path / 'demo.ipynb'}: no cell is tagged step:NAME")


def test_untagged_code_before_the_first_step_must_be_tagged(promote):
    message = promotion_error(promote, [("md", "# Title"), ([], "import os"), (["step:a"], "x = os.sep")])
    assert message == "cell 2: code before the first step: tag; tag it imports/functions/step:NAME/skip"


@pytest.mark.parametrize(
    ("tag", "problem"),
    [
        ("resources:cpu=four", "cpu must be a positive integer"),
        ("resources:ram=4", "one tag per key (Jupyter tags cannot hold commas), e.g. resources:cpu=4"),
        ("resources:cpu=0", "cpu must be a positive integer"),
        ("resources", "expected resources:KEY=INT"),
        ("retry:twice", "expected retry:N"),
    ],
)
def test_bad_resources_and_retry_tags_are_refused(promote, tag, problem):
    message = promotion_error(promote, [(["step:train", tag], "x = 1")])
    assert message.startswith(f"cell 1: tag {tag!r}")
    assert problem in message


def test_resources_may_be_one_tag_or_one_tag_per_key(promote):
    # Commas in tags break the notebook schema's tag pattern, so both spellings are accepted.
    combined = promote([(["step:train", "resources:cpu=4,memory=16000,gpu=1", "retry:2"], "x = 1")])
    split = promote(
        [
            (["step:train", "resources:cpu=4", "resources:memory=16000", "retry:2"], "x = 1"),
            ([], "y = 2"),
            (["resources:gpu=1"], "z = 3"),
        ]
    )
    decorators = (
        "    @resources(cpu=4, memory=16000, gpu=1)\n    @retry(times=2)\n    @step\n    def train(self):"
    )
    assert decorators in combined and decorators in split
    message = promotion_error(
        promote, [(["step:a", "resources:cpu=4"], "x = 1"), (["resources:cpu=8"], "y = 2")]
    )
    assert message.startswith("cell 2 (step:a): resources cpu=8 conflicts with cpu=4")


def test_steps_are_cached_unless_a_cell_is_tagged_no_cache(promote):
    source = promote(
        [
            (["step:prepare"], "x = 1"),
            (["step:publish", "retry:1"], "y = x + 1"),
            (["no-cache"], "print(y)"),  # a later cell of the step carries the tag
        ]
    )
    assert "from recops.pipeline.cache import cached" in source
    assert "    @cached\n    @step\n    def prepare(self):" in source
    assert "    @retry(times=1)\n    @step\n    def publish(self):" in source
    assert "@cached\n    @retry" not in source
    assert 'no_cache = Parameter(\n        "no-cache",' in source and "is_flag=True" in source
    everything_off = promote([(["step:publish", "no-cache"], "x = 1")])
    assert "@cached" not in everything_off and "no-cache" not in everything_off
    assert "no-cache tags belong on the cells of a step" in promotion_error(
        promote, [(["imports", "no-cache"], "import os"), (["step:a"], "x = 1")]
    )
    assert "parameter 'no_cache' is the generated flow's own" in promotion_error(
        promote, [(["parameters"], "no_cache = 1"), (["step:a"], "x = no_cache")]
    )


@pytest.mark.parametrize(
    ("tags", "problem"),
    [
        (["step:start"], "'start' and 'end' are generated"),
        (["step:2nd"], "must be a Python identifier"),
        (["step:a", "imports"], "conflict"),
    ],
)
def test_bad_step_tags_are_refused(promote, tags, problem):
    assert problem in promotion_error(promote, [(tags, "x = 1")])


@pytest.mark.parametrize(
    ("tag", "meant"),
    [
        ("sikp", "skip"),
        ("step-train", "step:..."),
        ("resource:cpu=2", "resources:..."),
        ("nocache", "no-cache"),
    ],
)
def test_a_mistyped_tag_is_refused_with_what_it_nearly_is(promote, tag, meant):
    """A typo in a tag would silently change the flow (a skipped cell promoted, a step merged
    into the one before); a notebook's own tags (hide-input) are left alone."""
    message = promotion_error(promote, [(["step:a"], "x = 1"), ([tag], "y = 2")])
    assert message.startswith(f"cell 2: unknown tag {tag!r}; did you mean {meant!r}?"), message
    assert "def a(self)" in promote([(["step:a", "hide-input"], "x = 1"), (["remove-cell"], "y = 2")])


def test_a_step_name_is_used_once(promote):
    message = promotion_error(promote, [(["step:a"], "x = 1"), (["step:a"], "y = 2")])
    assert message == "cell 2 (step:a): step a already starts at cell 1"


def test_functions_defined_in_a_step_cannot_reach_a_later_step(promote):
    message = promotion_error(
        promote, [(["step:a"], "def double(v):\n    return 2 * v"), (["step:b"], "y = double(2)")]
    )
    assert message.startswith("cell 2 (step:b): 'double' comes from cell 1 (step:a), a function defined")
    assert "functions cell" in message


# --- the data flow between steps -----------------------------------------------------------


def test_a_value_set_in_one_step_is_stored_there_and_loaded_where_read(promote):
    source = promote(
        [
            (["step:load"], "table = [3, 1, 2]\nscratch = len(table)"),
            (["step:idle"], "note = 'nothing read from load'"),
            (["step:summarise"], "total = sum(table)\nbiggest = max(table)"),
        ]
    )
    load, idle, summarise = (method(source, name) for name in ("load", "idle", "summarise"))
    assert "self.table = table" in load and "self.scratch" not in load
    assert "self." not in idle.replace("self.next(self.summarise)", "").replace("def idle(self)", "")
    assert "table = self.table" in summarise
    assert "self.total = total" in summarise and "self.biggest = biggest" in summarise
    assert "self.next(self.end)" in summarise


def test_a_mutated_value_is_stored_again_by_the_step_that_changes_it(promote):
    source = promote(
        [
            (["step:a"], "config = {'k': 1}\nhistory = []\nclass Box:\n    pass\nbox = Box()"),
            (["step:b"], "config['k'] = 2\nhistory.append(1)\nbox.size = 3"),
            (["step:c"], "out = (config['k'], len(history), box.size)"),
        ]
    )
    step_b = method(source, "b")
    for name in ("config", "history", "box"):
        assert f"{name} = self.{name}" in step_b
        assert f"self.{name} = {name}" in step_b


def test_scopes_of_comprehensions_and_functions_do_not_leak(promote):
    message = promotion_error(
        promote, [(["step:a"], "squares = [i * i for i in range(3)]"), (["step:b"], "last = i")]
    )
    assert message == "cell 2 (step:b): name 'i' is used but never defined (line 1)"

    source = promote(
        [
            (["functions"], "def scaled(v):\n    return v * factor_set_elsewhere"),
            (
                ["step:a"],
                "factor = 2\ndef times(v):\n    return v * factor\nvalues = {k: times(k) for k in range(3)}",
            ),
            (
                ["step:b"],
                "with open('data.txt') as handle:\n"
                "    first = handle.readline()\n"
                "for n, (p, q) in [(1, (2, 3))]:\n"
                "    pass",
            ),
            (["step:c"], "summary = (first, q)"),
        ]
    )
    assert "self.factor" not in source and "self.k = " not in source and "self.n = " not in source
    assert "self.first = first" in method(source, "b") and "self.q = q" in method(source, "b")
    assert "first = self.first" in method(source, "c") and "q = self.q" in method(source, "c")


def test_the_last_step_stores_what_it_surely_assigns(promote):
    source = promote(
        [
            (["parameters"], "flag = True"),
            (
                ["step:report"],
                "if flag:\n    kind = 'a'\n    extra = 1\nelse:\n    kind = 'b'\n"
                "try:\n    ratio = 1 / 0\nexcept ZeroDivisionError as error:\n    ratio = None\n"
                "for row in []:\n    seen = row\n"
                "_scratch = 0",
            ),
        ]
    )
    report = method(source, "report")
    assert "self.kind = kind" in report and "self.ratio = ratio" in report
    for maybe_unbound in ("extra", "error", "row", "seen", "_scratch"):
        assert f"self.{maybe_unbound} =" not in report


def test_a_function_in_a_step_loads_what_it_reads_from_earlier_steps(promote):
    source = promote(
        [
            (["step:a"], "weights = [1, 2]"),
            (["step:b"], "def score(v):\n    return sum(w * v for w in weights)\nresult = score(3)"),
        ]
    )
    assert "weights = self.weights" in method(source, "b")
    assert "self.weights = weights" in method(source, "a")


def test_imports_in_a_step_stay_local(promote):
    source = promote([(["step:a"], "import json\ntext = json.dumps({'a': 1})")])
    assert "import json" in method(source, "a")
    assert "self.text = text" in method(source, "a") and "self.json" not in source


# --- the generated file --------------------------------------------------------------------


def ruff(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ruff", *args, "--config", str(REPO / "pyproject.toml")]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_the_fixture_flow_is_clean_ruff_output_and_deterministic(tmp_path):
    source = promote_notebook(FIXTURE)
    assert promote_notebook(FIXTURE) == source
    flow = tmp_path / "plain_pipeline_flow.py"
    flow.write_text(source)
    checked = ruff("check", str(flow))
    assert checked.returncode == 0, checked.stdout
    formatted = ruff("format", "--check", str(flow))
    assert formatted.returncode == 0, formatted.stdout

    header = source.splitlines()[:3]
    assert header[0] == "# Generated by `recops promote`; edit the notebook, not this file."
    assert header[1] == "# source notebook: tests/fixtures/notebooks/plain_pipeline.ipynb"
    assert header[2] == f"# notebook_hash: {notebook_hash(FIXTURE)}"
    assert "from metaflow import FlowSpec, Parameter, resources, retry, step" in source
    assert source.index("import pandas as pd") < source.index("def summarize(") < source.index("class ")
    assert source.rstrip().endswith('if __name__ == "__main__":\n    PlainPipelineFlow()')


def test_the_fixture_flow_has_the_notebook_structure():
    source = promote_notebook(FIXTURE)
    assert 'class PlainPipelineFlow(FlowSpec):\n    """Fit a line to noisy data"""' in source
    assert "@resources(cpu=1, memory=2000)\n    @retry(times=1)\n    @step\n    def fit(self):" in source
    assert '"""Make the data"""' in method(source, "make_data")
    assert "plot.scatter" not in source  # the skip cell
    assert "# notebook cell 7" in method(source, "make_data")  # an untagged cell joins the step
    start, end = method(source, "start"), source[source.index("    def end(self):") :]
    assert "self.next(self.make_data)" in start
    assert "self.next" not in end.split("if __name__")[0]
    assert "self.frame = frame" in method(source, "make_data")
    assert "frame = self.frame" in method(source, "fit")
    assert "self.result = result" in method(source, "report")


def test_step_docstrings_default_and_display_lines_go(promote):
    source = promote(
        [
            (["step:a"], "x = 1\nx"),
            ("md", "### Second step\nmore words"),
            (["step:b"], 'text = """line one\n  line two"""\ny = x + 1'),
        ]
    )
    assert '"""Notebook step a."""' in source and '"""Second step"""' in source
    assert "\n        x\n" not in method(source, "a")  # the notebook's display of x
    assert 'text = """line one\n  line two"""' in method(source, "b")  # string contents untouched
    assert 'class DemoFlow(FlowSpec):\n    """Second step"""' in source  # the first markdown cell

    untitled = promote([(["step:a"], "x = 1")])
    assert 'class DemoFlow(FlowSpec):\n    """Flow promoted from the notebook demo.ipynb."""' in untitled


def test_check_flow_says_why_a_flow_is_stale(tmp_path):
    cells = [(["parameters"], "n = 2"), (["step:a"], "out = n * 2")]
    notebook = write_notebook(tmp_path / "small.ipynb", cells)
    flow = tmp_path / "flow.py"
    ok, message = check_flow(notebook, flow)
    assert not ok and "does not exist" in message

    write_flow(notebook, flow)
    assert check_flow(notebook, flow) == (True, f"{flow} is up to date with {notebook}")

    flow.write_text(flow.read_text() + "# a hand edit\n")
    ok, message = check_flow(notebook, flow)
    assert not ok and "differs from a fresh promotion" in message

    write_flow(notebook, flow)
    write_notebook(notebook, [(["parameters"], "n = 3"), (["step:a"], "out = n * 2")])
    ok, message = check_flow(notebook, flow)
    assert not ok and "the notebook changed since it was generated" in message
