"""SessionRecommender: a recops checkpoint behind POST /recommend and POST /recommend_batch.

The model is loaded once per worker, in ``__init__``, by ``recops.serving.runtime.load_served_model``:
inside a bento that is the model the bento was built with; outside one (``bentoml serve
service:SessionRecommender`` in this folder) the newest ``session_recommender`` in the model
store, or the tag in ``$RECOPS_BENTO_MODEL_TAG``. Scoring is ``recops.serving.recommender.Recommender``,
the code evaluation uses; this file holds only the HTTP contract.

Model swaps (continuous training, locally): with ``$RECOPS_DEPLOYMENT_FILE`` set (``recops
serve`` sets it), each worker follows that record (``recops.serving.runtime.ModelWatcher``) and swaps to
a newly deployed model between batches, without a restart and without failing a request. Each
answer names the model that scored it. In the cloud a new bento image rolls out through ECS
instead (``terraform apply -var bento_image_tag=...``) and the variable is not set.

The online loop (recops.serving.served_log, recops.serving.runtime): every answer is logged off
the response path to ``<store>/served/`` (``RECOPS_SERVED_LOG=0``: off); a shadow model, from the
deployment record's shadow slot or ``$RECOPS_BENTO_SHADOW_TAG``, scores the same queries on its
own thread and is logged with role ``shadow``; cold sessions get the trending lists of
``<store>/serving/trending.json`` (``RECOPS_TRENDING=0``: all-time popularity only).

Contract decisions:
- ``session_id`` (``session_ids`` for a batch, one per session) is optional: the shopper's
  session as events name it, so an answer can be joined with what the shopper did next. Every
  answer carries a ``request_id`` (a batch's results ``<id>-<i>``), the key of the served log.
- Item ids are ints or strings, as the vocabulary holds them. An id unknown as given but known
  in the other type (``"42"`` for an int vocabulary, ``42`` for a string one) is matched;
  other unknown ids are listed in ``unknown_items`` and ignored. No known id: the trending
  items of the session's category (``fallback: "trending"``), or without trending lists the
  most popular training items (``fallback: "popular"``). An empty session is a valid cold start.
- ``k`` is 1..1000; above the catalogue size it is clamped (the whole catalogue is returned).
- A session holds at most 1000 ids (the model reads the most recent ones in its window), a
  batch at most 256 sessions, a body at most 1 MiB.
- Bad input is a 4xx whose JSON names the problem: 400 from validation (``{"error": "N
  validation errors for RecommendRequest", "detail": [{"loc": [...], "msg": ...}]}``), 413 for
  a body over the limit. The body is read as JSON whatever its Content-Type. Never a 5xx.
- Load shedding: a worker holding ``$RECOPS_BENTO_MAX_CONCURRENCY`` scoring requests answers
  the next at once with 503, ``Retry-After: 1`` and ``{"error": ...}`` instead of queueing it.
- ``/readyz`` is 503 while a worker serves another model than the deployed record's because the
  record's model failed to load (``ModelWatcher``, which keeps retrying); answers stay 200.
- Authentication: with ``$RECOPS_API_TOKEN`` set, every request but the health probes
  (``/healthz``, ``/livez``, ``/readyz``) needs ``Authorization: Bearer <token>``, else 401 with
  ``WWW-Authenticate: Bearer`` and ``{"error": ...}`` (``/metrics`` and the docs included; why:
  ``recops.serving.auth``). ``RECOPS_API_TOKEN_REQUIRED=1`` without a token: the service does
  not start.
"""

import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

import bentoml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    model_validator,
)
from starlette.responses import Response

from recops.localproc import cpu_share
from recops.serving import auth
from recops.serving.cold_start import TRENDING_ENV, TrendingWatcher
from recops.serving.deployment import DEPLOYMENT_ENV
from recops.serving.runtime import (
    MODEL_TAG_ENV,
    ModelWatcher,
    QueryBatcher,
    load_served_model,
    refused_requests_on_one_line,
)
from recops.serving.served_log import CHAMPION_ROLE, ServedLog, ServedRecord
from recops.serving.server import DEFAULT_WORKERS
from recops.serving.shadow_scorer import SHADOW_TAG_ENV, ShadowScorer

