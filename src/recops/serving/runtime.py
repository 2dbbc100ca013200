"""Package a checkpoint for BentoML: model store import, bento build, and a local server handle.

The path of one model (DESIGN.md) ends ``--bento build--> bento session_recommender:<tag>
--serve--> POST /recommend``; each arrow is one function here. The service in
``bentos/session_recommender/service.py`` only calls :func:`load_served_model`, so it answers
with exactly the ``Recommender`` (and scoring code) that evaluation used.

BentoML keeps its state under ``BENTOML_HOME``; when that is not set it goes under
``$RECOPS_HOME/bentoml`` with everything else. bentoml is imported inside the functions, after
that variable is settled, so importing this module has no side effects.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recops.data.interactions import PAD, ItemVocab
from recops.localproc import port_error, stop_group
from recops.paths import REPO_ROOT, recops_home
from recops.serving.recommender import Recommendation, Recommender
from recops.training.checkpoint import Checkpoint

log = logging.getLogger(__name__)

BENTO_MODEL_NAME = "session_recommender"  # BentoML model *and* bento name
SERVICE_NAME = "SessionRecommender"  # the @bentoml.service class
MODEL_TAG_ENV = "RECOPS_BENTO_MODEL_TAG"  # pin the served model outside a bento
CHECKPOINT_FILE = "checkpoint.pt"
SERVICE_DIR = REPO_ROOT / "bentos" / "session_recommender"
SERVICE_FILES = ("service.py", "bentofile.yaml")
# What the service imports at run time (recops.serving.recommender and what it pulls in, and uvicorn's fast
# event loop and HTTP parser); pinned in the bento's requirements.txt to the versions installed
# here, i.e. those of constraints.txt.
RUNTIME_PACKAGES = ("numpy", "pandas", "pyarrow", "torch", "uvloop", "httptools")
SERVER_STOP_TIMEOUT_S = 15.0
DEFAULT_WORKERS = 2  # server processes; each gets cores // workers torch threads
DEPLOYMENT_ENV = "RECOPS_DEPLOYMENT_FILE"  # the served model follows this file (see ModelWatcher)
WATCH_INTERVAL_S = 0.5


class BentoError(RuntimeError):
    """A bento cannot be built or served; the message says why and what to do."""


# --- BentoML home -----------------------------------------------------------------------------


def bentoml_home() -> Path:
    """``$BENTOML_HOME``, defaulting it to ``$RECOPS_HOME/bentoml``; call before using bentoml.

    Also turns BentoML's usage tracking off unless asked for: the embedded default makes no
    network calls.
    """
    os.environ.setdefault("BENTOML_HOME", str(recops_home() / "bentoml"))
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    home = Path(os.environ["BENTOML_HOME"]).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


@contextlib.contextmanager
def _bentoml_deprecations_hidden() -> Iterator[None]:
    """bentoml 1.4.40 calls deprecated pathspec and pydantic APIs when imported and when it loads
    a service (warnings about its own code, shown to every user; nothing for us to act on)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield


def _bentoml():
    bentoml_home()
    with _bentoml_deprecations_hidden():
        import bentoml
        import bentoml.bentos
        import bentoml.exceptions
        import bentoml.models

    return bentoml


# --- model store ------------------------------------------------------------------------------

_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.\-]+")


def _label(value: Any) -> str:
    """A label value BentoML and BentoCloud accept: at most 63 of ``[A-Za-z0-9_.-]``."""
    text = _LABEL_VALUE.sub("-", str(value)).strip("-_.")
    return text[:63].strip("-_.") or "none"


LINEAGE_TAGS = ("metaflow_pathspec", "git_commit")  # registry version tags worth a label


