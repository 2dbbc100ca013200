"""The BentoML service, built as a real bento and served by `bentoml serve` on 127.0.0.1.

One tiny model, one bento (built by `python -m recops.cli.bento build`), one server for the
module, always stopped. The service must answer exactly what the in-process Recommender
answers, refuse every bad input with a 4xx that says what is wrong, and keep serving after.
"""

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from recops.config import load_config
from recops.data import build_interactions, leave_one_out_split, validate_events
from recops.localproc import free_port, http_ok, port_error, wait_until
from recops.serving.model_store import BentoError
from recops.serving.recommender import Recommender
from recops.serving.runtime import QueryBatcher, ServedModel
from recops.serving.server import serve
from recops.training.experiment import PreparedData, fit
from tests.helpers import TINY, cycle_events

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checkpoint_path(tmp_path_factory) -> Path:
    inter = build_interactions(validate_events(cycle_events()))
    data = PreparedData("cycle", inter, leave_one_out_split(inter))
    fitted = fit(data, "sasrec", load_config(overrides={**TINY, "train.epochs": 3}))
    return fitted.checkpoint.save(tmp_path_factory.mktemp("model") / "checkpoint.pt")


@pytest.fixture(scope="module")
def bentoml_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("bentoml-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENTOML_HOME", str(home))
        mp.setenv("BENTOML_DO_NOT_TRACK", "True")
        yield home