MAX_K = 1000
MAX_SESSION_LENGTH = 1000
MAX_BATCH_SESSIONS = 256
MAX_ITEM_ID_CHARS = 256
MAX_BODY_BYTES = 1 << 20
MAX_QUEUED_BATCH = 64  # /recommend queries scored together when they queue up in a worker
# Entry-point settings, read once here: worker processes, and whether /recommend queries that
# wait for a worker's scoring thread are scored together (QueryBatcher).
WORKERS = int(os.environ.get("RECOPS_BENTO_WORKERS", DEFAULT_WORKERS))
BATCHING = os.environ.get("RECOPS_BENTO_BATCHING", "1") != "0"
# One log line per request costs a scoring service real time; /metrics counts requests anyway.
ACCESS_LOG = os.environ.get("RECOPS_BENTO_ACCESS_LOG", "0") == "1"
# BentoML records an OpenTelemetry span for every request even at its default sample rate of 0
# (the span id is its request id), and nothing exports them unless tracing is configured. On
# the scoring endpoints that costs more than the rest of the HTTP stack together (figures in the
# README's serving section). RECOPS_BENTO_TRACING=1 (with a tracing exporter configured) keeps them.
TRACING = os.environ.get("RECOPS_BENTO_TRACING", "0") == "1"
# Scoring requests one worker holds at once; the next is shed (503 + Retry-After) rather than
# queued. A worker scores one batch of at most MAX_QUEUED_BATCH queued queries at a time, so the
# default lets a full batch wait behind the one being scored: requests beyond that would only
# wait longer behind more full batches, and are better retried (elsewhere, behind a load
# balancer) at once than answered late or timed out. /healthz, /livez, /readyz and /metrics
# are never shed.
MAX_CONCURRENCY = int(os.environ.get("RECOPS_BENTO_MAX_CONCURRENCY", MAX_QUEUED_BATCH))
if MAX_CONCURRENCY < 1:
    raise ValueError(f"RECOPS_BENTO_MAX_CONCURRENCY must be at least 1, not {MAX_CONCURRENCY}")
RETRY_AFTER_S = 1  # what a shed request is told to wait: about one batch's scoring, rounded up
# The bearer token every request but the health probes needs (None: open, the local default);
# RECOPS_API_TOKEN_REQUIRED=1 without one raises here, so the service refuses to start.
API_TOKEN = auth.service_token()

ItemId = StrictInt | Annotated[StrictStr, StringConstraints(min_length=1, max_length=MAX_ITEM_ID_CHARS)]
Session = Annotated[list[ItemId], Field(max_length=MAX_SESSION_LENGTH)]
TopK = Annotated[StrictInt, Field(ge=1, le=MAX_K)]


SessionId = StrictInt | Annotated[StrictStr, StringConstraints(min_length=1, max_length=MAX_ITEM_ID_CHARS)]


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", title="RecommendRequest")

    session: Session = Field(description="Item ids of the session, oldest first.")
    session_id: SessionId | None = Field(
        None, description="The shopper's session, as events name it: joins this answer with what came next."
    )
    k: TopK = Field(10, description="How many items to recommend (clamped to the catalogue size).")
    exclude_seen: StrictBool = Field(True, description="Leave out items already in the session.")


class RecommendBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", title="RecommendBatchRequest")

    sessions: Annotated[list[Session], Field(min_length=1, max_length=MAX_BATCH_SESSIONS)]
    session_ids: list[SessionId | None] | None = Field(
        None, description="One session id (or null) per session, in the same order."
    )
    k: TopK = 10
    exclude_seen: StrictBool = True

    @model_validator(mode="after")
    def _one_id_per_session(self) -> "RecommendBatchRequest":
        if self.session_ids is not None and len(self.session_ids) != len(self.sessions):
            raise ValueError(
                f"session_ids has {len(self.session_ids)} entries for {len(self.sessions)} sessions"
            )
        return self


class ScoredItem(BaseModel):
    item_id: int | str
    score: float


class ModelInfo(BaseModel):
    name: str
    version: str


class RecommendResponse(BaseModel):
    items: list[ScoredItem]
    model: ModelInfo
    unknown_items: list[int | str]
    fallback: Literal["popular", "trending"] | None
    request_id: str


class RecommendBatchResponse(BaseModel):
    results: list[RecommendResponse]
    model: ModelInfo
    request_id: str


