"""Incoming sessions that reuse the id of an earlier session: part of the data contract.

A sequence id names one session (or one user). New events on a known id are accepted when
they continue it, every one after its last earlier event (a user who comes back, a session
that goes on into the next file). Events on a known id that are not after its last earlier
event are another session under the same id, or a replay with altered events: merged, they
would corrupt both sequences and put test targets into training data, so
:func:`check_new_sequences` refuses the table (the caller quarantines the file). Exact
duplicates of earlier events are no collision: they are dropped and counted, as everywhere.

:func:`fresh_sequence_ids` and :func:`newest_timestamp` give a producer of new sessions
(``recops simulate-events``) ids that collide with none and a time after every event.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from recops.data.schema import CANONICAL_INT, INT64_MAX, DataValidationError

MAX_IDS_SHOWN = 5


def check_new_sequences(new: pd.DataFrame, earlier: Sequence[pd.DataFrame], source: str) -> None:
    """Raise :class:`DataValidationError` if validated ``new`` events reuse the id of a sequence
    in ``earlier`` (validated events, same id kinds) without coming after its last event."""
    ids = pd.unique(new["sequence_id"])
    before = [frame[frame["sequence_id"].isin(ids)] for frame in earlier]
    before = [frame for frame in before if len(frame)]
    if not before:
        return
    held = pd.concat(before, ignore_index=True)
    candidates = new[new["sequence_id"].isin(held["sequence_id"])]
    both = pd.concat([held, candidates], ignore_index=True)
    repeated = both.duplicated(keep="first").to_numpy()[len(held) :]  # exact duplicates: dropped later
    fresh = candidates[~repeated]
    last = held.groupby("sequence_id")["timestamp"].max()
    early = fresh["timestamp"].to_numpy() <= last.reindex(fresh["sequence_id"]).to_numpy()
    if not early.any():
        return
    clashing = fresh[early]
    per_id = clashing.groupby("sequence_id", sort=False)["timestamp"].agg(["size", "min"])
    shown = [
        f"{sid!r} ({int(row['size'])} event(s) from {row['min']:.0f}, the earlier one ends at "
        f"{last[sid]:.0f})"
        for sid, row in per_id.head(MAX_IDS_SHOWN).iterrows()
    ]
    more = f" and {len(per_id) - MAX_IDS_SHOWN} more" if len(per_id) > MAX_IDS_SHOWN else ""
    raise DataValidationError(
        f"{source}: session id collision: {len(per_id)} sequence(s) reuse the id of an earlier "
        f"session with {len(clashing)} event(s) not after its last event: {', '.join(shown)}{more} "
        "(epoch seconds). An id names one session; merged, two sessions would corrupt both. Give "
        "new sessions new ids, and continue a session only with events after its last one"
    )


def fresh_sequence_ids(known: Sequence[pd.Series], n: int) -> np.ndarray:
    """``n`` consecutive integer ids above every integer id in ``known`` (id columns, integer or
    text: canonical integer text counts as the integer), so none equals a known id."""
    highest = 0
    for ids in known:
        if len(ids) == 0:
            continue
        if pd.api.types.is_integer_dtype(ids):
            highest = max(highest, int(ids.max()))
            continue
        text = pd.Series(pd.unique(ids.astype(str)))
        positive = text[text.str.fullmatch(CANONICAL_INT.pattern) & ~text.str.startswith("-")]
        lengths = positive.str.len()
        for length in sorted(set(lengths), reverse=True):  # the largest is among the longest
            fitting = [v for v in map(int, positive[lengths == length]) if v <= INT64_MAX]
            if fitting:
                highest = max(highest, *fitting)
                break
    if highest + n > INT64_MAX:
        raise DataValidationError(f"no {n} integer session ids left above {highest}")
    return np.arange(highest + 1, highest + 1 + n, dtype=np.int64)


def newest_timestamp(known: Sequence[pd.DataFrame]) -> float:
    """The latest ``timestamp`` of validated events in ``known``."""
    return max(float(frame["timestamp"].max()) for frame in known if len(frame))
