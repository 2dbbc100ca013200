"""Leave-one-out split per sequence, in time order (SASRec paper, RecBole ``LS: valid_and_test``).

For a sequence ``s`` of length ``n >= 3``: the last event is the test target (input: all
events before it), the second-to-last the validation target (input: all before it), and
``s[:-2]`` is training data, where every position predicts its successor. Sequences
shorter than 3 are used for training only. Nothing of a validation or test target reaches
training input.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    train, valid, test = [], ([], [], []), ([], [], [])
    for seq, sid in zip(interactions.sequences, interactions.sequence_ids, strict=True):
        if len(seq) < MIN_EVAL_LENGTH:
            train.append((seq, sid))
            continue
        train.append((seq[:-2], sid))
        for bucket, cut in ((valid, -2), (test, -1)):
            bucket[0].append(seq[:cut])
            bucket[1].append(seq[cut])
            bucket[2].append(sid)

    def as_set(bucket: tuple[list, list, list]) -> EvalSet:
        return EvalSet(tuple(bucket[0]), np.asarray(bucket[1], dtype=np.int64), tuple(bucket[2]))

    return Split(
        train=tuple(s for s, _ in train if len(s) >= 2),
        train_ids=tuple(sid for s, sid in train if len(s) >= 2),
        valid=as_set(valid),
        test=as_set(test),
        n_items=interactions.n_items,
    )
