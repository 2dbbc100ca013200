"""A seeded generator of e-commerce browsing sessions with structure a model can learn.

Items have a long-tail (Zipf) popularity and belong to categories. Each item has a short
list of "successors" (items usually viewed next: accessories, the next size, the sequel),
so the next click depends on the current one; the rest of the time shoppers stay in the
category or jump to a popular item. A sequence model should beat popularity by a wide margin.

With ``order = 2`` each item has one successor list per context, and the context is the
category of the item viewed before the current one (a lens after a camera, a strap after a
watch): the last two items together decide the next one. A first-order Markov chain sees only
the mixture of the lists; a sequence model can tell them apart. ``order = 1`` generates exactly
the data it always did.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from recops.config import SyntheticConfig
from recops.data.collisions import fresh_sequence_ids, newest_timestamp

N_SUCCESSORS = 3
N_CONTEXTS = 4  # successor lists per item with order = 2
SUCCESSOR_WEIGHTS = np.array([0.6, 0.3, 0.1])
LATENT_DIM = 16  # item attributes and shopper intents with structure = "intent"
STAY_IN_CATEGORY = 0.6  # of the clicks that follow no successor, the share that stays in the category
MEAN_GAP = 45.0  # seconds between clicks, past the first: 1 + exponential(MEAN_GAP)
ITEMS_PER_CATEGORY = 50  # the default catalogue's (800 items, 16 categories), kept by scale_config
START_TIME = 1_700_000_000.0  # 2023-11-14, seconds since the epoch
EVENT_TYPES = np.array(["view", "view", "view", "view", "view", "view", "cart", "purchase"])


def generate_sessions(config: SyntheticConfig) -> pd.DataFrame:
    """Return events with columns session_id, item_id, timestamp, event_type, category."""
    if config.n_items < N_SUCCESSORS + 1 or config.n_sessions < 1:
        raise ValueError("synthetic data needs at least 4 items and 1 session")
    if config.structure == "intent":
        return _intent_sessions(config)
    if config.structure == "scale":
        from recops.data.synthetic_scale import scale_sessions  # it builds on this module's catalogue

        return scale_sessions(config)
    rng = np.random.default_rng(config.seed)
    n_items = config.n_items
    item_ids = np.arange(1, n_items + 1)
    category, popularity = _catalogue(rng, config)

    by_category = [np.flatnonzero(category == c) for c in range(config.n_categories)]
    category_probs = [popularity[idx] / popularity[idx].sum() if len(idx) else idx for idx in by_category]

    successors = np.empty((n_items, N_SUCCESSORS), dtype=np.int64)
    for i in range(n_items):
        successors[i] = rng.choice(_pool(by_category, category, i, n_items), size=N_SUCCESSORS, replace=False)
    tables = [successors]  # one per context; drawn after the first so order = 1 data is unchanged
    for _ in range(1, N_CONTEXTS if config.order == 2 else 1):
        tables.append(
            np.stack(
                [
                    rng.choice(_pool(by_category, category, i, n_items), size=N_SUCCESSORS, replace=False)
                    for i in range(n_items)
                ]
            )
        )

    lengths, starts = _session_shapes(rng, config)

    rows_session, rows_item, rows_time = [], [], []
    for s in range(config.n_sessions):
        current, previous = rng.choice(n_items, p=popularity), None
        t = starts[s]
        for step in range(lengths[s]):
            if step > 0:
                r = rng.random()
                if r < config.successor_prob:
                    table = tables[0 if previous is None else category[previous] % len(tables)]
                    previous, current = current, table[current, rng.choice(N_SUCCESSORS, p=SUCCESSOR_WEIGHTS)]
                elif r < config.successor_prob + (1 - config.successor_prob) * STAY_IN_CATEGORY:
                    pool = by_category[category[current]]
                    previous, current = current, rng.choice(pool, p=category_probs[category[current]])
                else:
                    previous, current = current, rng.choice(n_items, p=popularity)
                t += rng.exponential(MEAN_GAP) + 1.0
            rows_session.append(s + 1)
            rows_item.append(current)
            rows_time.append(t)

    items = np.asarray(rows_item)
    return pd.DataFrame(
        {
            "session_id": np.asarray(rows_session, dtype=np.int64),
            "item_id": item_ids[items],
            "timestamp": np.round(np.asarray(rows_time), 3),
            "event_type": EVENT_TYPES[rng.integers(0, len(EVENT_TYPES), size=len(items))],
            "category": category[items],
        }
    )


def scale_config(events: int, items: int, seed: int = 7) -> SyntheticConfig:
    """Sessions of about ``events`` events over ``items`` items (structure "scale"), with the
    default's other settings and its 50 items per category (16 categories at least)."""
    base = SyntheticConfig()
    mean_length = 2 + max(base.mean_session_length - 1.0, 1.0)  # as _session_shapes draws them
    return SyntheticConfig(
        structure="scale",
        n_sessions=max(1, round(events / mean_length)),
        n_items=items,
        n_categories=max(base.n_categories, items // ITEMS_PER_CATEGORY),
        seed=seed,
    )


def _intent_sessions(config: SyntheticConfig) -> pd.DataFrame:
    """Sessions driven by a hidden intent and by complements, both low-rank.

    Items have latent attribute vectors (their category's centre plus noise). Each session
    draws an intent (a category's centre, blurred) that changes with ``intent_change`` per step.
    The next item is drawn over the whole catalogue with logits
    ``log popularity + complement_strength * (R v_current) . v + intent_strength * intent . v``,
    where R maps an item to what goes with it (a camera to its lenses). The last item alone
    leaves the intent open; the session so far narrows it down.
    """
    rng = np.random.default_rng(config.seed)
    n_items, n_categories = config.n_items, config.n_categories
    category, popularity = _catalogue(rng, config)

    centres = _unit(rng.standard_normal((n_categories, LATENT_DIM)))
    vectors = _unit(
        centres[category] + 0.6 * rng.standard_normal((n_items, LATENT_DIM)) / np.sqrt(LATENT_DIM)
    )
    complement, _ = np.linalg.qr(rng.standard_normal((LATENT_DIM, LATENT_DIM)))
    targets = vectors @ complement.T  # where each item points to next
    log_pop = np.log(popularity)

    lengths, starts = _session_shapes(rng, config)
    n = config.n_sessions
    intents = _unit(
        centres[rng.integers(0, n_categories, size=n)] + 0.3 * rng.standard_normal((n, LATENT_DIM))
    )
    current = rng.choice(n_items, p=popularity, size=n)
    items = np.empty((n, int(lengths.max())), dtype=np.int64)
    times = np.empty(items.shape)
    items[:, 0], times[:, 0] = current, starts
    for step in range(1, items.shape[1]):
        active = np.flatnonzero(lengths > step)
        change = active[rng.random(len(active)) < config.intent_change]
        intents[change] = _unit(
            centres[rng.integers(0, n_categories, size=len(change))]
            + 0.3 * rng.standard_normal((len(change), LATENT_DIM))
        )
        for chunk in np.array_split(active, max(1, len(active) // 2048)):
            logits = (
                config.complement_strength * targets[items[chunk, step - 1]]
                + config.intent_strength * intents[chunk]
            ) @ vectors.T + log_pop
            probs = np.exp(logits - logits.max(axis=1, keepdims=True))
            cumulative = np.cumsum(probs, axis=1)
            draws = rng.random(len(chunk)) * cumulative[:, -1]
            items[chunk, step] = np.minimum((cumulative < draws[:, None]).sum(axis=1), n_items - 1)
        times[active, step] = times[active, step - 1] + rng.exponential(MEAN_GAP, size=len(active)) + 1.0

    mask = np.arange(items.shape[1])[None, :] < lengths[:, None]
    flat = items[mask]
    return pd.DataFrame(
        {
            "session_id": np.repeat(np.arange(1, n + 1, dtype=np.int64), lengths),
            "item_id": flat + 1,
            "timestamp": np.round(times[mask], 3),
            "event_type": EVENT_TYPES[rng.integers(0, len(EVENT_TYPES), size=len(flat))],
            "category": category[flat],
        }
    )


def _catalogue(rng: np.random.Generator, config: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """Each item's category, and its popularity: Zipf over a random order of the items."""
    n_items = config.n_items
    category = rng.integers(0, config.n_categories, size=n_items)
    popularity = 1.0 / np.arange(1, n_items + 1) ** config.zipf_exponent
    popularity = popularity[rng.permutation(n_items)]
    return category, popularity / popularity.sum()


def _session_shapes(rng: np.random.Generator, config: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """Each session's length (2 + geometric, mean ``mean_session_length``) and start time
    (sorted, spread over 30 days)."""
    lengths = 2 + rng.geometric(1.0 / max(config.mean_session_length - 1.0, 1.0), size=config.n_sessions)
    starts = np.sort(rng.uniform(0, 30 * 86_400, size=config.n_sessions)) + START_TIME
    return lengths, starts


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _pool(by_category: list[np.ndarray], category: np.ndarray, item: int, n_items: int) -> np.ndarray:
    """Where the successors of ``item`` come from: its category, else the whole catalogue."""
    pool = by_category[category[item]]
    pool = pool[pool != item]
    return pool if len(pool) >= N_SUCCESSORS else np.delete(np.arange(n_items), item)


SESSION_SPACING = 600.0  # seconds between new sessions' starts, when there is room before now
FIRST_GAP = 60.0  # seconds from the newest known event to the first new one


def new_events_like(
    events: pd.DataFrame,
    n_sessions: int,
    *,
    shift_popularity: bool = False,
    seed: int = 0,
    known: Sequence[pd.DataFrame] = (),
    now: float | None = None,
) -> pd.DataFrame:
    """``n_sessions`` new sessions resampled from validated ``events``, timed after the last one.

    Each new session copies a random existing one (its items and gaps), under a new id. With
    ``shift_popularity`` items are swapped by popularity rank (the most popular becomes the
    least, and so on): the same behaviour on a reshuffled catalogue, the kind of change a
    retrained model should pick up. Columns: session_id, item_id, timestamp.

    Ids and times stay clear of ``events`` and of every table in ``known`` (validated events a
    cycle would see with them: earlier incoming files): the ids are above every integer id
    there, the first event a minute after the newest. Sessions start ten minutes apart, closer
    (down to all at once) where that would end after ``now`` (epoch seconds; None: no limit).
    """
    if n_sessions < 1:
        raise ValueError("n_sessions must be at least 1")
    rng = np.random.default_rng(seed)
    by_sequence = events.groupby("sequence_id", sort=False)
    ids = list(by_sequence.groups)
    everything = [events, *known]
    new_ids = fresh_sequence_ids([frame["sequence_id"] for frame in everything], n_sessions)
    start = newest_timestamp(everything) + FIRST_GAP
    mapping = None
    if shift_popularity:
        ranked = events["item_id"].value_counts(sort=True).index.tolist()
        mapping = dict(zip(ranked, ranked[::-1], strict=True))
    picked = [by_sequence.get_group(ids[pick]) for pick in rng.integers(0, len(ids), size=n_sessions)]
    offsets = [s["timestamp"].to_numpy(dtype=np.float64) - float(s["timestamp"].iloc[0]) for s in picked]
    spacing = SESSION_SPACING
    if now is not None and n_sessions > 1:
        room = now - start - max(float(o.max()) for o in offsets)
        spacing = min(spacing, max(0.0, room / (n_sessions - 1)))
    frames = [
        pd.DataFrame(
            {
                "session_id": new_ids[i],
                "item_id": [mapping[item] for item in session["item_id"]]
                if mapping
                else session["item_id"].tolist(),
                "timestamp": start + spacing * i + offsets[i],
            }
        )
        for i, session in enumerate(picked)
    ]
    return pd.concat(frames, ignore_index=True)
