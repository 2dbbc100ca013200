"""Events in, typed sequences out: load + validate, vocabulary, fingerprint, split."""

from recops.data.interactions import PAD, Interactions, ItemVocab, build_interactions
from recops.data.schema import DataValidationError, validate_events
from recops.data.sources import DATASET_HELP, load_events, read_raw_events
from recops.data.split import EvalSet, Split, leave_one_out_split

__all__ = [
    "DATASET_HELP",
    "PAD",
    "DataValidationError",
    "EvalSet",
    "Interactions",
    "ItemVocab",
    "Split",
    "build_interactions",
    "leave_one_out_split",
    "load_events",
    "read_raw_events",
    "validate_events",
]
