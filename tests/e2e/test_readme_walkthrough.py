"""The README's own commands, in its order, as a newcomer runs them in a fresh RECOPS_HOME.

One walk per module (it takes minutes): train and evaluate, the notebooks and `recops promote`,
the training flow run directly (no METAFLOW_* variables, no user name), its card and the Client
one-liner, the registry's gate, promote and rollback, a bento served and stopped with SIGTERM,
two continuous-training cycles on simulated events, and a CSV with bad timestamps. Every
command runs as a subprocess from the repository root with the venv's `bin` first on PATH (what
`source .venv/bin/activate` does); only sizes are added (`--epochs`, `--sessions`), and outputs go
under the walk's folder instead of the repository. Each test then checks one point of the record.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import psutil
import pytest

from recops.localproc import free_port, port_error

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
TRACEBACK = "Traceback (most recent call last)"
# No user name at all: the recops Metaflow extension must find one (and Metaflow's own state
# must go under RECOPS_HOME, not a `.metaflow` folder in the working directory).
UNSET = ("USER", "USERNAME", "LOGNAME", "SUDO_USER")
UNSET_PREFIXES = ("METAFLOW_", "MLFLOW_", "BENTOML_", "PREFECT_", "RECOPS_")
FLOW_EPOCHS = 3
CLIENT_ONE_LINER = (  # the README's, verbatim
    "from metaflow import Flow; r = Flow('TrainRecommenderFlow').latest_run; print(r.data.metrics)"
)
README_REQUEST = {"session": [11, 42, 7], "k": 5, "exclude_seen": True}


@dataclass
class Done:
    """One command of the walk: what ran and what it printed."""

    args: list[str]
    rc: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return f"$ {' '.join(self.args)}\n(rc {self.rc})\n{self.stdout[-4000:]}\n{self.stderr[-4000:]}"


@dataclass
class Served:
    """`recops serve &`, asked once, then sent SIGTERM."""

    port: int
    answer: dict | None = None
    answer_error: str = ""
    children: list[str] = field(default_factory=list)
    rc_after_sigterm: int | None = None
    survivors: list[str] = field(default_factory=list)
    listening: str | None = None  # why the port could not be bound after the stop
    log: str = ""


@dataclass
class Walk:
    base: Path
    home: Path
    steps: dict[str, Done] = field(default_factory=dict)
    run_ids: dict[str, str] = field(default_factory=dict)
    busy_was_running: bool = False
    cwd_metaflow_before: set[str] = field(default_factory=set)
    cwd_metaflow_after: set[str] = field(default_factory=set)
    served: Served | None = None
    bad_csv: Path | None = None

    def run(self, name: str, *args: str, timeout: float = 600) -> Done:
        start = time.monotonic()
        try:
            done = subprocess.run(
                list(args), cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=timeout
            )
            rc, out, err = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired as exc:
            rc, out, err = None, _text(exc.stdout), _text(exc.stderr) + f"\n(killed after {timeout:.0f} s)"
        self.steps[name] = Done(list(args), rc, out, err, time.monotonic() - start)
        return self.steps[name]

    def env(self) -> dict[str, str]:
        """A newcomer's shell after `source .venv/bin/activate`, RECOPS_HOME exported."""
        env = {k: v for k, v in os.environ.items() if k not in UNSET and not k.startswith(UNSET_PREFIXES)}
        env.update(RECOPS_HOME=str(self.home), PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}")
        env.setdefault("OMP_NUM_THREADS", "1")  # conftest's: two shared cores
        return env