@pytest.fixture(scope="module")
def bento_tag(checkpoint_path, bentoml_home) -> str:
    """Built by the command line in a child process: this process never holds BentoML state."""
    result = subprocess.run(
        [sys.executable, "-m", "recops.cli.bento", "build", "--checkpoint", str(checkpoint_path)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env={**os.environ, "BENTOML_HOME": str(bentoml_home)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def server(bento_tag):
    running = serve(bento_tag, port=free_port(), ready_timeout=150)
    try:
        yield running
    finally:
        running.stop()
    assert running.process.poll() is not None


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        yield http


@pytest.fixture(scope="module")
def recommender(checkpoint_path) -> Recommender:
    return Recommender.from_path(str(checkpoint_path))


def answer(recommender: Recommender, session, k: int = 10, exclude_seen: bool = True) -> dict:
    result = recommender.recommend(session, min(k, recommender.n_items), exclude_seen).to_dict()
    return {key: result[key] for key in ("items", "unknown_items", "fallback")}


def assert_same_answer(live: dict, expected: dict) -> None:
    """Same items in the same order, same unknown items and fallback; scores equal to float32
    precision (the server's workers score with fewer torch threads than this process)."""
    assert [i["item_id"] for i in live["items"]] == [i["item_id"] for i in expected["items"]]
    assert [i["score"] for i in live["items"]] == pytest.approx(
        [i["score"] for i in expected["items"]], rel=1e-5, abs=1e-6
    )
    assert (live["unknown_items"], live["fallback"]) == (expected["unknown_items"], expected["fallback"])


def test_bento_carries_the_model_and_its_lineage(bento_tag, bentoml_home):
    name, version = bento_tag.split(":")
    info = yaml.safe_load((bentoml_home / "bentos" / name / version / "bento.yaml").read_text())
    labels = info["labels"]
    for key in ("model_name", "model_version", "run_id", "architecture", "data_fingerprint", "dataset"):
        assert labels[key]
    assert labels["architecture"] == "sasrec" and labels["dataset"] == "cycle"
    [model] = info["models"]
    assert model["alias"] == "session_recommender"
    assert labels["bento_model"] == model["tag"].replace(":", "-")
    stored = bentoml_home / "models" / "session_recommender" / model["tag"].split(":")[1]
    assert (stored / "checkpoint.pt").is_file()
    assert (
        bentoml_home / "bentos" / name / version / "src" / "recops" / "serving" / "recommender.py"
    ).is_file()


def test_live_answers_equal_the_in_process_recommender(client, recommender, bento_tag):
    rng = random.Random(0)
    items = list(recommender.vocab.items)
    for _ in range(100):
        session = [rng.choice(items) for _ in range(rng.randint(1, 15))]  # some exceed max_len 10
        k, exclude_seen = rng.randint(1, 12), rng.random() < 0.7
        response = client.post("/recommend", json={"session": session, "k": k, "exclude_seen": exclude_seen})
        assert response.status_code == 200, response.text
        body = response.json()
        assert_same_answer(body, answer(recommender, session, k, exclude_seen))
    assert body["model"] == {"name": "sasrec", "version": body["model"]["version"]}
    assert body["model"]["version"]


def test_batch_endpoint_equals_per_session_answers(client, recommender):
    rng = random.Random(1)
    items = list(recommender.vocab.items)
    sessions = [[rng.choice(items) for _ in range(rng.randint(1, 12))] for _ in range(20)]
    sessions += [["unknown-1"], []]
    response = client.post("/recommend_batch", json={"sessions": sessions, "k": 5})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == len(sessions)
    for session, result in zip(sessions, results, strict=True):
        assert_same_answer(result, client.post("/recommend", json={"session": session, "k": 5}).json())


def test_concurrent_requests_are_answered_as_if_alone(server, recommender):
    """Requests that arrive together are scored together (QueryBatcher): answers must not change."""
    rng = random.Random(2)
    items = list(recommender.vocab.items)
    queries = [
        ([rng.choice(items) for _ in range(rng.randint(0, 12))], rng.randint(1, 12), rng.random() < 0.5)
        for _ in range(64)
    ]

    def ask(query):
        session, k, exclude_seen = query
        body = {"session": session, "k": k, "exclude_seen": exclude_seen}
        with httpx.Client(base_url=server.url, timeout=30.0) as http:
            return http.post("/recommend", json=body)

    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(ask, queries))
    for (session, k, exclude_seen), response in zip(queries, responses, strict=True):
        assert response.status_code == 200, response.text
        assert_same_answer(response.json(), answer(recommender, session, k, exclude_seen))


def test_query_batcher_answers_each_query_as_if_alone(recommender):
    served = ServedModel(recommender, "session_recommender:test", {"architecture": "sasrec"})
    batcher = QueryBatcher(served, max_batch=8)
    rng = random.Random(3)
    items = list(recommender.vocab.items)
    queries = [
        ([rng.choice(items) for _ in range(rng.randint(0, 12))], rng.randint(1, 20), rng.random() < 0.5)
        for _ in range(30)
    ]

    async def ask_all():
        return await asyncio.gather(*(batcher.recommend(*query) for query in queries))

    try:
        answers = asyncio.run(ask_all())
    finally:
        batcher.close()
    for (session, k, exclude_seen), (got, scored_by) in zip(queries, answers, strict=True):
        assert scored_by is served
        assert_same_answer(got.to_dict(), answer(recommender, session, k, exclude_seen))


def test_unknown_items_are_reported_and_ignored(client, recommender):
    body = client.post("/recommend", json={"session": [103, "nope", 104], "k": 5}).json()
    assert body["unknown_items"] == ["nope"] and body["fallback"] is None
    assert_same_answer({**body, "unknown_items": []}, answer(recommender, [103, 104], 5))


@pytest.mark.parametrize("session", [["x", "y"], []])
def test_no_known_item_falls_back_to_popular(client, recommender, session):
    body = client.post("/recommend", json={"session": session, "k": 4}).json()
    assert body["fallback"] == "popular" and body["unknown_items"] == session
    assert_same_answer(body, answer(recommender, session, 4))


def test_string_ids_match_an_integer_vocabulary(client):
    as_text = client.post("/recommend", json={"session": ["103", "104"], "k": 3}).json()
    as_int = client.post("/recommend", json={"session": [103, 104], "k": 3}).json()
    assert as_text["items"] == as_int["items"] and as_text["unknown_items"] == []


def test_k_above_the_catalogue_is_clamped(client, recommender):
    body = client.post("/recommend", json={"session": [100, 101], "k": 1000}).json()
    assert len(body["items"]) == recommender.n_items - 2


def test_long_sessions_use_the_most_recent_events(client, recommender):
    session = [100 + i % 12 for i in range(1000)]  # the longest allowed; the model's window is 10
    body = client.post("/recommend", json={"session": session, "k": 5, "exclude_seen": False}).json()
    assert_same_answer(body, answer(recommender, session[-10:], 5, exclude_seen=False))


BIG_BODY = b'{"session": [1], "padding": "' + b"x" * (2 << 20) + b'"}'
BAD_INPUTS = {
    "malformed JSON": (b'{"session": [1, 2', "Invalid JSON"),
    "not JSON at all": (b"session=103", "Invalid JSON"),
    "empty body": (b"", "session"),
    "not an object": (b"[103, 104]", "object"),
    "missing session": (b'{"k": 3}', "session"),
    "session not a list": (b'{"session": "103"}', "array"),
    "float item id": (b'{"session": [1.5]}', "integer"),
    "boolean item id": (b'{"session": [true]}', "integer"),
    "k as a string": (b'{"session": [103], "k": "3"}', "integer"),
    "k=0": (b'{"session": [103], "k": 0}', "greater than or equal to 1"),
    "k=1001": (b'{"session": [103], "k": 1001}', "less than or equal to 1000"),
    "misspelt field": (b'{"sesion": [103]}', "Extra inputs"),
    "oversized session": (json.dumps({"session": list(range(1001))}).encode(), "at most 1000"),
    "oversized body": (BIG_BODY, "larger than"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_is_a_helpful_4xx_and_the_service_keeps_serving(client, case):
    body, expected = BAD_INPUTS[case]
    response = client.post("/recommend", content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert expected in response.text, response.text
    assert "error" in response.json()
    after = client.post("/recommend", json={"session": [103], "k": 2})
    assert after.status_code == 200 and len(after.json()["items"]) == 2


def test_refused_requests_are_one_warning_line_each_in_the_server_log(client, server):
    """BentoML logs a refused request at ERROR with its traceback (5 bad requests were 122
    lines); the worker turns a 4xx into one WARNING line that names the error."""
    log_file = server.server.log_path
    start = log_file.stat().st_size
    bodies = [BAD_INPUTS[case][0] for case in ("misspelt field", "k=0", "float item id", "not an object")]
    for body in bodies:
        assert client.post(
            "/recommend", content=body, headers={"content-type": "application/json"}
        ).is_client_error

    def written() -> str | None:
        text = log_file.read_bytes()[start:].decode(errors="replace")
        return text if text.count("refused, ") >= len(bodies) else None

    new = wait_until(written, 20, what="the refusals reaching the server log")
    assert "Traceback" not in new and "ERROR" not in new, new[-3000:]
    refusals = [line for line in new.splitlines() if "refused, " in line]
    assert len(refusals) == len(bodies) and all("WARNING" in line for line in refusals), refusals
    assert any("ValidationError" in line for line in refusals), refusals


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"sessions": []}, "at least 1"),
        ({"sessions": [[103]] * 257}, "at most 256"),
        ({"sessions": [[103]], "k": 0}, "greater than or equal to 1"),
        ({"session": [103]}, "sessions"),
    ],
)
def test_bad_batch_input_is_a_4xx(client, body, expected):
    response = client.post("/recommend_batch", json=body)
    assert 400 <= response.status_code < 500 and expected in response.text, response.text


def test_form_encoded_json_is_read_as_json(client):
    """`curl -d '{...}'` sends application/x-www-form-urlencoded; the body is JSON all the same."""
    response = client.post(
        "/recommend",
        content=b'{"session": [103], "k": 2}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz", "/metrics"])
def test_health_and_metrics_answer(client, path):
    response = client.get(path)
    assert response.status_code == 200
    if path == "/metrics":
        assert "bentoml_service_request" in response.text


def test_scoring_requests_record_no_span_but_are_counted(client):
    """BentoML records a span per request even when nothing exports it (its request id); the
    scoring endpoints skip that cost by default, and /metrics still counts them."""
    response = client.post("/recommend", json={"session": [101], "k": 2})
    assert response.status_code == 200, response.text
    assert "x-bentoml-request-id" not in response.headers
    metrics = client.get("/metrics").text
    assert any('endpoint="/recommend"' in line for line in metrics.splitlines() if "request_total" in line)


def _default_hangup() -> None:  # in the child, before exec
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@contextlib.contextmanager
def _recops_serve(bento_tag: str, log: Path) -> Iterator[tuple[subprocess.Popen, int, list[psutil.Process]]]:
    """:func:`_start_recops_serve`, and whatever is left of it killed when the test fails."""
    process, port, server = _start_recops_serve(bento_tag, log)
    try:
        yield process, port, server
    finally:
        for leftover in [process, *server]:
            with contextlib.suppress(ProcessLookupError, psutil.Error):
                leftover.kill()


def _start_recops_serve(bento_tag: str, log: Path) -> tuple[subprocess.Popen, int, list[psutil.Process]]:
    """`recops serve` as a shell starts it with `&`: in this process group, its server behind it."""
    port = free_port()
    command = [sys.executable, "-m", "recops", "serve", bento_tag, "--port", str(port), "--workers", "1"]
    with log.open("w") as out:  # SIGHUP at its default: this test may run under nohup, which ignores it
        process = subprocess.Popen(
            command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_default_hangup
        )
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/readyz") or process.poll() is not None, 150)
    except TimeoutError:
        process.kill()
        raise
    assert process.poll() is None, log.read_text()[-3000:]
    server = psutil.Process(process.pid).children(recursive=True)  # bentoml serve and its worker
    assert len(server) >= 2 and any("bentoml" in " ".join(p.cmdline()) for p in server)
    return process, port, server


def _assert_nothing_left(server: list[psutil.Process], port: int) -> None:
    _, alive = psutil.wait_procs(server, timeout=40)
    assert not alive, [p.cmdline() for p in alive]
    assert port_error(port) is None  # the next `recops serve` on this port can start


@pytest.mark.slow  # two servers, each started and stopped
@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP])
def test_kill_stops_recops_serve_and_its_server_as_ctrl_c_does(bento_tag, number, tmp_path):
    """`kill` (SIGTERM, also `kill %1`) or a closed terminal (SIGHUP) sent to `recops serve`
    alone: it stops `bentoml serve` and its workers, which run in sessions of their own."""
    with _recops_serve(bento_tag, tmp_path / "serve.log") as (process, port, server):
        process.send_signal(number)
        assert process.wait(timeout=60) == 0, (tmp_path / "serve.log").read_text()[-3000:]
        assert "server stopped" in (tmp_path / "serve.log").read_text()
        _assert_nothing_left(server, port)


