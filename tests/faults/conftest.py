"""Fault injection (tests/faults): what every fault module shares, and the invariants each fault
test asserts once the system has recovered.

Each module gets one RECOPS_HOME (registry, Metaflow datastore, bentos, incoming events) with
one champion, trained once on the tiny config's synthetic sessions with the most-popular model
(training is instant; the faults are about the cycle, not the model), deployed with
``recops deploy`` and answered by one ``bentoml serve`` that follows the deployment record.
Cycles run as ``recops retrain`` subprocesses leading their own process group, their output in
a log the test watches for a step's marker; ``kill -9`` of the whole tree is the machine dying.

:func:`assert_recovered` checks, after a fault and at most one more cycle:

1. ``recops status --json`` exits 0 (run as a subprocess: an in-process BentoML would keep this
   module's BentoML home for the rest of the pytest worker);
2. the running server answers with the champion (``POST /recommend {"session": [], "k": 1}``);
3. no incoming event is lost (:func:`assert_no_event_lost`);
4. no version is promoted twice (:func:`assert_promoted_once`).

Every fault test measures its time to recover (from the fault until ``recops status`` exits 0
with every invariant holding) and reports it with :func:`report`; the figures are printed at the
end of the run (``pytest tests/faults``), and with each test's output.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from recops.localproc import ServerProcess, free_port, start_server, wait_until
from tests.helpers import TINY_CONFIG

# The tiny config with the most-popular model (trained in a blink) and a gate margin that lets a
# challenger trained on shifted-popularity sessions win more often (the tests that need a
# promotion assert it; the data are seeded, so the gate decides the same way every run).
FAULT_CONFIG = TINY_CONFIG.replace("[gate]\n", "[gate]\nmargin = 0.05\n") + (
    '\n[retrain]\nmodel = "popular"\ndeploy_timeout_s = 90.0\n'
)
CYCLE_TIMEOUT_S = 420.0  # a cycle that trains takes 30-100 s on two busy cores
MARKER_TIMEOUT_S = 300.0

# Log lines that say a step has started: Prefect's "Executing task" (debug level, turned on for
# the task-run logger below) and Metaflow's "Task is starting" of a step of the training run.
TASK_STARTED = r"Executing task '{}'"
METAFLOW_STEP_STARTED = r"\[\d+/{}/\d+ \(pid \d+\)\] Task is starting"

FIGURES_KEY = "fault_figures"


# --- one home per module -------------------------------------------------------------------


@dataclass
class FaultHome:
    root: Path  # the module's temporary folder: logs, config, server databases
    home: Path  # RECOPS_HOME
    config: Path
    cycles: list[CycleProcess] = field(default_factory=list)
    processes: list[ServerProcess] = field(default_factory=list)  # every process a test started
    n_files: int = 0

    @property
    def incoming(self) -> Path:
        return self.home / "incoming"

    @property
    def logs(self) -> Path:
        path = self.root / "logs"
        path.mkdir(exist_ok=True)
        return path


@pytest.fixture(scope="module", autouse=True)
def recops_home(tmp_path_factory, request) -> Iterator[Path]:
    """One RECOPS_HOME (and Metaflow root, BentoML home, Prefect home) per module: its cycles
    build on each other. Overrides tests/conftest.py's home per test."""
    root = tmp_path_factory.mktemp(f"faults-{request.module.__name__.rsplit('.', 1)[-1]}")
    home = root / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECOPS_HOME", str(home))
        patch.setenv("METAFLOW_DATASTORE_SYSROOT_LOCAL", str(home))
        patch.setenv("BENTOML_HOME", str(home / "bentoml"))
        patch.setenv("PREFECT_HOME", str(home / "prefect"))
        patch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        patch.setenv("BENTOML_DO_NOT_TRACK", "True")
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.setenv("USERNAME", "pytest")
        for name in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "RECOPS_WEBHOOK_URL", "RECOPS_INJECT_FAULT"):
            patch.delenv(name, raising=False)
        yield home


@pytest.fixture(scope="module")
def fault_home(recops_home) -> Iterator[FaultHome]:
    config = recops_home.parent / "faults.toml"
    config.write_text(FAULT_CONFIG)
    state = FaultHome(recops_home.parent, recops_home, config)
    try:
        yield state
    finally:
        for process in state.processes:  # a test that failed midway leaves none running
            process.stop()


