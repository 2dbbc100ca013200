"""Continuous training end to end: the Prefect flow `retrain` against a real Prefect API (the
test harness's local server), the real Metaflow runtime, a real MLflow store (SQLite), real
bentos and a real `bentoml serve` that swaps models while a client keeps asking.

The cycles run in order and share one RECOPS_HOME:
  1. built-in data, no champion      -> trains, promotes, builds and records a bento
  2. the same data                   -> skips, saying why
  -  only the report notebook changed -> no training; the champion's report re-rendered (and
                                        again after a crash between upload and tag)
  -  a corrupt incoming file         -> quarantined with its reason and an alert; the cycle
                                        completes; champion, deployment and served model untouched
  -  a training run that fails       -> the cycle fails with the step's error, alerts
  -  the same inputs again           -> the failed Metaflow run is resumed, not retrained
  3. shifted-popularity events added -> drift detected, retrains, gates; the server swaps to
                                        the new champion with no failed request (one retry)
  4. the champion serves random scores -> simulated shoppers' next events show it; the next
                                        hourly check retrains for online degradation
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import httpx
import pytest

from recops.paths import use_local_prefect_home
from recops.registry.gate_rules import GateAction
from tests.helpers import TINY_CONFIG

if TYPE_CHECKING:  # the flow module imports Prefect, which must see PREFECT_HOME first
    from recops.continuous.flow import CycleResult

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def ct_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("continuous-training")


@pytest.fixture(autouse=True)
def shared_home(ct_home, monkeypatch):
    """One RECOPS_HOME (and Metaflow root) for the module's cycles, which build on each other."""
    monkeypatch.setenv("RECOPS_HOME", str(ct_home / "home"))
    monkeypatch.setenv("METAFLOW_DATASTORE_SYSROOT_LOCAL", str(ct_home / "home"))
    monkeypatch.setenv("PREFECT_HOME", str(ct_home / "prefect"))
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="module")
def prefect_api(ct_home):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_HOME", str(ct_home / "prefect"))
        use_local_prefect_home()
        from prefect.testing.utilities import prefect_test_harness

        with prefect_test_harness(server_startup_timeout=120):
            yield


@pytest.fixture(scope="module")
def config_file(ct_home) -> Path:
    path = ct_home / "tiny.toml"
    path.write_text(TINY_CONFIG)
    return path


def cycle(config_file, **kwargs) -> CycleResult:
    from recops.continuous.flow import retrain

    return retrain(config_path=str(config_file), **kwargs)


def champion_version() -> int | None:
    from recops import registry

    return next((v.version for v in registry.list_versions() if v.is_champion), None)


@pytest.fixture(scope="module")
def first_cycle(prefect_api, config_file, ct_home):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RECOPS_HOME", str(ct_home / "home"))
        mp.setenv("METAFLOW_DATASTORE_SYSROOT_LOCAL", str(ct_home / "home"))
        return cycle(config_file)


def test_cycle_1_trains_and_promotes_a_first_champion(first_cycle):
    from recops.continuous.flow import CycleOutcome
    from recops.serving.deployment import read_deployment

    assert first_cycle.outcome is CycleOutcome.PROMOTED
    assert "no champion yet" in first_cycle.plan.text()
    assert first_cycle.trained.gate.action is GateAction.PROMOTED
    assert champion_version() == first_cycle.trained.model_version
    assert read_deployment()["bento_tag"] == first_cycle.bento_tag
    from recops import registry

    assert "warm_started_from" not in registry.get_version(first_cycle.trained.model_version).tags


def test_cycle_2_with_the_same_data_trains_nothing_and_says_why(first_cycle, config_file):
    from recops.continuous.flow import CycleOutcome

    before = champion_version()
    result = cycle(config_file)
    assert result.outcome is CycleOutcome.SKIPPED
    assert "data, code and config unchanged" in result.plan.text()
    assert result.trained is None and champion_version() == before