@pytest.mark.slow
def test_a_killed_recops_serve_takes_its_server_with_it(bento_tag, tmp_path):
    """SIGKILL cannot be handled: the server learns of its parent's death from the kernel
    (PR_SET_PDEATHSIG) and stops itself and its worker."""
    with _recops_serve(bento_tag, tmp_path / "serve.log") as (process, port, server):
        process.kill()
        process.wait(timeout=10)
        _assert_nothing_left(server, port)


def test_serve_reports_a_server_that_cannot_start(bentoml_home):
    with pytest.raises(BentoError, match="exited with code"):
        serve("session_recommender:doesnotexist", port=free_port(), ready_timeout=120)


def test_bench_interleaves_the_floor_with_concurrency_1(server):
    """At c=1 the timed requests go in blocks with the in-process calls between them, so the
    floor and the HTTP figures come from the same minutes; the in-between time is not counted."""
    from recops.serving.bench import BLOCK, _http_level

    calls: list[float] = []

    def between() -> None:
        calls.append(time.perf_counter())
        time.sleep(1.0)

    n = 2 * BLOCK + 10
    level = asyncio.run(_http_level(server.url, [[101, 102]], 1, n, 2, 60.0, between))
    assert level["requests"] == n and level["errors"] == 0
    assert len(calls) == 3  # after each of the three blocks
    assert level["seconds"] < 3.0  # the three 1 s pauses are not in the wall time
    with pytest.raises(ValueError, match="concurrency 1"):
        asyncio.run(_http_level(server.url, [[101]], 8, 10, 2, 60.0, between))


