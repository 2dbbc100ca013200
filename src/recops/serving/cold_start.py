"""The cold-start policy in a server worker (recops.data.trending): trending lists for sessions
with no known item, and a place in other lists for trending items no model knows yet.

:data:`TRENDING` holds the lists a worker answers with; :class:`TrendingWatcher` keeps it on
``<store>/serving/trending.json``; :func:`with_trending` applies the policy to one answer
(:meth:`recops.serving.runtime.ServedModel.recommend_batch` calls it).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from recops.data.interactions import PAD, ItemVocab
from recops.data.trending import Trending
from recops.serving.poller import Poller
from recops.serving.recommender import Recommendation

log = logging.getLogger(__name__)

INT_TEXT = re.compile(r"-?[1-9][0-9]*|0")  # a canonical integer id written as text


def _vocab_id(vocab: ItemVocab, item: str) -> Any:
    """A trending item (text) as the vocabulary writes ids: an int for an int vocabulary when it
    is a canonical int, else the text."""
    if vocab.index_of(item) != PAD:
        return item
    if INT_TEXT.fullmatch(item) and (vocab.index_of(int(item)) != PAD or _int_vocab(vocab)):
        return int(item)
    return item


def _int_vocab(vocab: ItemVocab) -> bool:
    return bool(vocab.items) and isinstance(vocab.items[0], int)


def with_trending(
    answer: Recommendation,
    session: Sequence[Any],
    k: int,
    exclude_seen: bool,
    trending: Trending,
    vocab: ItemVocab,
) -> Recommendation:
    """The cold-start policy (recops.data.trending): a session with no known item gets the
    trending items of its category (else overall), ``fallback="trending"``; any other answer
    gives its last ``new_item_slots`` places to the top trending items the model does not know,
    each scored as the item it replaces (the order of the list stands)."""
    seen = {str(item) for item in session} if exclude_seen else set()
    if answer.fallback is not None:
        listed = [(item, score) for item, score in trending.for_session(list(session)) if item not in seen]
        if not listed:
            return answer
        items = [(_vocab_id(vocab, item), score) for item, score in listed[:k]]
        return Recommendation(items, answer.unknown_items, fallback="trending")
    slots = min(trending.new_item_slots, len(answer.items) - 1)
    if slots <= 0:
        return answer
    new = []
    for item, _ in trending.items:
        if item in seen or vocab.index_of(_vocab_id(vocab, item)) != PAD:
            continue
        new.append(_vocab_id(vocab, item))
        if len(new) == slots:
            break
    if not new:
        return answer
    kept = answer.items[: len(answer.items) - len(new)]
    floor = kept[-1][1]
    return Recommendation([*kept, *((item, floor) for item in new)], answer.unknown_items, answer.fallback)


class TrendingHolder:
    """The trending lists a worker answers cold sessions with (None: all-time popularity)."""

    def __init__(self) -> None:
        self.current: Trending | None = None


TRENDING = TrendingHolder()  # one per worker process, set by TrendingWatcher
TRENDING_POLL_S = 10.0
TRENDING_ENV = "RECOPS_TRENDING"  # "0": never read the trending file


class TrendingWatcher(Poller):
    """Reads ``<store>/serving/trending.json`` into :data:`TRENDING` when its stamp changes
    (every ``interval`` seconds); a file that cannot be read keeps the lists held before."""

    def __init__(
        self, store: Any, holder: TrendingHolder = TRENDING, interval: float = TRENDING_POLL_S
    ) -> None:
        self.store, self.holder, self.interval = store, holder, interval
        self._stamp: str | None = None
        super().__init__("recops-trending")

    def check(self) -> bool:
        from recops.data.trending import TRENDING_KEY

        try:
            stamp = self.store.stamp(TRENDING_KEY)
            if stamp is None or stamp == self._stamp:
                return False
            trending = Trending.from_json(self.store.read_text(TRENDING_KEY))
        except Exception as exc:  # a bad file must not take the server down
            log.error("cannot read the trending lists %s: %s; keeping the ones held", TRENDING_KEY, exc)
            return False
        self.holder.current, self._stamp = trending, stamp
        log.info("trending lists of %d items (window of %g h) loaded", len(trending.items), trending.hours)
        return True
