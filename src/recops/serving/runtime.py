"""What each BentoML worker runs: the served model, the batcher of concurrent queries, and the
watcher that swaps models when the deployment record changes.

The service in ``bentos/session_recommender/service.py`` only calls :func:`load_served_model`, so it
answers with exactly the ``Recommender`` (and scoring code) that evaluation used.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recops.data.interactions import PAD, ItemVocab
from recops.errors import ErrorsOnOneLine
from recops.serving.cold_start import INT_TEXT, TRENDING, with_trending
from recops.serving.deployment import read_deployment
from recops.serving.model_store import (
    BENTO_MODEL_NAME,
    CHECKPOINT_FILE,
    BentoError,
    bentoml_home,
    load_bentoml,
)
from recops.serving.poller import Poller
from recops.serving.recommender import Recommendation, Recommender

log = logging.getLogger(__name__)

BENTOML_REQUEST_LOGGER = "bentoml._internal.server.http_app"  # where BentoML logs a failed request


class RefusedRequestsOnOneLine(ErrorsOnOneLine):
    """BentoML logs every refused request at ERROR with the whole traceback (a pydantic
    ValidationError: ~25 lines for one misspelt field). A refusal (4xx) is the client's error,
    already explained in the answer: one WARNING line naming it. Server errors (5xx) keep their
    traceback."""

    level = logging.WARNING
    note = "refused, "

    def expected(self, error: BaseException) -> bool:
        return _is_refusal(error)


def _is_refusal(error: BaseException) -> bool:
    from bentoml.exceptions import BentoMLException
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        return True
    return isinstance(error, BentoMLException) and int(error.error_code) < 500


def refused_requests_on_one_line() -> None:
    """Install :class:`RefusedRequestsOnOneLine` on BentoML's request logger (once)."""
    RefusedRequestsOnOneLine.install(BENTOML_REQUEST_LOGGER)


MODEL_TAG_ENV = "RECOPS_BENTO_MODEL_TAG"  # pin the served model outside a bento
# RECOPS_INJECT_FAULT=random-scores: answers are random items (a test of retraining on online
# degradation: the model serves badly while its data looks unchanged)
FAULT_ENV, RANDOM_SCORES_FAULT = "RECOPS_INJECT_FAULT", "random-scores"
SLOW_SHADOW_FAULT, SLOW_SHADOW_S = "slow-shadow", 1.0  # each shadow batch takes a second longer


WATCH_INTERVAL_S = 0.5
MAX_RETRY_BACKOFF_S = 30.0  # longest wait between two tries of a deployed model that failed to load


def model_info(tag: str, labels: dict[str, str]) -> dict[str, str]:
    """What answers say about the stored model ``tag`` with ``labels`` (``{"name", "version"}``):
    its registry name and version, else its architecture and model store version."""
    registered = labels.get("model_name", "unregistered") != "unregistered"
    name = labels["model_name"] if registered else labels.get("architecture", "unknown")
    version = labels["model_version"] if registered else tag.split(":")[-1]
    return {"name": name, "version": version}


@dataclass(frozen=True)
class ServedModel:
    """A stored model loaded for serving: the recommender plus what answers say about it."""

    recommender: Recommender
    tag: str
    labels: dict[str, str]

    @property
    def info(self) -> dict[str, str]:
        """``{"name", "version"}``: registry name/version, else architecture and store version."""
        return model_info(self.tag, self.labels)

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
        answers = self.recommender.recommend_batch(matched, min(k, self.n_items), exclude_seen)
        if os.environ.get(FAULT_ENV) == RANDOM_SCORES_FAULT:
            return [_random_answer(vocab.items, len(a.items), a) for a in answers]
        trending = TRENDING.current
        if trending is not None:
            answers = [
                with_trending(answer, session, k, exclude_seen, trending, vocab)
                for answer, session in zip(answers, matched, strict=True)
            ]
        return answers

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
    ) -> tuple[Recommendation, ServedModel]:
        """The answer and the model that scored it (the model may be swapped meanwhile)."""
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
    ) -> tuple[list[Recommendation], ServedModel]:
        served = self.served
        return await self.run(served.recommend_batch, sessions, k, exclude_seen), served

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
                        future.set_result((answer, served))
        finally:
            self._drainer = None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class _Failure:
    """The deployment record the watcher could not follow, and when it tries again."""

    record: str  # the record as canonical JSON; a changed record is tried at once
    attempts: int
    retry_at: float  # on the watcher's clock
    error: str