def write_record(path: Path, tag: str, checkpoint: Path, version: str = "") -> None:
    """A deployment record as ``write_deployment`` writes it (this process holds no BentoML state)."""
    labels = {"model_name": "session-recommender", "model_version": version} if version else {}
    path.write_text(json.dumps({"model_tag": tag, "checkpoint": str(checkpoint), "labels": labels}))


def test_model_watcher_swaps_to_the_deployed_model_and_survives_a_bad_record(checkpoint_path, tmp_path):
    from recops.serving.runtime import ModelWatcher

    record = tmp_path / "deployment.json"
    swapped: list[ServedModel] = []
    watcher = ModelWatcher(record, "session_recommender:old", swapped.append)
    assert not watcher.check() and watcher.ready  # no record yet: keep serving
    write_record(record, "session_recommender:new", checkpoint_path, version="7")
    assert watcher.check() and not watcher.check()  # swaps once
    assert swapped[-1].tag == "session_recommender:new" and swapped[-1].info["version"] == "7"
    assert watcher.ready
    write_record(record, "session_recommender:broken", tmp_path / "nope.pt")
    assert not watcher.check() and len(swapped) == 1  # the current model keeps serving...
    assert watcher.current_tag == "session_recommender:new"
    assert not watcher.ready and "session_recommender:broken" in watcher.failure  # ...not ready
    write_record(record, "session_recommender:broken", checkpoint_path, version="8")  # fixed
    assert watcher.check() and watcher.ready  # a changed record is tried at once
    assert watcher.current_tag == "session_recommender:broken" and swapped[-1].info["version"] == "8"


