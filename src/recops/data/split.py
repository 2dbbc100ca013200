"""Leave-one-out split per sequence, in time order (SASRec paper, RecBole ``LS: valid_and_test``).

For a sequence ``s`` of length ``n >= 3``: the last event is the test target (input: all
events before it), the second-to-last the validation target (input: all before it), and
``s[:-2]`` is training data, where every position predicts its successor. Sequences
shorter than 3 are used for training only. Nothing of a validation or test target reaches
training input.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import compress
from typing import Any

import numpy as np

from recops.data.interactions import Interactions

MIN_EVAL_LENGTH = 3


@dataclass(frozen=True)
class EvalSet:
    """Inputs (histories) and the held-out next item of each evaluated sequence."""

    inputs: tuple[np.ndarray, ...]
    targets: np.ndarray
    sequence_ids: tuple[Any, ...]

    def __len__(self) -> int:
        return len(self.targets)


@dataclass(frozen=True)
class Split:
    train: tuple[np.ndarray, ...]  # training sequences with at least two events
    train_ids: tuple[Any, ...]
    valid: EvalSet
    test: EvalSet
    n_items: int


def leave_one_out_split(interactions: Interactions) -> Split:
    sequences, ids = interactions.sequences, interactions.sequence_ids
    lengths = np.fromiter(map(len, sequences), np.int64, len(sequences))
    evaluated = (lengths >= MIN_EVAL_LENGTH).tolist()
    # training keeps a short sequence whole and a long one without its two targets
    trained = (np.where(lengths >= MIN_EVAL_LENGTH, lengths - 2, lengths) >= 2).tolist()
    train = (s[:-2] if e else s for s, e in compress(zip(sequences, evaluated, strict=True), trained))
    long = list(compress(sequences, evaluated))
    long_ids = tuple(compress(ids, evaluated))

    def held_out(cut: int) -> EvalSet:
        targets = np.fromiter((s[cut] for s in long), np.int64, len(long))
        return EvalSet(tuple(s[:cut] for s in long), targets, long_ids)

    return Split(
        train=tuple(train),
        train_ids=tuple(compress(ids, trained)),
        valid=held_out(-2),
        test=held_out(-1),
        n_items=interactions.n_items,
    )