class JSONBodyLimit:
    """ASGI middleware: a POST body is at most ``max_bytes`` (else 413) and is read as JSON.

    BentoML reads the whole body before validating it; this refuses an oversized one first,
    from Content-Length or while it streams in. The body is parsed as JSON whatever the
    Content-Type says (``curl -d`` sends form-urlencoded), so a non-JSON body is a 400 naming
    the JSON error rather than a form or multipart parse.
    """

    def __init__(self, app: Any, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        too_large = f"the body is larger than {self.max_bytes} bytes"
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_bytes:
            return await _reply(send, 413, too_large)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await _reply(send, 413, too_large)
            if not message.get("more_body", False):
                break
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
        scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


async def _reply(send: Any, status: int, message: str, extra: list | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += extra or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BearerToken:
    """ASGI middleware: a request needs ``Authorization: Bearer <token>`` (else 401 with
    ``WWW-Authenticate: Bearer``), except the health probes; the rules are
    ``recops.serving.auth.refusal``. Added before :class:`JSONBodyLimit`, so the body of a
    refused request is never read."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self.token is None or scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        reason = auth.refusal(self.token, scope["path"], header.decode("latin-1") if header else None)
        if reason is None:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":  # no websocket endpoints; refused all the same
            return await send({"type": "websocket.close", "code": 1008})
        challenge = 'Bearer realm="recops"' + (', error="invalid_token"' if header else "")
        await _reply(send, 401, reason, [(b"www-authenticate", challenge.encode())])


class ShedWith503:
    """ASGI wrapper of the whole app: the answer of BentoML's concurrency limit becomes a 503
    with ``Retry-After``.

    BentoML 1.4's ``traffic.max_concurrency`` (``MaxConcurrencyMiddleware`` in
    ``bentoml/_internal/server/http/traffic.py``) answers ``429 Too many requests`` at once
    when a worker holds that many requests. A server shedding load says 503 and when to retry,
    which load balancers and clients act on. Its middleware sits outside those added with
    ``add_asgi_middleware``, so this wraps the app ``to_asgi`` builds (:class:`_Service`);
    BentoML's /metrics still counts the shed requests as 429.
    """

    def __init__(self, app: Any, retry_after: int = RETRY_AFTER_S) -> None:
        self.app = app
        self.retry_after = retry_after

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        shed = False

        async def send_shed_as_503(message: dict) -> None:
            nonlocal shed
            if message["type"] == "http.response.start" and message["status"] == 429:
                shed = True
                error = f"the server is at its limit of concurrent requests; retry in {self.retry_after}s"
                return await _reply(send, 503, error, [(b"retry-after", str(self.retry_after).encode())])
            if not shed:  # BentoML's own 429 body is dropped
                await send(message)

        await self.app(scope, receive, send_shed_as_503)


class _Service(bentoml.Service):
    """``bentoml.Service`` whose ASGI app sheds load with 503 (:class:`ShedWith503`)."""

    def to_asgi(self, is_main: bool = True) -> Any:
        return ShedWith503(bentoml.Service.to_asgi(self, is_main), RETRY_AFTER_S)


def _response(recommendation: Any, info: dict[str, str], request_id: str) -> RecommendResponse:
    body = {**recommendation.to_dict(), "model": info, "request_id": request_id}
    return RecommendResponse.model_validate(body)


def _json(answer: BaseModel) -> Response:
    """The validated answer as one JSON body with a Content-Length. Returned as is, BentoML
    would stream a pydantic answer with chunked transfer encoding: three ASGI messages, each
    through every middleware, instead of two."""
    return Response(answer.model_dump_json().encode(), media_type="application/json")


@bentoml.service(
    name="SessionRecommender",
    workers=WORKERS,
    # BentoML's max_concurrency is the service's, split evenly between its workers.
    traffic={"timeout": 30, "max_concurrency": MAX_CONCURRENCY * WORKERS},
    logging={"access": {"enabled": ACCESS_LOG}},
    tracing={} if TRACING else {"excluded_urls": ["/recommend", "/recommend_batch"]},
    labels={"project": "recops", "component": "serving"},
    service_class=_Service,
)
class SessionRecommender:
    def __init__(self) -> None:
        import torch

        # torch's threads split the CPUs this process may use (affinity, cgroup quota) between the workers
        torch.set_num_threads(cpu_share(WORKERS))
        refused_requests_on_one_line()  # a 4xx is one WARNING line in the log, not a traceback
        # BentoML's server logging keeps the root at WARNING: recops' own INFO lines (a model
        # swap, a shadow settled, a trending list read) would never reach the log
        logging.getLogger("recops").setLevel(logging.INFO)
        served = load_served_model(os.environ.get(MODEL_TAG_ENV) or "session_recommender")
        self.batcher = QueryBatcher(served, max_batch=MAX_QUEUED_BATCH if BATCHING else 1)
        self.served_log = ServedLog.from_env()  # None with RECOPS_SERVED_LOG=0
        self.shadow = ShadowScorer(self.served_log)
        self.trending = None  # the cold-start lists of <store>/serving/trending.json, followed
        if os.environ.get(TRENDING_ENV, "1") != "0":
            from recops.store import open_store

            self.trending = TrendingWatcher(open_store()).start()
        if os.environ.get(SHADOW_TAG_ENV):  # pinned (benchmarks); else the deployment record's
            self.shadow.served = load_served_model(os.environ[SHADOW_TAG_ENV])
        self.watcher = None
        if os.environ.get(DEPLOYMENT_ENV):
            path = Path(os.environ[DEPLOYMENT_ENV])
            self.watcher = ModelWatcher(path, served.tag, self._swap, swap_shadow=self._swap_shadow).start()

    def _swap(self, served: Any) -> None:
        self.batcher.served = served  # the next batch is scored by the new model

    def _swap_shadow(self, served: Any) -> None:
        self.shadow.served = served  # None: no shadow

    async def __is_ready__(self) -> bool:
        """BentoML's readiness hook (``/readyz`` answers 503 when False): this worker is not
        ready while the deployed model failed to load and another one answers in its stead."""
        return self.watcher is None or self.watcher.ready

    def _log(
        self,
        request_id: str,
        session_id: Any,
        query: tuple[list, int, bool],
        answer: Any,
        served: Any,
        endpoint: str,
    ) -> None:
        """Hand the answer to the served-list log and the query to the shadow, if any (appends;
        each is written or scored by its own thread)."""
        if self.served_log is None:
            return
        at, session = time.time(), query[0]
        session_id = None if session_id is None else str(session_id)
        self.served_log.record(
            ServedRecord.of(request_id, at, session_id, session, answer, served, CHAMPION_ROLE, endpoint)
        )
        self.shadow.submit(request_id, at, session_id, session, query[1], query[2], endpoint)

    @bentoml.api(input_spec=RecommendRequest)
    async def recommend(
        self, session: list, k: int, exclude_seen: bool, session_id: Any = None
    ) -> RecommendResponse:
        """Top-k items for one session (ids oldest first)."""
        answer, served = await self.batcher.recommend(session, k, exclude_seen)
        request_id = uuid.uuid4().hex
        self._log(request_id, session_id, (session, k, exclude_seen), answer, served, "recommend")
        return _json(_response(answer, served.info, request_id))  # type: ignore[return-value]

    @bentoml.api(input_spec=RecommendBatchRequest)
    async def recommend_batch(
        self, sessions: list, k: int, exclude_seen: bool, session_ids: list | None = None
    ) -> RecommendBatchResponse:
        """Top-k items for each of many sessions, scored together."""
        recommendations, served = await self.batcher.recommend_batch(sessions, k, exclude_seen)
        request_id = uuid.uuid4().hex
        ids = session_ids or [None] * len(sessions)
        results = []
        for i, (session, recommendation) in enumerate(zip(sessions, recommendations, strict=True)):
            query = (session, k, exclude_seen)
            self._log(f"{request_id}-{i}", ids[i], query, recommendation, served, "recommend_batch")
            results.append(_response(recommendation, served.info, f"{request_id}-{i}"))
        answer = RecommendBatchResponse(results=results, model=served.info, request_id=request_id)
        return _json(answer)  # type: ignore[return-value]

    @bentoml.on_shutdown
    def stop_scoring(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.batcher.close()
        self.shadow.close()
        if self.trending is not None:
            self.trending.stop()
        if self.served_log is not None:
            self.served_log.close()  # writes what is left


SessionRecommender.add_asgi_middleware(BearerToken, token=API_TOKEN)  # outermost of the two
SessionRecommender.add_asgi_middleware(JSONBodyLimit, max_bytes=MAX_BODY_BYTES)