def lineage_labels(checkpoint: Checkpoint, version_info: Any = None, source: str = "") -> dict[str, str]:
    """Labels that say which model this is and where it came from.

    ``version_info`` is ``recops.registry.ModelVersionInfo`` when the checkpoint came from the
    MLflow registry (``name``, ``version``, ``run_id``, ``aliases``, ``tags``); without it the
    model is labelled unregistered. Labels hold label-safe short forms (BentoCloud's rule: at
    most 63 of ``[A-Za-z0-9_.-]``); :func:`lineage_metadata` keeps the full values.
    """
    fingerprint = checkpoint.data_fingerprint.split(":")[-1]
    labels = {
        "model_name": getattr(version_info, "name", None) or "unregistered",
        "model_version": getattr(version_info, "version", None) or "none",
        "run_id": getattr(version_info, "run_id", None) or "none",
        "architecture": checkpoint.model_name,
        "dataset": checkpoint.dataset or "unknown",
        "data_fingerprint": fingerprint[:16] or "none",
        "recops_version": checkpoint.recops_version or "unknown",
    }
    aliases = getattr(version_info, "aliases", None)
    if aliases:
        labels["aliases"] = ".".join(sorted(aliases))
    tags = getattr(version_info, "tags", None) or {}
    labels.update({key: tags[key] for key in LINEAGE_TAGS if tags.get(key)})
    if source:
        labels["source"] = source
    return {key: _label(value) for key, value in labels.items()}


def lineage_metadata(checkpoint: Checkpoint, version_info: Any = None) -> dict[str, Any]:
    """Full lineage for the stored model's metadata: the checkpoint's, plus the registry's."""
    test = checkpoint.metrics.get("test", {})
    metadata: dict[str, Any] = {
        "architecture": checkpoint.model_name,
        "model_config": dict(checkpoint.model_config),
        "n_items": len(checkpoint.vocab),
        "dataset": checkpoint.dataset,
        "data_fingerprint": checkpoint.data_fingerprint,
        "recops_version": checkpoint.recops_version,
        "test_metrics": {k: float(v) for k, v in test.items() if isinstance(v, int | float)},
    }
    if version_info is not None:
        metadata["registry"] = {
            "name": str(version_info.name),
            "version": str(version_info.version),
            "run_id": str(version_info.run_id),
            "aliases": [str(a) for a in getattr(version_info, "aliases", ())],
            "source": str(getattr(version_info, "source", "")),
            "tags": {str(k): str(v) for k, v in (getattr(version_info, "tags", None) or {}).items()},
        }
    return metadata