# --- processes ---------------------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment (the module's home), unbuffered, with Prefect's task-run
    logger at debug level (its "Executing task" line marks a task's start)."""
    env = dict(os.environ)
    env.update(PYTHONUNBUFFERED="1", PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL="DEBUG")
    env.update(extra)
    return env


def recops_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "recops", *args]


def kill_tree(process: subprocess.Popen) -> float:
    """The machine dies: SIGKILL to the process, every descendant and its process group, at
    once. Returns the time of the kill (time.monotonic)."""
    import psutil

    try:
        tree = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    killed_at = time.monotonic()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    for child in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    process.wait(timeout=30)
    psutil.wait_procs(tree, timeout=30)
    return killed_at


@dataclass
class CycleProcess:
    """A ``recops retrain`` subprocess in its own process group, its output in ``log``."""

    name: str
    server: ServerProcess
    log: Path

    @property
    def process(self) -> subprocess.Popen:
        return self.server.process

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.is_file() else ""

    def tail(self, n: int = 6000) -> str:
        return f"--- {self.name} ({self.log}) ---\n" + self.text()[-n:]

    def wait_for(self, pattern: str, timeout: float = MARKER_TIMEOUT_S) -> re.Match:
        """Poll the log until ``pattern`` appears; fails if the cycle exits first."""
        regex = re.compile(pattern)

        def seen() -> re.Match | None:
            found = regex.search(self.text())
            if found is None and self.process.poll() is not None:
                found = regex.search(self.text())  # written just before it exited
                if found is None:
                    pytest.fail(
                        f"{self.name} exited ({self.process.returncode}) before {pattern!r}\n{self.tail()}"
                    )
            return found

        try:
            return wait_until(seen, timeout, interval=0.05, what=f"{pattern!r} in {self.log.name}")
        except TimeoutError as exc:
            pytest.fail(f"{exc}\n{self.tail()}")

    def kill(self) -> float:
        return kill_tree(self.process)

    def wait(self, timeout: float = CYCLE_TIMEOUT_S) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.name} still running after {timeout:.0f} s\n{self.tail()}")

    def log_time(self, pattern: str) -> float:
        """Seconds since midnight of the first log line matching ``pattern`` (Prefect's
        ``HH:MM:SS.mmm |`` prefix; the cycles of a test run within one day)."""
        for line in self.text().splitlines():
            stamp = re.match(r"^(\d\d):(\d\d):(\d\d\.\d+) \|", line)
            if stamp and re.search(pattern, line):
                hours, minutes, seconds = stamp.groups()
                return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        pytest.fail(f"no {pattern!r} in {self.name}'s log\n{self.tail()}")

    def last_result(self) -> str:
        """The result line `recops retrain` prints last ("skipped. skip: ..."), or ''."""
        lines = [line for line in self.text().splitlines() if re.match(r"^(skipped|retrained)", line)]
        return lines[-1] if lines else ""


def start_cycle(home: FaultHome, name: str, *args: str, **env: str) -> CycleProcess:
    """Start ``recops retrain --config <fault config> ARGS`` in its own process group."""
    log = home.logs / f"{len(home.cycles):02d}-{name}.log"
    command = recops_command("retrain", "--config", str(home.config), *args)
    server = start_server(
        f"recops retrain ({name})",
        command,
        env=child_env(**env),
        cwd=home.root,
        log_path=log,
        stop_steps=((signal.SIGKILL, 10.0),),
    )
    cycle = CycleProcess(name, server, log)
    home.cycles.append(cycle)
    home.processes.append(server)
    return cycle


def run_cycle(home: FaultHome, name: str, *args: str, expect_rc: int | None = 0, **env: str) -> CycleProcess:
    """One whole cycle; with ``expect_rc`` its exit code must be that."""
    cycle = start_cycle(home, name, *args, **env)
    rc = cycle.wait()
    if expect_rc is not None:
        assert rc == expect_rc, cycle.tail()
    return cycle