def test_model_watcher_retries_a_failed_load_with_backoff(checkpoint_path, tmp_path, monkeypatch):
    """A record whose model cannot load is tried again after 2, 4, ... x interval, at most
    max_backoff apart; the file appearing is picked up at the next try, a changed record at once."""
    from recops.serving import runtime

    loads: list[str] = []
    real_load = runtime.Recommender.from_path

    def counted(path):
        loads.append(str(path))
        return real_load(path)

    monkeypatch.setattr(runtime.Recommender, "from_path", staticmethod(counted))
    now = [100.0]
    record, missing = tmp_path / "deployment.json", tmp_path / "later" / "checkpoint.pt"
    swapped: list[ServedModel] = []
    watcher = runtime.ModelWatcher(
        record, "session_recommender:old", swapped.append, interval=0.5, max_backoff=3.0, clock=lambda: now[0]
    )
    write_record(record, "session_recommender:new", missing, version="2")
    tries_at = []
    for _ in range(59):  # polls every interval for 29.5 s: tries at 0, 1, 3, 6, 9, ..., 27 s
        before = len(loads)
        assert not watcher.check() and not watcher.ready
        if len(loads) > before:
            tries_at.append(now[0] - 100.0)
        now[0] += 0.5
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(tries_at)]
    assert gaps[:3] == [1.0, 2.0, 3.0] and set(gaps[3:]) == {3.0}  # doubles, capped at max_backoff
    assert "next in" in watcher.failure and not swapped

    missing.parent.mkdir()
    missing.write_bytes(checkpoint_path.read_bytes())  # the file appears: picked up when due
    assert not watcher.check()  # the next try is due at 30 s
    now[0] += 0.5
    assert watcher.check() and watcher.ready and swapped[-1].info["version"] == "2"

    write_record(record, "session_recommender:third", tmp_path / "nope.pt")
    assert not watcher.check() and not watcher.ready
    n = len(loads)
    write_record(record, "session_recommender:third", checkpoint_path, version="3")  # fixed record
    assert watcher.check() and watcher.ready and len(loads) == n + 1  # no wait for the backoff

    record.write_text("{not json")  # unreadable: not ready, reported once per backoff, not per poll
    assert not watcher.check() and not watcher.ready
    write_record(record, "session_recommender:third", checkpoint_path, version="3")
    assert not watcher.check() and watcher.ready  # the deployed model serves again: ready
    record.unlink()
    assert not watcher.check() and watcher.ready  # nothing deployed: the current model is right