def _text(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value or ""


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def _run_id(done: Done) -> str:
    found = re.search(r"Workflow starting \(run-id (\w+)\)", done.output)
    return found.group(1) if found else ""


def _ask(port: int) -> dict:
    """The README's `curl -s localhost:3000/recommend -d '{...}'`: a form-encoded POST, as curl sends."""
    body = json.dumps(README_REQUEST).encode()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/recommend", data=body, timeout=10) as answer:
        return json.loads(answer.read())


def _listening(port: int) -> str | None:
    """What holds ``port`` (None: nothing): a listening socket, or why the OS cannot bind it."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return f"a socket listens on it (pid {conn.pid})"
    return port_error(port)


def _serve_and_stop(walk: Walk) -> Served:
    served = Served(port=free_port())
    log = walk.base / "serve.log"
    command = ["recops", "serve", "--port", str(served.port)]
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=walk.env(), stdout=out, stderr=subprocess.STDOUT)
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            try:
                served.answer = _ask(served.port)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                served.answer_error = repr(exc)
                time.sleep(1)
        children = psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
        served.children = [" ".join(p.cmdline()) for p in children]
        process.send_signal(signal.SIGTERM)  # `kill %1`: the recops serve process alone
        try:
            served.rc_after_sigterm = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            served.rc_after_sigterm = None
        deadline = time.monotonic() + 40
        while True:
            alive = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
            served.listening = _listening(served.port)
            if (not alive and served.listening is None) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        served.survivors = [" ".join(p.cmdline()) for p in alive]
    finally:
        for leftover in [process, *children]:
            with contextlib.suppress(ProcessLookupError, psutil.Error):
                leftover.kill()
        process.wait(timeout=30)
        served.log = log.read_text()
    return served


def _write_bad_csv(path: Path) -> Path:
    """Twenty valid events, then two bad timestamps: file line 6 ('abc') and line 13 (empty)."""
    lines = ["session_id,item_id,timestamp"]
    for session in range(1, 6):
        lines += [f"{session},{100 + session + t},{1_700_000_000 + 100 * session + t}" for t in range(4)]
    lines[5] = "2,103,abc"  # index 5 is file line 6 (the header is line 1)
    lines[12] = "3,105,"  # file line 13: null
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def walk(tmp_path_factory) -> Walk:
    base = tmp_path_factory.mktemp("readme-walk")
    w = Walk(base=base, home=base / "recops-home")
    w.cwd_metaflow_before = _tree(ROOT / ".metaflow")

    # Train, evaluate, benchmark
    run_x = base / "runs" / "x"
    w.run("train", "recops", "train", "--dataset", "synthetic", "--model", "sasrec", "--out", str(run_x),
          "--epochs", "2")  # fmt: skip
    w.run("evaluate", "recops", "evaluate", str(run_x / "checkpoint.pt"))

    # Notebooks and `recops promote`
    w.run("papermill", "papermill", "--engine", "recops", "notebooks/01_explore_sessions.ipynb",
          str(base / "out.ipynb"), "-p", "sample_size", "300")  # fmt: skip
    notebook = "notebooks/02_train_sequence_model.ipynb"
    w.run("promote", "recops", "promote", notebook, "-o", str(base / "flow.py"))
    w.run("promote --check", "recops", "promote", notebook, "-o", str(base / "flow.py"), "--check")
    w.run("promote --check flows/", "recops", "promote", notebook, "-o", "flows/train_sequence_model.py",
          "--check")  # fmt: skip

    # The training flow: the Markov chain first (the first champion), then SASRec beside a busy core
    flow = ["python", "flows/train_recommender.py", "--no-pylint", "run", "--dataset", "synthetic"]
    w.run_ids["markov"] = _run_id(w.run("flow markov", *flow, "--model", "markov"))
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        sasrec = w.run("flow sasrec", *flow, "--model", "sasrec", "--epochs", str(FLOW_EPOCHS))
        w.busy_was_running = busy.poll() is None
    finally:
        busy.kill()
        busy.wait(timeout=30)
    w.run_ids["sasrec"] = _run_id(sasrec)
    w.run("card get", "python", "flows/train_recommender.py", "card", "get", f"{w.run_ids['sasrec']}/train",
          "--id", "training", str(base / "curves.html"))  # fmt: skip
    w.run("client", "python", "-c", CLIENT_ONE_LINER)

    # Registry, gate and serving: version 1 (markov) is champion, version 2 (sasrec) the challenger
    w.run("registry list", "recops", "registry", "list")
    w.run("registry gate", "recops", "registry", "gate")
    w.run("promote 2 --force", "recops", "registry", "promote", "2", "--force")
    w.run("promote 1", "recops", "registry", "promote", "1")  # history: 1, 2, 1
    w.run("rollback", "recops", "registry", "rollback")  # to 2, which the gate rejected: refused
    w.run("rollback --force", "recops", "registry", "rollback", "--force")
    w.run("rollback again", "recops", "registry", "rollback")
    w.run("rollback past the start", "recops", "registry", "rollback")
    w.run("registry list after", "recops", "registry", "list")
    w.run("bento build", "recops", "bento", "build", "--alias", "champion")
    w.served = _serve_and_stop(w)

    # Continuous training (Prefect): two files of new events, a cycle after each
    incoming = w.home / "incoming"
    w.run("simulate 0001", "recops", "simulate-events", str(incoming / "0001.csv"), "--sessions", "500",
          "--shift-popularity")  # fmt: skip
    w.run("retrain 1", "recops", "retrain", "--model", "markov")
    w.run("simulate 0002", "recops", "simulate-events", str(incoming / "0002.csv"), "--sessions", "500",
          "--shift-popularity")  # fmt: skip
    w.run("retrain 2", "recops", "retrain", "--model", "markov")

    # The data contract: bad rows named by their file lines
    w.bad_csv = _write_bad_csv(base / "events.csv")
    w.run("train bad csv", "recops", "train", "--dataset", f"csv:{w.bad_csv}", "--model", "gru4rec",
          "--epochs", "1", "--out", str(base / "runs" / "bad"))  # fmt: skip

    w.cwd_metaflow_after = _tree(ROOT / ".metaflow")
    timings = ", ".join(f"{name} {done.seconds:.0f}s" for name, done in w.steps.items())
    print(f"README walk: {timings}")
    return w


def ok(walk: Walk, name: str) -> Done:
    done = walk.steps[name]
    assert done.rc == 0, f"`{name}` failed:\n{done}"
    return done


def warning_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.search(r"warning", line, re.IGNORECASE)]


# --- Train, evaluate, benchmark ---


def test_train_prints_an_epoch_line_per_epoch_and_writes_both_files(walk):
    done = ok(walk, "train")
    epochs = re.findall(r"^epoch +(\d+)  loss ", done.stderr, re.MULTILINE)
    assert epochs == ["1", "2"], f"one progress line per epoch expected:\n{done}"
    run_x = walk.base / "runs" / "x"
    assert (run_x / "checkpoint.pt").is_file() and (run_x / "metrics.json").is_file(), sorted(run_x.iterdir())


def test_evaluate_defaults_to_the_checkpoints_own_dataset(walk):
    done = ok(walk, "evaluate")
    assert not warning_lines(done.output), f"evaluate warned about its data:\n{done}"
    trained = json.loads((walk.base / "runs" / "x" / "metrics.json").read_text())["test"]["ndcg@10"]
    shown = re.search(r"^ndcg@10\s+([\d.]+)$", done.stdout, re.MULTILINE)
    assert shown, f"no ndcg@10 line:\n{done}"
    assert float(shown.group(1)) == pytest.approx(trained, abs=6e-5), (
        f"evaluate on the checkpoint's own data should repeat train's test figure {trained:.4f}:\n{done}"
    )


# --- Notebooks and `recops promote` ---


def test_exploration_notebook_runs_with_the_recops_engine_without_warnings(walk):
    done = ok(walk, "papermill")
    assert (walk.base / "out.ipynb").is_file()
    assert "without encryption" not in done.output, f"the kernel ran unencrypted:\n{done}"
    assert "Unable to parse" not in done.output, f"papermill could not read the parameters cell:\n{done}"


def test_promote_writes_a_flow_that_check_finds_current(walk):
    ok(walk, "promote")
    header = (walk.base / "flow.py").read_text().splitlines()[:3]
    assert "# source notebook: notebooks/02_train_sequence_model.ipynb" in header, header
    for name in ("promote --check", "promote --check flows/"):
        assert "is up to date" in ok(walk, name).stdout, walk.steps[name]


# --- The training flow ---


def test_first_flow_run_needs_no_user_name_and_is_promoted(walk):
    done = ok(walk, "flow markov")
    assert "executing TrainRecommenderFlow for user:recops" in done.output, f"no fallback user name:\n{done}"
    assert re.search(r"gate  no champion yet: .*; promoted$", done.output, re.MULTILINE), (
        f"the first run should become champion:\n{done}"
    )
    listing = ok(walk, "registry list").stdout
    assert re.search(r"^\s+1  champion\s+markov .* promoted ", listing, re.MULTILINE), listing


def test_sasrec_flow_prints_one_epoch_line_per_epoch_beside_a_busy_process(walk):
    done = ok(walk, "flow sasrec")
    assert walk.busy_was_running, "the busy process ended before the run did"
    run_id = walk.run_ids["sasrec"]
    epochs = re.findall(rf"\[{run_id}/train/\d+ \(pid \d+\)\] epoch +(\d+)  loss ", done.output)
    assert epochs == [str(e) for e in range(1, FLOW_EPOCHS + 1)], f"epoch lines {epochs}:\n{done}"


def test_metaflow_state_lives_under_recops_home_not_the_working_directory(walk):
    ok(walk, "flow markov")
    new = walk.cwd_metaflow_after - walk.cwd_metaflow_before
    assert not new, f"the walk wrote into {ROOT / '.metaflow'}: {sorted(new)[:20]}"
    flow_root = walk.home / ".metaflow" / "TrainRecommenderFlow"
    assert {walk.run_ids["markov"], walk.run_ids["sasrec"]} <= _names(flow_root), sorted(_names(flow_root))
    developers = ROOT / ".recops" / ".metaflow" / "TrainRecommenderFlow"
    leaked = {walk.run_ids["markov"], walk.run_ids["sasrec"]} & _names(developers)
    assert not leaked, f"runs of the walk in the developer's datastore: {leaked}"


def test_training_card_is_written_to_the_named_file(walk):
    ok(walk, "card get")
    curves = walk.base / "curves.html"
    assert curves.is_file() and curves.stat().st_size > 0, walk.steps["card get"]


def test_client_one_liner_prints_the_latest_runs_metrics(walk):
    done = ok(walk, "client")
    metrics = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    shown = re.search(r"test  ndcg@10 ([\d.]+)", walk.steps["flow sasrec"].output)
    assert shown, walk.steps["flow sasrec"]
    assert metrics["ndcg@10"] == pytest.approx(float(shown.group(1)), abs=6e-5), (
        f"the latest run is the SASRec one:\n{done}"
    )


# --- Registry, gate and serving ---


def test_gate_rejects_the_challenger_with_exit_code_3(walk):
    done = walk.steps["registry gate"]
    assert done.rc == 3 and "version 2 vs champion version 1: REJECTED" in done.stdout, done


def test_rollback_walks_back_through_the_champion_history(walk):
    assert "version 2 is now the champion" in ok(walk, "promote 2 --force").stdout
    assert "version 1 is now the champion" in ok(walk, "promote 1").stdout
    refused = walk.steps["rollback"]
    assert refused.rc == 2, refused
    assert "will not roll back to version 2: the gate rejected it" in refused.stderr, refused
    assert "champion rolled back from version 1 to version 2" in ok(walk, "rollback --force").stdout
    assert "champion rolled back from version 2 to version 1" in ok(walk, "rollback again").stdout
    last = walk.steps["rollback past the start"]
    assert last.rc == 2 and "nothing to roll back to" in last.stderr, f"two steps were all there was:\n{last}"
    listing = ok(walk, "registry list after").stdout
    assert re.search(r"^\s+1  champion ", listing, re.MULTILINE), listing


def test_bento_build_prints_the_bento_tag(walk):
    done = ok(walk, "bento build")
    assert re.fullmatch(r"session_recommender:\w+", done.stdout.strip()), done


def test_serve_answers_the_readme_request_with_the_champion(walk):
    served = walk.served
    assert served.answer is not None, f"no answer ({served.answer_error}):\n{served.log[-3000:]}"
    items = [item["item_id"] for item in served.answer["items"]]
    assert len(items) == 5 and not set(items) & {11, 42, 7}, served.answer
    assert served.answer["model"]["version"] == "1", served.answer


def test_sigterm_stops_serve_and_leaves_nothing_listening(walk):
    served = walk.served
    assert any("bentoml" in child for child in served.children), served.children
    assert served.rc_after_sigterm == 0, f"rc {served.rc_after_sigterm}:\n{served.log[-3000:]}"
    assert not served.survivors, f"left running after SIGTERM: {served.survivors}"
    assert served.listening is None, f"port {served.port} still taken: {served.listening}"


# --- Continuous training (Prefect) ---


def test_simulated_files_have_new_sessions_later_in_time(walk):
    ok(walk, "simulate 0001")
    ok(walk, "simulate 0002")
    first, second = (pd.read_csv(walk.home / "incoming" / name) for name in ("0001.csv", "0002.csv"))
    shared = set(first["session_id"]) & set(second["session_id"])
    assert not shared, f"0002.csv reuses session ids of 0001.csv: {sorted(shared)[:10]}"
    assert second["timestamp"].min() > first["timestamp"].max(), "0002.csv starts before 0001.csv ends"


@pytest.mark.parametrize("cycle", ["retrain 1", "retrain 2"])
def test_retrain_reads_its_new_file_once_without_collisions_or_duplicates(walk, cycle):
    done = ok(walk, cycle)
    new_file = "0001.csv" if cycle == "retrain 1" else "0002.csv"
    read = re.search(rf"\(\d+ new from \S+/incoming/{new_file}\)", done.stderr)
    assert read, f"the cycle did not read {new_file} alone:\n{done}"
    for word in ("collision", "duplicate", "quarantin"):
        assert word not in done.output.lower(), f"{cycle} reports {word}:\n{done}"
    assert not (walk.home / "incoming" / "quarantine").exists()


@pytest.mark.parametrize("cycle", ["retrain 1", "retrain 2"])
def test_retrain_prints_no_traceback_or_warning(walk, cycle):
    done = walk.steps[cycle]
    assert TRACEBACK not in done.stderr, done
    warnings = "\n".join(warning_lines(done.stderr))
    assert not warnings, f"warnings on a routine cycle:\n{warnings}"


# --- The data contract ---


def test_bad_timestamps_are_named_by_their_file_lines(walk):
    done = walk.steps["train bad csv"]
    assert done.rc == 2, done
    assert "line 6 'abc', line 13 null" in done.stderr and "the header is line 1" in done.stderr, done
    assert not (walk.base / "runs" / "bad").exists()


def test_no_command_prints_a_traceback(walk):
    failed = [name for name, done in walk.steps.items() if TRACEBACK in done.output]
    if TRACEBACK in walk.served.log:
        failed.append("recops serve")
    assert not failed, "tracebacks in: " + ", ".join(failed)