def run_recops(
    home: FaultHome, *args: str, timeout: float = 300.0, **env: str
) -> subprocess.CompletedProcess:
    """A one-shot ``recops`` command (deploy, status, registry ...) in a subprocess."""
    return subprocess.run(
        recops_command(*args),
        env=child_env(**env),
        cwd=home.root,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_recops(home: FaultHome, name: str, *args: str, **env: str) -> ServerProcess:
    """A ``recops`` command in the background (e.g. a rollback that waits for the cycle lock)."""
    log = home.logs / f"{name}.log"
    process = start_server(
        f"recops {name}", recops_command(*args), env=child_env(**env), cwd=home.root, log_path=log
    )
    home.processes.append(process)
    return process


# --- the seeded champion and the server ------------------------------------------------------


def seed_champion(config_path: Path) -> int:
    """Version 1, trained and registered exactly as TrainRecommenderFlow's steps do (the same
    library calls, in this process: a Metaflow run takes a minute or more) and gated (no
    champion yet: promoted). Its data, code and config hashes are those a cycle computes, so a
    cycle with nothing new skips."""
    from dataclasses import asdict

    from recops.config import load_config
    from recops.data import load_events
    from recops.data.interactions import fingerprint_events
    from recops.data.profile import data_profile
    from recops.pipeline.steps import register_and_gate
    from recops.training.evaluate import evaluate_model
    from recops.training.experiment import fit, prepare_events

    config = load_config(config_path)
    model = config.retrain.model
    events = load_events("synthetic", config.data)
    data = prepare_events("synthetic", events, config)
    fitted = fit(data, model, config)
    evaluation = evaluate_model(fitted.checkpoint.build_model(), data.split.test)
    fitted.checkpoint.metrics["test"] = evaluation.metrics
    version, decision = register_and_gate(
        fitted.checkpoint,
        [asdict(epoch) for epoch in fitted.train.history],
        evaluation,
        data.split.test,
        "TrainRecommenderFlow/seed",
        config,
        data_profile(events, fingerprint_events(events)),
    )
    assert decision["action"] == "promoted", decision
    return int(version["version"])


@dataclass
class Served:
    url: str
    server: Any  # recops.serving.server.BentoServer


@pytest.fixture(scope="module")
def champion(fault_home) -> int:
    version = seed_champion(fault_home.config)
    done = run_recops(fault_home, "deploy")
    assert done.returncode == 0, done.stdout + done.stderr
    return version


@pytest.fixture(scope="module")
def server(champion, fault_home) -> Iterator[Served]:
    """`recops serve`'s setup: the deployed bento (2 workers), following the deployment record,
    recorded where `recops deploy` and `recops status` look for it."""
    from recops.serving.deployment import deployment_file, read_deployment
    from recops.serving.server import serve, server_record

    running = serve(
        read_deployment()["bento_tag"],
        port=free_port(),
        deployment=deployment_file(),
        ready_timeout=180,
        log_path=fault_home.logs / "bentoml-serve.log",
    )
    try:
        with server_record(running):
            yield Served(running.url, running)
    finally:
        running.stop()


def served_versions(url: str, n: int = 8) -> list[str]:
    """The model version of ``n`` answers in a row (two workers answer in turn)."""
    versions = []
    with httpx.Client(timeout=10) as client:
        for _ in range(n):
            answer = client.post(f"{url}/recommend", json={"session": [], "k": 1})
            answer.raise_for_status()
            versions.append(str(answer.json()["model"]["version"]))
    return versions


# --- the webhook ---------------------------------------------------------------------------


class Webhook:
    """A local HTTP endpoint that records every alert posted to it."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for(self, kind: str, since: int = 0, timeout: float = 60.0) -> dict:
        def found() -> dict | None:
            return next((a for a in self.received[since:] if a.get("kind") == kind), None)

        try:
            return wait_until(found, timeout, what=f"a {kind!r} alert at the webhook")
        except TimeoutError as exc:
            pytest.fail(f"{exc}; received: {[a.get('kind') for a in self.received]}")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def webhook(recops_home) -> Iterator[Webhook]:
    hook = Webhook()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECOPS_WEBHOOK_URL", hook.url)
        try:
            yield hook
        finally:
            hook.close()


# --- incoming events -----------------------------------------------------------------------


def add_incoming(home: FaultHome, label: str, *, sessions: int = 120, shift: bool = True) -> Path:
    """A new incoming file of ``sessions`` sessions resampled from every event so far (base plus
    every incoming file), timed after them and, with ``shift``, with item popularity reversed
    (a challenger trained on it beats the champion). Written as ``x.tmp`` and renamed."""
    from recops.config import load_config
    from recops.continuous.inputs import incoming_files, read_incoming
    from recops.data import load_events
    from recops.data.synthetic import new_events_like

    home.n_files += 1
    home.incoming.mkdir(parents=True, exist_ok=True)
    frames = [load_events("synthetic", load_config(home.config).data)]
    frames += [read_incoming(path) for path in incoming_files(home.incoming)]
    events = pd.concat(frames, ignore_index=True)
    new = new_events_like(events, sessions, shift_popularity=shift, seed=home.n_files)
    path = home.incoming / f"{home.n_files:04d}-{label}.csv"
    tmp = path.with_suffix(".tmp")
    new.to_csv(tmp, index=False)
    tmp.rename(path)
    return path


# --- reading the state ---------------------------------------------------------------------


def recops_status(home: FaultHome) -> tuple[int, dict]:
    """``recops status --json``: its exit code and report."""
    done = run_recops(home, "status", "--json", timeout=120)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        report = {"unparsed": done.stdout[-2000:], "stderr": done.stderr[-2000:]}
    return done.returncode, report


def champion_version() -> int | None:
    from recops import registry

    return next((v.version for v in registry.list_versions() if v.is_champion), None)


@dataclass(frozen=True)
class RegistryState:
    """Every version's tags and aliases at one moment."""

    tags: dict[int, dict[str, str]]
    aliases: dict[int, tuple[str, ...]]

    @property
    def champion(self) -> int | None:
        return next((v for v, a in self.aliases.items() if "champion" in a), None)


def registry_state() -> RegistryState:
    from recops import registry

    versions = registry.list_versions()
    return RegistryState(
        {v.version: dict(v.tags) for v in versions}, {v.version: v.aliases for v in versions}
    )


def new_versions(before: RegistryState) -> list:
    """The versions registered since ``before`` (ModelVersionInfo, oldest first)."""
    from recops import registry

    return [v for v in registry.list_versions() if v.version not in before.tags]


def describe(home: FaultHome) -> dict[str, Any]:
    """What a fault left: consumed files, snapshots, versions and their gate decisions, the
    deployment, stuck states, leftovers of interrupted writes."""
    from recops.continuous.health import find_stuck
    from recops.continuous.inputs import read_manifest
    from recops.serving.deployment import read_deployment

    manifest = read_manifest(home.incoming) if home.incoming.is_dir() else None
    state = registry_state()
    return {
        "consumed_files": [f.name for f in manifest.files] if manifest else [],
        "snapshots": sorted(p.name for p in (home.home / "snapshots").glob("*.parquet")),
        "versions": {v: tags.get("gate_decision", "not gated") for v, tags in state.tags.items()},
        "champion": state.champion,
        "deployed": ((read_deployment() or {}).get("labels") or {}).get("model_version"),
        "stuck": [(s.kind, s.version) for s in find_stuck(verify_champion=False)],
        "half_written": [str(p.relative_to(home.home)) for p in half_written(home.home)],
    }


def half_written(folder: Path) -> list[Path]:
    """Temporary files of interrupted atomic writes (``.NAME.*.tmp``) under ``folder``."""
    return sorted(p for p in folder.rglob(".*.tmp") if p.is_file())


# --- the invariants ------------------------------------------------------------------------


def assert_no_event_lost(home: FaultHome, *, trained: bool = True) -> None:
    """Every event of every valid incoming file (those still in the incoming folder; a bad
    file is quarantined) is in the snapshot the incoming manifest names, and, with ``trained``,
    a version was trained on exactly that snapshot (its data_fingerprint is the manifest's),
    which is the champion unless the gate rejected it.

    Events are compared on (sequence, item, timestamp) after the validation a cycle applies.
    """
    from recops import registry
    from recops.continuous.inputs import incoming_files, read_incoming, read_manifest
    from recops.data import load_events
    from recops.data.interactions import fingerprint_events

    files = incoming_files(home.incoming)
    if not files:
        return
    manifest = read_manifest(home.incoming)
    assert manifest is not None, "incoming files but no manifest: nothing was consumed"
    assert {f.name for f in manifest.files} >= {p.name for p in files}, (
        f"not consumed: {sorted({p.name for p in files} - {f.name for f in manifest.files})}"
    )
    held = load_events(f"parquet:{manifest.snapshot}")
    assert fingerprint_events(held) == manifest.fingerprint, "the snapshot is not the manifest's"
    key = ["sequence_id", "item_id", "timestamp"]
    for path in files:
        events = read_incoming(path)[key].drop_duplicates()
        merged = events.merge(held[key].drop_duplicates(), on=key, how="left", indicator=True)
        lost = merged[merged["_merge"] == "left_only"]
        assert lost.empty, (
            f"{len(lost)} event(s) of {path.name} are not in {manifest.snapshot}:\n{lost.head()}"
        )
    if trained:
        versions = registry.list_versions()
        on_it = [v for v in versions if v.tags.get("data_fingerprint") == manifest.fingerprint]
        assert on_it, f"no version was trained on the snapshot {manifest.fingerprint[:19]} (all events)"
        latest = on_it[-1]
        if latest.tags.get("gate_decision") == "promoted":
            assert latest.is_champion, f"version {latest.version}, trained on every event, is not champion"


def assert_promoted_once(before: RegistryState, *, moved_by_hand: tuple[int, ...] = ()) -> None:
    """No version is promoted twice, precisely:

    1. no two versions were registered on identical inputs (tags data_fingerprint + code_hash +
       config_hash): the same inputs are trained, registered and gated once;
    2. no version that had ``champion_since`` before the fault has another one now (a second
       promotion), except those moved by hand in the test (``registry promote``);
    3. every version the gate promoted moved the alias from exactly the champion it was gated
       against (``previous_champion`` == ``gate_champion_version``): one gate decision, one
       compare-and-set move;
    4. a version that was rolled back is champion again only if a person promoted it since
       (``promoted_by`` promote or force, ``champion_since`` after ``rolled_back_at``).
    """
    after = registry_state()
    seen: dict[tuple[str, str, str], int] = {}
    for version, tags in sorted(after.tags.items()):
        inputs = (tags.get("data_fingerprint", ""), tags.get("code_hash", ""), tags.get("config_hash", ""))
        assert inputs not in seen, (
            f"versions {seen[inputs]} and {version} were registered on identical inputs"
        )
        seen[inputs] = version
    for version, tags in before.tags.items():
        was, now = tags.get("champion_since"), after.tags.get(version, {}).get("champion_since")
        if was and version in after.tags and version not in moved_by_hand:
            assert now == was, f"version {version} was promoted again ({was} -> {now})"
    for version, tags in after.tags.items():
        if tags.get("promoted_by") == "gate":
            assert tags.get("previous_champion", "") == tags.get("gate_champion_version", ""), (
                f"version {version}: the gate compared it with champion "
                f"{tags.get('gate_champion_version')}, but the alias moved from "
                f"{tags.get('previous_champion')}"
            )
        if "rolled_back_at" in tags and after.champion == version:
            by_hand_since = tags.get("promoted_by") in ("promote", "force") and (
                tags.get("champion_since", "") > tags["rolled_back_at"]
            )
            assert by_hand_since, f"version {version}, rolled back, is champion again: {tags}"


def assert_recovered(
    home: FaultHome,
    served: Served,
    before: RegistryState,
    *,
    trained: bool = True,
    moved_by_hand: tuple[int, ...] = (),
) -> dict:
    """The four invariants (module docstring); returns the status report."""
    code, report = recops_status(home)
    assert code == 0, json.dumps(report, indent=1, default=str)[-4000:]
    want = str(report["champion"]["version"])
    answers = served_versions(served.url)
    assert set(answers) == {want}, f"the server answers {answers}, the champion is {want}"
    assert_no_event_lost(home, trained=trained)
    assert_promoted_once(before, moved_by_hand=moved_by_hand)
    return report


def healthy_now(home: FaultHome) -> bool:
    return recops_status(home)[0] == 0


# --- figures -------------------------------------------------------------------------------

_FIGURES: list[dict[str, Any]] = []


def report(record_property, fault: str, **figures: Any) -> None:
    """Print a fault's figures (time to recover, failed requests ...) and keep them for the
    summary at the end of the run (a user property, so pytest-xdist carries them back too)."""
    row = {"fault": fault, **{k: round(v, 1) if isinstance(v, float) else v for k, v in figures.items()}}
    print("FAULT " + json.dumps(row, default=str))
    record_property(FIGURES_KEY, row)


def pytest_runtest_logreport(report) -> None:
    if report.when == "call":
        _FIGURES.extend(value for key, value in report.user_properties if key == FIGURES_KEY)


def pytest_terminal_summary(terminalreporter) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("fault injection: time to recover")
    for row in _FIGURES:
        terminalreporter.line(json.dumps(row, default=str))