def test_readyz_fails_while_the_deployed_model_cannot_load_and_recovers(bento_tag, checkpoint_path, tmp_path):
    """Live: a record whose checkpoint is missing makes /readyz 503 while answers stay 200 from
    the previous model; when the file appears, the retry swaps and /readyz is 200 again."""
    record = tmp_path / "deployment.json"
    write_record(record, "session_recommender:deployed2", checkpoint_path, version="2")
    running = serve(bento_tag, port=free_port(), workers=1, deployment=record, ready_timeout=150)
    try:
        with httpx.Client(base_url=running.url, timeout=30.0) as http:

            def version() -> str:
                response = http.post("/recommend", json={"session": [101], "k": 2})
                assert response.status_code == 200, response.text
                return response.json()["model"]["version"]

            def wait_for(condition, timeout: float = 30.0) -> None:
                deadline = time.monotonic() + timeout
                while not condition():
                    assert time.monotonic() < deadline, running.log_tail()
                    time.sleep(0.1)

            assert version() == "2" and http.get("/readyz").status_code == 200
            later = tmp_path / "later" / "checkpoint.pt"
            write_record(record, "session_recommender:deployed3", later, version="3")
            wait_for(lambda: http.get("/readyz").status_code == 503)
            for _ in range(5):
                assert version() == "2"  # the old model keeps answering
            assert http.get("/healthz").status_code == 200  # alive, only not ready
            later.parent.mkdir()
            later.write_bytes(checkpoint_path.read_bytes())
            wait_for(lambda: http.get("/readyz").status_code == 200)
            assert version() == "3"
            assert "cannot load deployed model session_recommender:deployed3" in running.log_tail(200_000)
    finally:
        running.stop()


def test_over_the_concurrency_limit_requests_are_shed_with_503(bento_tag):
    """One worker, at most one request at a time: of many concurrent big batches some are shed
    with 503 and Retry-After, none fails otherwise, and the server answers normally afterwards."""
    env = {"RECOPS_BENTO_MAX_CONCURRENCY": "1"}
    running = serve(bento_tag, port=free_port(), workers=1, env=env, ready_timeout=150)
    rng = random.Random(4)
    body = {"sessions": [[rng.randrange(100, 112) for _ in range(300)] for _ in range(256)], "k": 10}

    async def burst(n: int) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        async with httpx.AsyncClient(base_url=running.url, timeout=60.0, limits=limits) as http:
            return await asyncio.gather(*(http.post("/recommend_batch", json=body) for _ in range(n)))

    try:
        responses: list[httpx.Response] = []
        for _ in range(5):  # on a busy machine one burst may happen to arrive one by one
            responses += asyncio.run(burst(16))
            if any(r.status_code == 503 for r in responses):
                break
        statuses = sorted({r.status_code for r in responses})
        assert statuses == [200, 503], statuses
        for response in responses:
            if response.status_code == 503:
                assert response.headers["retry-after"] == "1"
                assert "limit of concurrent requests" in response.json()["error"]
            else:
                assert len(response.json()["results"]) == 256
        with httpx.Client(base_url=running.url, timeout=30.0) as http:
            for path in ("/readyz", "/healthz", "/metrics"):
                assert http.get(path).status_code == 200
            for _ in range(5):
                after = http.post("/recommend", json={"session": [103], "k": 2})
                assert after.status_code == 200 and len(after.json()["items"]) == 2
    finally:
        running.stop()


API_TOKEN = "test-token_0123456789abcdef"


@pytest.fixture(scope="module")
def token_server(bento_tag):
    """A second server of the same bento, with an API token required (one worker)."""
    env = {"RECOPS_API_TOKEN": API_TOKEN, "RECOPS_API_TOKEN_REQUIRED": "1"}
    running = serve(bento_tag, port=free_port(), workers=1, env=env, ready_timeout=150)
    try:
        yield running
    finally:
        running.stop()