def report_cells(version: int, into: Path) -> str:
    """The markdown of a version's registered report notebook, as one string."""
    from recops import registry
    from recops.registry.store import REPORT_ARTIFACT

    info = registry.get_version(version)
    with registry.mlflow_client() as client:
        path = client.download_artifacts(info.run_id, REPORT_ARTIFACT, str(into))
    cells = json.loads(Path(path).read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def test_a_cycle_where_only_the_report_notebook_changed_re_renders_the_report(
    first_cycle, config_file, ct_home, tmp_path, monkeypatch
):
    """recops.continuous.report: no training and no new version; the version's registered report
    is replaced. A crash between the upload and the tag leaves the old tag: the next cycle
    renders again."""
    from recops import registry
    from recops.continuous.flow import CycleOutcome
    from recops.pipeline.steps import REPORT_NOTEBOOK
    from recops.registry.store import REPORT_HASH_TAG

    champion, n_versions = champion_version(), len(registry.list_versions())
    rendered_from = registry.get_version(champion).tags[REPORT_HASH_TAG]  # the first cycle's run
    assert "Refreshed by a cycle" not in report_cells(champion, tmp_path / "before")
    notebook = json.loads(REPORT_NOTEBOOK.read_text())
    cell = {"cell_type": "markdown", "id": "refreshed", "metadata": {}, "source": ["Refreshed by a cycle."]}
    notebook["cells"].append(cell)
    template = ct_home / "my-report.ipynb"
    template.write_text(json.dumps(notebook))
    config = ct_home / "report.toml"
    config.write_text(config_file.read_text() + f'\n[retrain]\nreport_template = "{template}"\n')

    monkeypatch.setenv("RECOPS_INJECT_FAULT", "report-refresh")  # dies after the upload
    crashed = cycle(config)
    assert crashed.outcome is CycleOutcome.SKIPPED and crashed.report_refreshed is None
    assert registry.get_version(champion).tags[REPORT_HASH_TAG] == rendered_from
    monkeypatch.delenv("RECOPS_INJECT_FAULT")

    result = cycle(config)
    assert result.outcome is CycleOutcome.SKIPPED and result.trained is None
    assert result.report_refreshed == champion, result.to_dict()
    assert len(registry.list_versions()) == n_versions and champion_version() == champion
    assert registry.get_version(champion).tags[REPORT_HASH_TAG] != rendered_from
    assert "Refreshed by a cycle." in report_cells(champion, tmp_path / "after")
    assert cycle(config).report_refreshed is None  # current now: nothing to do

    back = cycle(config_file)  # the default notebook again (as the later cycles here use)
    assert back.report_refreshed == champion
    assert registry.get_version(champion).tags[REPORT_HASH_TAG] == rendered_from


@pytest.fixture(scope="module")
def server(first_cycle, ct_home):
    """`recops serve`'s setup: the deployed bento, following the deployment record."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RECOPS_HOME", str(ct_home / "home"))
        from recops.localproc import free_port
        from recops.serving.deployment import deployment_file
        from recops.serving.server import serve, server_record

        tag = first_cycle.bento_tag
        running = serve(tag, port=free_port(), deployment=deployment_file(), ready_timeout=150)
        try:
            with server_record(running):
                yield running
        finally:
            running.stop()


def ask(url: str) -> dict:
    response = httpx.post(f"{url}/recommend", json={"session": [1, 2, 3], "k": 3}, timeout=10)
    response.raise_for_status()
    return response.json()


def test_a_bad_incoming_file_is_quarantined_while_the_cycle_completes(
    first_cycle, config_file, server, ct_home
):
    from recops.continuous.alerts import read_alerts
    from recops.continuous.flow import CycleOutcome
    from recops.serving.deployment import read_deployment

    before, deployed = champion_version(), read_deployment()
    served = ask(server.url)["model"]["version"]
    incoming = ct_home / "home" / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    bad = incoming / "0001-corrupt.csv"
    bad.write_text("session_id,item_id,timestamp\n9001,5,1764000000\n9001,,1764000060\n")
    result = cycle(config_file)
    assert result.outcome is CycleOutcome.SKIPPED, result.plan.text()
    [moved] = result.quarantined
    assert "column 'item_id' has null values" in moved.reason and "0001-corrupt.csv" in moved.file
    assert not bad.exists() and Path(moved.moved_to).is_file()
    assert any(p.name.endswith(".reason.txt") for p in Path(moved.moved_to).parent.iterdir())
    alerts = read_alerts()
    assert any(a["kind"] == "quarantined" and "0001-corrupt.csv" in a["message"] for a in alerts)
    assert champion_version() == before and read_deployment() == deployed
    assert ask(server.url)["model"]["version"] == served


class Webhook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        Webhook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:  # keep the test output quiet
        pass


def test_a_failed_training_run_fails_the_cycle_with_its_error(first_cycle, config_file, server, monkeypatch):
    """The Metaflow run fails in its train step: the Prefect run fails with that step's
    exception, the failure hook records it and posts it to the webhook, serving is untouched."""
    from recops.continuous.alerts import read_failures
    from recops.continuous.flow import retrain
    from recops.serving.deployment import read_deployment
    from recops.serving.server import server_file

    hook = http.server.HTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    monkeypatch.setenv("RECOPS_WEBHOOK_URL", f"http://127.0.0.1:{hook.server_port}/hook")
    monkeypatch.setenv("RECOPS_INJECT_FAULT", "train")
    before, deployed = champion_version(), read_deployment()
    try:
        state = retrain(config_path=str(config_file), force=True, return_state=True)
    finally:
        hook.shutdown()
        hook.server_close()
    assert state.is_failed()
    assert "TrainRecommenderFlow run" in state.message and "InjectedFault: fault injected" in state.message
    recorded = read_failures()[-1]
    assert recorded["flow_run_id"] == str(state.state_details.flow_run_id)
    assert Webhook.received and "InjectedFault" in Webhook.received[-1]["message"]
    assert champion_version() == before and read_deployment() == deployed
    assert server_file().is_file()


def test_a_cycle_after_a_failed_training_run_resumes_it(first_cycle, config_file, server):
    """Same inputs as the failed run above (forced, same data, code and config): the next cycle
    resumes that Metaflow run, reusing the steps that finished, instead of training again."""
    from metaflow import Run, namespace

    from recops.continuous.training_run import FAILED_RUN_KEY
    from recops.store import open_store

    namespace(None)  # the runs of every user: the cycle's Metaflow user is not this process's

    failed = json.loads(open_store().read_text(FAILED_RUN_KEY))["pathspec"]
    result = cycle(config_file, force=True)
    assert result.trained is not None and result.trained.pathspec != failed
    assert Run(result.trained.pathspec)["start"].task.origin_pathspec.startswith(failed)
    assert not open_store().exists(FAILED_RUN_KEY)
    assert result.deployed.in_sync


class SteadyClient(threading.Thread):
    """Asks the server without pause; a failed request is retried once, right away."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop = url, threading.Event()
        self.versions: list[str] = []
        self.first_try_failures, self.failures = 0, []

    def run(self) -> None:
        while not self.stop.is_set():
            for attempt in (1, 2):
                try:
                    self.versions.append(ask(self.url)["model"]["version"])
                    break
                except httpx.HTTPError as exc:
                    if attempt == 1:
                        self.first_try_failures += 1
                    else:
                        self.failures.append(repr(exc))
            time.sleep(0.02)


def test_cycle_3_drift_retrains_gates_and_swaps_the_served_model_without_failures(
    first_cycle, config_file, server, ct_home
):
    from recops.config import load_config
    from recops.continuous.flow import CycleOutcome
    from recops.data import load_events
    from recops.data.synthetic import new_events_like
    from recops.serving.deployment import read_deployment

    before = champion_version()
    served_before = ask(server.url)["model"]["version"]
    base = load_events("synthetic", load_config(config_file).data)
    new = new_events_like(base, 150, shift_popularity=True, seed=1)
    new.to_csv(ct_home / "home" / "incoming" / "0002-shifted.csv", index=False)

    client = SteadyClient(server.url)
    client.start()
    try:
        result = cycle(config_file)
        time.sleep(1.0)  # answers after the deploy, from every worker
    finally:
        client.stop.set()
        client.join(30)

    drift = result.change.drift
    assert drift.detected and "item popularity" in drift.drifted, drift
    assert "drift in item popularity" in result.plan.text()
    print(f"swap: {len(client.versions)} answers, {client.first_try_failures} failed first tries")
    print(f"gate: {result.trained.gate.reason}")
    assert client.failures == [], client.failures[:3]
    assert len(client.versions) > 50
    # Seeded data, training and bootstrap: the model trained on the shifted events wins, every time
    assert result.outcome is CycleOutcome.PROMOTED, result.trained.gate.reason
    new_version = str(result.trained.model_version)
    assert champion_version() == result.trained.model_version != before
    # retrain.warm_start (the default): the challenger started from the champion's weights
    from recops import registry

    assert registry.get_version(result.trained.model_version).tags["warm_started_from"] == f"version {before}"
    assert read_deployment()["bento_tag"] == result.bento_tag
    assert client.versions[0] == served_before and client.versions[-1] == new_version
    assert result.deployed.in_sync and [s.target for s in result.deployed.services] == [server.url]


def test_a_sabotaged_champion_is_retrained_by_online_degradation_in_one_hourly_check(
    first_cycle, config_file, server, ct_home
):
    """The champion serves random scores while its data looks unchanged: simulated shoppers'
    next events show it, and the next hourly check (new data alone does not retrain) retrains
    for that reason."""
    from recops.config import load_config
    from recops.continuous.traffic import held_out_sessions, simulate_traffic
    from recops.localproc import free_port
    from recops.serving.deployment import deployment_file, read_deployment
    from recops.serving.server import serve
    from recops.store import open_store

    online_config = ct_home / "online.toml"
    online_config.write_text(TINY_CONFIG + "[online]\nmin_pairs = 50\n")
    champion = champion_version()
    sabotaged = serve(
        read_deployment()["bento_tag"],
        port=free_port(),
        deployment=deployment_file(),
        env={"RECOPS_INJECT_FAULT": "random-scores"},
        ready_timeout=150,
    )
    try:
        sessions = held_out_sessions("synthetic", load_config(online_config), 150, seed=3)
        traffic = simulate_traffic(sabotaged.url, open_store(), sessions)
    finally:
        sabotaged.stop()  # flushes its served-list log
    assert traffic.failed == 0 and traffic.requests == 150

    result = cycle(online_config, retrain_on_new_data=False)
    online = result.change.online
    print(online.summary())
    assert online.version == champion and online.pairs >= 140 and online.degraded, online
    assert online.baseline_source == "offline"
    assert (
        result.plan.retrain
        and f"online NDCG@10 of champion version {champion} degraded" in result.plan.text()
    )
    assert result.trained is not None  # trained: promoted or rejected, the gate decides
    from recops import registry

    tags = registry.get_version(champion).tags
    assert float(tags["online_ndcg_at_10"]) == pytest.approx(online.observed, abs=1e-6)
    assert tags["online_role"] == "champion" and int(tags["online_pairs"]) == online.pairs
    assert "online_baseline_ndcg_at_10" not in tags  # a degraded window never becomes the baseline