def import_checkpoint(
    checkpoint: str | Path | Checkpoint,
    labels: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Save a checkpoint into the BentoML model store as ``session_recommender:<version>``.

    ``checkpoint`` is a ``checkpoint.pt`` path (copied byte for byte) or a :class:`Checkpoint`.
    ``labels`` extend and override :func:`lineage_labels`, ``metadata``
    :func:`lineage_metadata`. Returns the model tag.
    """
    bentoml = _bentoml()
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint.load(checkpoint)
    merged = {**lineage_labels(ckpt), **{k: _label(v) for k, v in (labels or {}).items()}}
    meta = {**lineage_metadata(ckpt), **(metadata or {})}
    with bentoml.models.create(name=BENTO_MODEL_NAME, labels=merged, metadata=meta) as model:
        target = Path(model.path_of(CHECKPOINT_FILE))
        if isinstance(checkpoint, Checkpoint):
            checkpoint.save(target)
        else:
            shutil.copyfile(checkpoint, target)
    log.info("imported %s into the BentoML model store (%s)", model.tag, bentoml_home())
    return str(model.tag)


# --- what the service runs --------------------------------------------------------------------


@dataclass(frozen=True)
class ServedModel:
    """A stored model loaded for serving: the recommender plus what answers say about it."""

    recommender: Recommender
    tag: str
    labels: dict[str, str]

    @property
    def info(self) -> dict[str, str]:
        """``{"name", "version"}``: registry name/version, else architecture and store version."""
        registered = self.labels.get("model_name", "unregistered") != "unregistered"
        name = self.labels["model_name"] if registered else self.labels.get("architecture", "unknown")
        version = self.labels["model_version"] if registered else self.tag.split(":")[-1]
        return {"name": name, "version": version}

    @property
    def n_items(self) -> int:
        return self.recommender.n_items

    def recommend_batch(
        self, sessions: Sequence[Sequence[Any]], k: int, exclude_seen: bool = True
    ) -> list[Recommendation]:
        """``Recommender.recommend_batch`` on ids matched to the vocabulary; ``k`` is clamped to the
        catalogue size, so a client needs not know it."""
        vocab = self.recommender.vocab
        matched = [match_item_ids(vocab, session) for session in sessions]
        return self.recommender.recommend_batch(matched, min(k, self.n_items), exclude_seen)

    def recommend_queries(self, queries: Sequence[tuple[Sequence[Any], int, bool]]) -> list[Recommendation]:
        """Answers to ``(session, k, exclude_seen)`` queries, scored in one ``recommend_batch`` per
        ``exclude_seen`` value at the largest ``k``, each cut to its own ``k``: top-k lists are
        prefixes of one another (stable sort), so each answer equals a query on its own."""
        answers: list[Recommendation | None] = [None] * len(queries)
        for exclude in (True, False):
            rows = [i for i, (_, _, e) in enumerate(queries) if e == exclude]
            if not rows:
                continue
            k_max = max(queries[i][1] for i in rows)
            batch = self.recommend_batch([queries[i][0] for i in rows], k_max, exclude)
            for i, recommendation in zip(rows, batch, strict=True):
                answers[i] = Recommendation(
                    recommendation.items[: queries[i][1]],
                    recommendation.unknown_items,
                    recommendation.fallback,
                )
        return answers  # type: ignore[return-value]


class QueryBatcher:
    """Natural batching for one server worker: one scoring thread, and the queries that arrive
    while it is busy go together into its next ``recommend_queries`` call.

    No timer: a lone query is scored at once, so batching adds no latency at low load; under
    load the batch grows with the queue, up to ``max_batch``. BentoML's own adaptive batching
    would need /recommend to call a batchable endpoint through the service's self-proxy (a
    second HTTP hop in-process), which in BentoML 1.4.40 also fails requests under concurrency.
    """

    def __init__(self, served: ServedModel, max_batch: int = 64) -> None:
        self.served = served
        self.max_batch = max_batch
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recops-scoring")
        self._pending: list[tuple[tuple[Sequence[Any], int, bool], asyncio.Future]] = []
        self._drainer: asyncio.Task | None = None  # referenced, so it is not garbage-collected

    async def recommend(
        self, session: Sequence[Any], k: int, exclude_seen: bool = True
    ) -> tuple[Recommendation, dict[str, str]]:
        """The answer and the ``info`` of the model that scored it (the model may be swapped)."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append(((session, k, exclude_seen), future))
        if self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def run(self, func: Any, *args: Any) -> Any:
        """Run ``func(*args)`` on the scoring thread (for work that is already a batch)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def recommend_batch(
        self, sessions: Sequence[Sequence[Any]], k: int, exclude_seen: bool = True
    ) -> tuple[list[Recommendation], dict[str, str]]:
        served = self.served
        return await self.run(served.recommend_batch, sessions, k, exclude_seen), served.info

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                served = self.served  # one model per batch, even if a swap lands meanwhile
                try:
                    answers = await self.run(served.recommend_queries, [query for query, _ in batch])
                except Exception as exc:  # handed to every waiting request, which reports it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), answer in zip(batch, answers, strict=True):
                    if not future.done():  # a request may have been cancelled meanwhile
                        future.set_result((answer, served.info))
        finally:
            self._drainer = None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


# --- deployment: which model the local server answers with ----------------------------------


def deployment_file() -> Path:
    """The local deployment record: which bento and model the local server should answer with."""
    return recops_home() / "serving" / "deployment.json"


def write_deployment(bento_tag: str, path: Path | None = None) -> dict[str, Any]:
    """Record ``bento_tag`` (and the model inside it) as the deployed one, atomically.

    A server started by ``recops serve`` watches this file and swaps to the recorded model.
    """
    from recops.paths import atomic_path

    bentoml = _bentoml()
    try:
        bento = bentoml.get(bento_tag)
    except bentoml.exceptions.NotFound as exc:
        raise BentoError(f"no bento {bento_tag!r} in {bentoml_home()}; build it first") from exc
    model_tag = str(bento.info.models[0].tag) if bento.info.models else ""
    try:
        model = bentoml.models.get(model_tag)
    except (bentoml.exceptions.NotFound, ValueError) as exc:
        raise BentoError(f"bento {bento.tag} holds model {model_tag!r}, not in the model store") from exc
    record = {
        "bento_tag": str(bento.tag),
        "model_tag": str(model.tag),
        "checkpoint": str(Path(model.path_of(CHECKPOINT_FILE)).resolve()),
        "labels": dict(model.info.labels),
        "deployed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    target = path or deployment_file()
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(record, indent=2))
    return record


def read_deployment(path: Path | None = None) -> dict[str, Any] | None:
    target = path or deployment_file()
    try:
        return json.loads(target.read_text())
    except FileNotFoundError:
        return None


class ModelWatcher:
    """Keeps a server worker on the deployed model: polls the deployment file and, when it names
    another model, loads that checkpoint on this thread and hands it to ``swap``.

    The swap is one reference assignment between batches: queries already being scored finish
    on the old model, the next batch uses the new one, and no request fails or waits for the
    load. A record that cannot be loaded is logged and skipped; the current model stays.
    """

    def __init__(self, path: Path, current_tag: str, swap: Any, interval: float = WATCH_INTERVAL_S) -> None:
        self.path, self.current_tag, self.swap, self.interval = path, current_tag, swap, interval
        self._stop = threading.Event()
        self._failed_tag = ""
        self._thread = threading.Thread(target=self._loop, name="recops-model-watcher", daemon=True)

    def start(self) -> ModelWatcher:
        self.check()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> bool:
        """Swap if the record names another model; True when a swap happened."""
        try:
            record = read_deployment(self.path)
        except (OSError, ValueError) as exc:
            log.warning("cannot read the deployment record %s: %s", self.path, exc)
            return False
        tag = (record or {}).get("model_tag", "")
        if not tag or tag in (self.current_tag, self._failed_tag):
            return False
        try:
            recommender = Recommender.from_path(record["checkpoint"])
        except Exception as exc:  # a bad record must not take the server down
            log.error("cannot load deployed model %s (%s); keeping %s", tag, exc, self.current_tag)
            self._failed_tag = tag
            return False
        self.swap(ServedModel(recommender, tag, dict(record.get("labels", {}))))
        log.info("now serving %s (was %s)", tag, self.current_tag)
        self.current_tag = tag
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()


def load_served_model(tag: str = BENTO_MODEL_NAME) -> ServedModel:
    """Load a stored model. ``session_recommender`` is, inside a bento, an alias for the model
    the bento was built with, and elsewhere the newest stored version."""
    bentoml = _bentoml()
    try:
        model = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound as exc:
        raise BentoError(
            f"no model {tag!r} in the BentoML model store {bentoml_home()}: "
            "build one with `recops bento build --checkpoint PATH` (or --alias champion)"
        ) from exc
    recommender = Recommender.from_path(model.path_of(CHECKPOINT_FILE))
    return ServedModel(recommender, str(model.tag), dict(model.info.labels))


_INT_TEXT = re.compile(r"-?[1-9][0-9]*|0")


def match_item_ids(vocab: ItemVocab, session: Sequence[Any]) -> list[Any]:
    """The session with each id in the vocabulary's own type where the other type matches.

    JSON clients may send ``"42"`` for an integer vocabulary (or ``42`` for a string one): an id
    that is unknown as given but known as the canonical int (``"42"``, not ``"042"`` or ``"4.2"``)
    or as ``str(id)`` is used in that form. Ids unknown either way stay as given, so
    ``unknown_items`` echoes what the client sent.
    """
    out = []
    for item in session:
        if vocab.index_of(item) == PAD:
            if isinstance(item, str) and _INT_TEXT.fullmatch(item) and vocab.index_of(int(item)) != PAD:
                item = int(item)
            elif isinstance(item, int) and vocab.index_of(str(item)) != PAD:
                item = str(item)
        out.append(item)
    return out


# --- bento build ------------------------------------------------------------------------------


def _runtime_requirements() -> str:
    lines = []
    for name in RUNTIME_PACKAGES:
        try:
            # a local label (torch "2.13.0+cpu") names a build PyPI does not have; pin the release
            lines.append(f"{name}=={importlib.metadata.version(name).split('+')[0]}")
        except importlib.metadata.PackageNotFoundError:
            lines.append(name)
    return "\n".join(lines) + "\n"


def _stage_build_context(model_tag: str, service_dir: Path, into: Path) -> Path:
    """A build context holding the service, a copy of the ``recops`` package (so the bento
    carries the code that scores) and a bentofile pinned to ``model_tag``."""
    import yaml

    for name in SERVICE_FILES:
        shutil.copy2(service_dir / name, into / name)
    package = Path(__file__).resolve().parent
    shutil.copytree(package, into / "recops", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (into / "requirements.txt").write_text(_runtime_requirements())
    bentofile = into / "bentofile.yaml"
    config = yaml.safe_load(bentofile.read_text())
    # The alias makes bentoml.models.get("session_recommender") mean *this* version in the bento.
    config["models"] = [{"tag": model_tag, "alias": BENTO_MODEL_NAME}]
    bentofile.write_text(yaml.safe_dump(config, sort_keys=False))
    return bentofile


def build_bento(
    checkpoint_path: str | Path | None = None,
    alias: str | None = None,
    *,
    labels: Mapping[str, Any] | None = None,
    service_dir: str | Path | None = None,
) -> str:
    """Import a model and build the bento ``session_recommender:<version>`` that serves it.

    The source is a ``checkpoint.pt`` path or a registry alias (``champion``, ``challenger``),
    which is resolved by ``recops.registry.load_checkpoint``. The bento and its model carry the
    lineage labels. Returns the bento tag.
    """
    if (checkpoint_path is None) == (alias is None):
        raise ValueError("give exactly one of a checkpoint path or a registry alias")
    service_dir = Path(service_dir or SERVICE_DIR)
    for name in SERVICE_FILES:
        if not (service_dir / name).is_file():
            raise BentoError(f"{service_dir / name} is missing; is {service_dir} the service folder?")
    if alias is not None:
        checkpoint, version_info = _load_from_registry(alias)
        lineage = lineage_labels(checkpoint, version_info, source=f"alias-{alias}")
        source: Path | Checkpoint = checkpoint
    else:
        checkpoint, version_info = Checkpoint.load(checkpoint_path), None  # fails early, clearly
        lineage = lineage_labels(checkpoint, source="path")
        source = Path(checkpoint_path)  # type: ignore[arg-type]
    merged = {**lineage, **{k: _label(v) for k, v in (labels or {}).items()}}
    model_tag = import_checkpoint(source, merged, lineage_metadata(checkpoint, version_info))
    bentoml = _bentoml()
    with tempfile.TemporaryDirectory(prefix="recops-bento-") as tmp:
        bentofile = _stage_build_context(model_tag, service_dir, Path(tmp))
        with _bentoml_deprecations_hidden():  # the build imports service.py, defining its IO models
            bento = bentoml.bentos.build_bentofile(
                str(bentofile), build_ctx=tmp, labels={**merged, "bento_model": _label(model_tag)}
            )
    log.info("built bento %s serving %s", bento.tag, model_tag)
    return str(bento.tag)


def _load_from_registry(alias: str) -> tuple[Checkpoint, Any]:
    try:
        from recops import registry
    except ImportError as exc:
        raise BentoError(
            f"cannot resolve alias {alias!r}: recops.registry (the MLflow model registry) is not "
            f"available ({exc}); build from a checkpoint path instead"
        ) from exc
    return registry.load_checkpoint(alias)


# --- serving ----------------------------------------------------------------------------------


@dataclass
class BentoServer:
    """A running ``bentoml serve``; :meth:`stop` ends it (and its workers) for good."""

    url: str
    process: subprocess.Popen
    log_path: Path | None  # None: the output went to this process's stdout/stderr
    owns_log: bool = False  # a temporary log, removed by stop()

    def stop(self, timeout: float = SERVER_STOP_TIMEOUT_S) -> None:
        """SIGTERM to the server's process group (arbiter and workers), SIGKILL after ``timeout``."""
        stop_group(self.process, ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)))
        if self.owns_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)

    def log_tail(self, n_chars: int = 4000) -> str:
        if self.log_path is None:
            return "(see the server output above)"
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except OSError:
            return ""

    def __enter__(self) -> BentoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _check_port_free(host: str, port: int) -> None:
    if (reason := port_error(port, host)) is not None:
        raise BentoError(f"cannot serve on {host}:{port}: {reason}; choose another --port")