def test_a_token_server_answers_only_requests_with_the_token(token_server):
    body = {"session": [101, 102], "k": 2}
    with httpx.Client(base_url=token_server.url, timeout=30.0) as http:
        for headers, error in [
            ({}, "needs an 'Authorization: Bearer <token>' header"),
            ({"Authorization": f"Basic {API_TOKEN}"}, "needs an 'Authorization: Bearer <token>' header"),
            ({"Authorization": "Bearer wrong-token"}, "not valid"),
            ({"Authorization": f"Bearer {API_TOKEN}x"}, "not valid"),
        ]:
            for path, payload in [("/recommend", body), ("/recommend_batch", {"sessions": [[101]], "k": 2})]:
                response = http.post(path, json=payload, headers=headers)
                assert response.status_code == 401, (path, headers, response.text)
                assert response.headers["www-authenticate"].startswith("Bearer")
                assert error in response.json()["error"]
        refused_big = http.post("/recommend", content=BIG_BODY, headers={"content-type": "application/json"})
        assert refused_big.status_code == 401  # refused before the body is read (no 413)
        right = {"Authorization": f"Bearer {API_TOKEN}"}
        answer = http.post("/recommend", json=body, headers=right)
        assert answer.status_code == 200 and len(answer.json()["items"]) == 2, answer.text
        assert (
            http.post("/recommend", json=body, headers={"authorization": f"bearer {API_TOKEN}"}).status_code
            == 200
        )
        for path in ("/metrics", "/docs.json", "/"):  # closed too (why: recops.serving.auth)
            assert http.get(path).status_code == 401, path
            assert http.get(path, headers=right).status_code == 200, path


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz"])
def test_a_token_server_keeps_the_health_probes_open(token_server, path):
    assert httpx.get(f"{token_server.url}{path}", timeout=30.0).status_code == 200


def test_recops_clients_send_the_token(token_server, monkeypatch):
    from recops.serving.bench import _http_level
    from recops.serving.deployment import wait_for_model
    from recops.serving.reconcile import answered_version

    monkeypatch.setenv("RECOPS_API_TOKEN", API_TOKEN)
    version = answered_version(token_server.url)
    assert version
    assert wait_for_model(token_server.url, version, 60.0, session=[101]) >= 8
    level = asyncio.run(_http_level(token_server.url, [[101, 102]], 2, 10, 2, 30.0))
    assert level["requests"] == 10 and level["errors"] == 0, level

    monkeypatch.setenv("RECOPS_API_TOKEN", "wrong-token")
    assert answered_version(token_server.url) is None
    started = time.monotonic()
    with pytest.raises(BentoError, match=r"refused the API token in \$RECOPS_API_TOKEN \(401\)"):
        wait_for_model(token_server.url, version, 60.0, session=[101])
    assert time.monotonic() - started < 10  # at once, not after the timeout

    monkeypatch.delenv("RECOPS_API_TOKEN")
    with pytest.raises(BentoError, match=r"requires an API token: set \$RECOPS_API_TOKEN \(401\)"):
        wait_for_model(token_server.url, version, 60.0, session=[101])
    level = asyncio.run(_http_level(token_server.url, [[101, 102]], 1, 5, 2, 30.0))
    assert level["errors"] == 5