class ModelWatcher(Poller):
    """Keeps a server worker on the deployed model: polls the deployment file and, when it names
    another model, loads that checkpoint on this thread and hands it to ``swap``.

    The swap is one reference assignment between batches: queries already being scored finish
    on the old model, the next batch uses the new one, and no request fails or waits for the
    load. A record that cannot be read or loaded leaves the current model serving but makes the
    worker not :attr:`ready` (the service's ``/readyz`` answers 503), and is tried again with
    backoff: after ``interval`` x 2, x 4, ... up to ``max_backoff`` seconds, and at once when the
    record changes. A later success swaps and makes the worker ready again.
    """

    def __init__(
        self,
        path: Path,
        current_tag: str,
        swap: Any,
        interval: float = WATCH_INTERVAL_S,
        max_backoff: float = MAX_RETRY_BACKOFF_S,
        clock: Any = time.monotonic,
        swap_shadow: Any = None,
    ) -> None:
        self.path, self.current_tag, self.swap, self.interval = path, current_tag, swap, interval
        self.max_backoff, self._clock = max_backoff, clock
        self.swap_shadow = swap_shadow  # called with the record's shadow (a ServedModel) or None
        self.shadow_tag = ""
        self._shadow_failed = ""  # the shadow entry that failed to load (tried again when it changes)
        self._failure: _Failure | None = None
        super().__init__("recops-model-watcher")

    @property
    def ready(self) -> bool:
        """False while the deployed record could not be read or its model not loaded."""
        return self._failure is None

    @property
    def failure(self) -> str | None:
        """Why the worker is not ready, with the next retry; None when it is."""
        failure = self._failure
        if failure is None:
            return None
        wait = max(0.0, failure.retry_at - self._clock())
        return f"{failure.error} (attempt {failure.attempts}, next in {wait:.1f}s)"

    def check(self) -> bool:
        """Swap if the record names another model; True when a swap happened."""
        try:
            record = read_deployment(self.path)
            if record is not None and not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            return self._failed(
                f"<unreadable: {exc}>", f"cannot read the deployment record {self.path}: {exc}"
            )
        self._follow_shadow((record or {}).get("shadow"))
        tag = str((record or {}).get("model_tag") or "")
        if not tag or tag == self.current_tag:  # nothing deployed, or the deployed model serves
            self._failure = None
            return False
        key = json.dumps(record, sort_keys=True)
        if self._waiting(key):
            return False
        try:
            recommender = Recommender.from_path(record["checkpoint"])
        except Exception as exc:  # a bad record must not take the server down
            return self._failed(key, f"cannot load deployed model {tag} ({type(exc).__name__}: {exc})")
        self.swap(ServedModel(recommender, tag, dict(record.get("labels", {}))))
        log.info("now serving %s (was %s)", tag, self.current_tag)
        self.current_tag, self._failure = tag, None
        return True

    def _follow_shadow(self, entry: Any) -> None:
        """Load the record's shadow when it changed; drop it when the record has none. A shadow
        that fails to load is logged and left out (it never affects readiness) until its entry
        changes."""
        if self.swap_shadow is None:
            return
        tag = str(entry.get("model_tag") or "") if isinstance(entry, dict) else ""
        if tag == self.shadow_tag or (tag and json.dumps(entry, sort_keys=True) == self._shadow_failed):
            return
        if not tag:
            self.swap_shadow(None)
            log.info("shadow %s removed", self.shadow_tag)
            self.shadow_tag = ""
            return
        try:
            shadow = ServedModel(
                Recommender.from_path(entry["checkpoint"]), tag, dict(entry.get("labels", {}))
            )
        except Exception as exc:
            self._shadow_failed = json.dumps(entry, sort_keys=True)
            log.error("cannot load shadow model %s (%s: %s); no shadow", tag, type(exc).__name__, exc)
            return
        self.swap_shadow(shadow)
        log.info("now scoring %s in shadow", tag)
        self.shadow_tag, self._shadow_failed = tag, ""

    def _waiting(self, record: str) -> bool:
        """True while ``record`` is the one that failed and its retry is not due."""
        failure = self._failure
        return failure is not None and failure.record == record and self._clock() < failure.retry_at

    def _failed(self, record: str, error: str) -> bool:
        """Not ready; the next try of ``record`` after a backoff that doubles up to ``max_backoff``."""
        if self._waiting(record):  # an unreadable record is read every interval: report it when due
            return False
        previous = self._failure
        attempts = previous.attempts + 1 if previous is not None and previous.record == record else 1
        delay = min(self.max_backoff, self.interval * 2**attempts)
        self._failure = _Failure(record, attempts, self._clock() + delay, error)
        log.error("%s; still serving %s, not ready; retrying in %.1fs", error, self.current_tag, delay)
        return False


def load_served_model(tag: str = BENTO_MODEL_NAME) -> ServedModel:
    """Load a stored model. ``session_recommender`` is, inside a bento, an alias for the model
    the bento was built with, and elsewhere the newest stored version."""
    bentoml = load_bentoml()
    try:
        model = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound as exc:
        raise BentoError(
            f"no model {tag!r} in the BentoML model store {bentoml_home()}: "
            "build one with `recops bento build --checkpoint PATH` (or --alias champion)"
        ) from exc
    recommender = Recommender.from_path(model.path_of(CHECKPOINT_FILE))
    return ServedModel(recommender, str(model.tag), dict(model.info.labels))


def _random_answer(items: Sequence[Any], k: int, answer: Recommendation) -> Recommendation:
    """A sabotaged answer (RECOPS_INJECT_FAULT=random-scores): k items drawn at random, scored
    in order; how a model that broke in serving, with data that looks unchanged, answers."""
    picks = np.random.default_rng().choice(len(items), size=k, replace=False)
    return Recommendation(
        [(items[i], float(k - rank)) for rank, i in enumerate(picks)], answer.unknown_items, answer.fallback
    )


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
            if isinstance(item, str) and INT_TEXT.fullmatch(item) and vocab.index_of(int(item)) != PAD:
                item = int(item)
            elif isinstance(item, int) and vocab.index_of(str(item)) != PAD:
                item = str(item)
        out.append(item)
    return out
