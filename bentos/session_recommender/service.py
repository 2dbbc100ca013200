"""SessionRecommender: a recops checkpoint behind POST /recommend and POST /recommend_batch.

The model is loaded once per worker, in ``__init__``, by ``recops.bento.load_served_model``:
inside a bento that is the model the bento was built with; outside one (``bentoml serve
service:SessionRecommender`` in this folder) the newest ``session_recommender`` in the model
store, or the tag in ``$RECOPS_BENTO_MODEL_TAG``. Scoring is ``recops.serving.Recommender``,
the code evaluation uses; this file holds only the HTTP contract.

Contract decisions:
- Item ids are ints or strings, as the vocabulary holds them. An id unknown as given but known
  in the other type (``"42"`` for an int vocabulary, ``42`` for a string one) is matched;
  other unknown ids are listed in ``unknown_items`` and ignored. No known id: the most popular
  items, with ``fallback: "popular"``. An empty session is a valid cold start.
- ``k`` is 1..1000; above the catalogue size it is clamped (the whole catalogue is returned).
- A session holds at most 1000 ids (the model reads the most recent ones in its window), a
  batch at most 256 sessions, a body at most 1 MiB.
- Bad input is a 4xx whose JSON names the problem: 400 from validation (``{"error": "N
  validation errors for RecommendRequest", "detail": [{"loc": [...], "msg": ...}]}``), 413 for
  a body over the limit. The body is read as JSON whatever its Content-Type. Never a 5xx.
"""

import json
import os
from typing import Annotated, Any, Literal

import bentoml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, StringConstraints

from recops.bento import DEFAULT_WORKERS, MODEL_TAG_ENV, QueryBatcher, ServedModel, load_served_model

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

ItemId = StrictInt | Annotated[StrictStr, StringConstraints(min_length=1, max_length=MAX_ITEM_ID_CHARS)]
Session = Annotated[list[ItemId], Field(max_length=MAX_SESSION_LENGTH)]
TopK = Annotated[StrictInt, Field(ge=1, le=MAX_K)]


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", title="RecommendRequest")

    session: Session = Field(description="Item ids of the session, oldest first.")
    k: TopK = Field(10, description="How many items to recommend (clamped to the catalogue size).")
    exclude_seen: StrictBool = Field(True, description="Leave out items already in the session.")


class RecommendBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", title="RecommendBatchRequest")

    sessions: Annotated[list[Session], Field(min_length=1, max_length=MAX_BATCH_SESSIONS)]
    k: TopK = 10
    exclude_seen: StrictBool = True


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
    fallback: Literal["popular"] | None


class RecommendBatchResponse(BaseModel):
    results: list[RecommendResponse]
    model: ModelInfo


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


async def _reply(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _response(served: ServedModel, recommendation: Any) -> RecommendResponse:
    return RecommendResponse.model_validate({**recommendation.to_dict(), "model": served.info})


@bentoml.service(
    name="SessionRecommender",
    workers=WORKERS,
    traffic={"timeout": 30},
    labels={"project": "recops", "component": "serving"},
)
class SessionRecommender:
    def __init__(self) -> None:
        import torch

        # One scoring thread per worker; torch's threads split the cores between the workers.
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // WORKERS))
        self.served = load_served_model(os.environ.get(MODEL_TAG_ENV) or "session_recommender")
        self.batcher = QueryBatcher(self.served, max_batch=MAX_QUEUED_BATCH if BATCHING else 1)

    @bentoml.api(input_spec=RecommendRequest)
    async def recommend(self, session: list, k: int, exclude_seen: bool) -> RecommendResponse:
        """Top-k items for one session (ids oldest first)."""
        return _response(self.served, await self.batcher.recommend(session, k, exclude_seen))

    @bentoml.api(input_spec=RecommendBatchRequest)
    async def recommend_batch(self, sessions: list, k: int, exclude_seen: bool) -> RecommendBatchResponse:
        """Top-k items for each of many sessions, scored together."""
        recommendations = await self.batcher.run(self.served.recommend_batch, sessions, k, exclude_seen)
        return RecommendBatchResponse(
            results=[_response(self.served, r) for r in recommendations], model=self.served.info
        )

    @bentoml.on_shutdown
    def stop_scoring(self) -> None:
        self.batcher.close()


SessionRecommender.add_asgi_middleware(JSONBodyLimit, max_bytes=MAX_BODY_BYTES)