def test_a_required_token_that_is_not_set_stops_the_service_from_starting(bento_tag, monkeypatch):
    monkeypatch.delenv("RECOPS_API_TOKEN", raising=False)
    env = {"RECOPS_API_TOKEN_REQUIRED": "1"}
    with pytest.raises(BentoError, match="RECOPS_API_TOKEN_REQUIRED=1 but RECOPS_API_TOKEN is not set"):
        serve(bento_tag, port=free_port(), env=env, ready_timeout=60)  # said before starting anything
    # the service itself refuses too, whoever starts it (bentoml serve, a container)
    service_env = {k: v for k, v in os.environ.items() if k != "RECOPS_API_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-c", "import service"],
        cwd=REPO / "bentos" / "session_recommender",
        env={**service_env, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "RECOPS_API_TOKEN_REQUIRED=1 but RECOPS_API_TOKEN is not set" in result.stderr


@pytest.mark.slow  # a server of its own
def test_the_served_log_holds_exactly_the_answers_sent(bento_tag, tmp_path):
    """Every answer of /recommend and /recommend_batch is one row of the served log: its request
    id, session, items in order, model version; written off the response path and flushed when
    the server stops."""
    store = tmp_path / "store"
    env = {"RECOPS_STORE": str(store), "RECOPS_SERVED_LOG_FLUSH_SECONDS": "3600"}  # only at shutdown
    running = serve(bento_tag, port=free_port(), ready_timeout=150, env=env)
    sent = []  # (request id, session id, session, answer)
    try:
        with httpx.Client(base_url=running.url, timeout=30.0) as http:
            for i, session in enumerate([[103, 104], ["nope"], [105, 106, 107], []]):
                request = {"session": session, "k": 3, "session_id": f"s{i}"}
                body = http.post("/recommend", json=request).json()
                sent.append((body["request_id"], f"s{i}", session, body))
            sessions = [[108], [109, 110]]
            ids = ["b0", None]
            batch = http.post("/recommend_batch", json={"sessions": sessions, "session_ids": ids, "k": 2})
            for session, session_id, result in zip(sessions, ids, batch.json()["results"], strict=True):
                sent.append((result["request_id"], session_id, session, result))
            refused = http.post("/recommend_batch", json={"sessions": [[1]], "session_ids": ["a", "b"]})
            assert refused.status_code == 400 and "session_ids has 2 entries for 1 sessions" in refused.text
    finally:
        running.stop()
    from recops.serving.served_log import read_served
    from recops.store import Store

    rows = read_served(Store(store)).rows
    assert list(rows["request_id"]) == [request_id for request_id, *_ in sent]
    for (_, session_id, session, body), (_, row) in zip(sent, rows.iterrows(), strict=True):
        assert list(row["items"]) == [str(item["item_id"]) for item in body["items"]]
        assert list(row["scores"]) == pytest.approx([item["score"] for item in body["items"]])
        assert list(row["session"]) == [str(item) for item in session]
        assert (None if row["session_id"] != row["session_id"] else row["session_id"]) == session_id
        assert row["model_version"] == str(body["model"]["version"]) and row["role"] == "champion"
        assert (row["fallback"] if isinstance(row["fallback"], str) else None) == body["fallback"]
    assert rows.iloc[1]["fallback"] == "popular"
    assert list(rows["endpoint"]) == ["recommend"] * 4 + ["recommend_batch"] * 2


@pytest.mark.slow  # a server of its own
def test_a_slow_shadow_never_delays_the_champion_and_logs_its_lists(bento_tag, checkpoint_path, tmp_path):
    """A shadow model scored on every request, deliberately slow (a second per batch): each
    champion answer is back long before one shadow batch could finish, and the shadow's lists
    are logged with role shadow under the champion's request ids. (The latency ratio is the
    benchmark's: `recops bench serve --compare shadow`.)"""
    from recops.serving.served_log import read_served
    from recops.store import Store

    script = (
        "import sys; from recops.serving.model_store import import_checkpoint; "
        "from recops.training.checkpoint import Checkpoint; "
        "print(import_checkpoint(Checkpoint.load(sys.argv[1]), {'purpose': 'shadow-test'}))"
    )
    imported = subprocess.run(  # in a child: this process never holds BentoML state
        [sys.executable, "-c", script, str(checkpoint_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    shadow_tag = imported.stdout.strip().splitlines()[-1]
    store = tmp_path / "store"
    env = {
        "RECOPS_STORE": str(store),
        "RECOPS_BENTO_SHADOW_TAG": shadow_tag,
        "RECOPS_INJECT_FAULT": "slow-shadow",
        "RECOPS_BENTO_WORKERS": "1",
    }
    running = serve(bento_tag, port=free_port(), ready_timeout=150, env=env)
    seconds, ids = [], []
    try:
        with httpx.Client(base_url=running.url, timeout=30.0) as http:
            for i in range(30):
                start = time.perf_counter()
                body = http.post("/recommend", json={"session": [103 + i % 5], "k": 3, "session_id": f"s{i}"})
                seconds.append(time.perf_counter() - start)
                ids.append(body.json()["request_id"])
            time.sleep(2.5)  # two shadow batches finish
    finally:
        running.stop()
    assert max(seconds) < 0.5, seconds  # a champion answer that waited for the shadow takes >= 1 s
    rows = read_served(Store(store)).rows
    champion, shadow = rows[rows["role"] == "champion"], rows[rows["role"] == "shadow"]
    assert list(champion["request_id"]) == ids
    assert len(shadow) >= 2 and set(shadow["request_id"]) <= set(ids)
    paired = champion.set_index("request_id").loc[list(shadow["request_id"])]
    assert list(paired["served_at"]) == list(shadow["served_at"])  # the champion's request time