def serve(
    bento_or_path: str | Path,
    host: str = "127.0.0.1",
    port: int = 3000,
    *,
    workers: int | None = None,
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 120.0,
    log_path: str | Path | None = None,
    show_output: bool = False,
    deployment: str | Path | None = None,
) -> BentoServer:
    """Run ``bentoml serve`` on a bento tag (or a service folder) and wait until ``/readyz``.

    ``workers`` sets the service's worker processes (``$RECOPS_BENTO_WORKERS``, read by
    service.py, which also splits the cores' torch threads between them). The server's output
    goes to ``log_path``, to this process's own stdout/stderr with ``show_output``, else to a
    temporary file that :meth:`BentoServer.stop` removes. With ``deployment`` (a deployment
    record, :func:`write_deployment`) the workers follow it and swap models as it changes.
    Raises :class:`BentoError` with the
    log's tail if the server exits or is not ready within ``ready_timeout`` seconds; it is then
    already stopped.
    """
    import httpx

    _check_port_free(host, port)
    child_env = {**os.environ, "BENTOML_HOME": str(bentoml_home()), **(env or {})}
    if workers is not None:
        child_env["RECOPS_BENTO_WORKERS"] = str(int(workers))
    if deployment is not None:
        child_env[DEPLOYMENT_ENV] = str(Path(deployment).resolve())
    owns_log = log_path is None and not show_output
    if owns_log:
        fd, name = tempfile.mkstemp(prefix="recops-bentoml-serve-", suffix=".log")
        os.close(fd)
        log_path = name
    path = None if show_output else Path(log_path)  # type: ignore[arg-type]
    command = [sys.executable, "-m", "bentoml", "serve", str(bento_or_path)]
    command += ["--host", host, "--port", str(port)]
    with contextlib.ExitStack() as files:
        out = None if path is None else files.enter_context(path.open("wb"))
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=None if out is None else subprocess.STDOUT,
            env=child_env,
            start_new_session=True,
        )
    server = BentoServer(f"http://{host}:{port}", process, path, owns_log)
    try:
        _wait_ready(server, ready_timeout, httpx)
    except BaseException:
        server.stop()
        raise
    return server


def server_file() -> Path:
    """Where ``recops serve`` records the running local server, for ``recops retrain``'s deploy."""
    return recops_home() / "serving" / "server.json"


@contextlib.contextmanager
def server_record(server: BentoServer) -> Any:
    """Record ``server`` (URL, pid) in :func:`server_file` while the block runs."""
    from recops.paths import atomic_path

    with atomic_path(server_file()) as tmp:
        tmp.write_text(json.dumps({"url": server.url, "pid": server.process.pid}))
    try:
        yield
    finally:
        server_file().unlink(missing_ok=True)


def running_server() -> str | None:
    """The URL of the local server ``recops serve`` runs, if one is recorded and alive."""
    try:
        record = json.loads(server_file().read_text())
        os.kill(int(record["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    return str(record["url"])


def _wait_ready(server: BentoServer, timeout: float, httpx: Any) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                tail = server.log_tail()  # read before stop() removes a temporary log
                raise BentoError(f"bentoml serve exited with code {server.process.returncode}:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{server.url}/readyz").status_code == 200:
                    return
            time.sleep(0.25)
    tail = server.log_tail()
    raise BentoError(f"bentoml serve was not ready after {timeout:.0f}s:\n{tail}")
