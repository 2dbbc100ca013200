"""The columnar data path gives what the row-by-row path gave: readers, ids, vocabulary,
sequences, split. The references below are the earlier algorithms, kept small and plain."""

import gzip
import hashlib
import io
import re

import numpy as np
import pandas as pd
import pytest
from pandas._libs.parsers import STR_NA_VALUES

from recops.config import SyntheticConfig
from recops.data import (
    DataValidationError,
    ItemVocab,
    build_interactions,
    columnar,
    leave_one_out_split,
    validate_events,
)
from recops.data.schema import ID_COLUMNS, _duplicated, _normalise_ids
from recops.data.sources import read_table
from recops.data.synthetic import generate_sessions

unit = pytest.mark.unit


def plain(value):
    return value.item() if isinstance(value, np.generic) else value


def reference_vocab(items) -> tuple:
    return tuple(plain(v) for v in sorted(pd.unique(pd.Series(list(items)))))


def reference_interactions(events: pd.DataFrame, items: tuple | None = None) -> dict:
    """One dict look-up per event; sequences in order of first appearance, each stably sorted by time."""
    items = items or reference_vocab(events["item_id"])
    index = {item: i + 1 for i, item in enumerate(items)}
    rows: dict = {}
    columns = (events[c].tolist() for c in ("sequence_id", "item_id", "timestamp"))
    for sid, item, ts in zip(*columns, strict=True):
        rows.setdefault(sid, []).append((ts, index.get(item, 0)))
    sequences, ids = [], []
    for sid, events_of in rows.items():
        known = [i for _, i in sorted(events_of, key=lambda row: row[0]) if i]
        if known:
            sequences.append(known)
            ids.append(sid)
    n_events = sum(map(len, sequences))
    return {
        "sequences": sequences,
        "sequence_ids": tuple(ids),
        "items": items,
        "fingerprint": reference_fingerprint(events),
        "n_events": n_events,
        "unknown_events": len(events) - n_events,
    }


def reference_fingerprint(events: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(events[["sequence_id", "item_id", "timestamp"]], index=False)
    return "sha256:" + hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()


def reference_split(sequences: list[list[int]], ids: tuple) -> dict:
    train, valid, test = [], ([], [], []), ([], [], [])
    for seq, sid in zip(sequences, ids, strict=True):
        if len(seq) < 3:
            train.append((seq, sid))
            continue
        train.append((seq[:-2], sid))
        for bucket, cut in ((valid, -2), (test, -1)):
            bucket[0].append(seq[:cut])
            bucket[1].append(seq[cut])
            bucket[2].append(sid)
    return {
        "train": [s for s, _ in train if len(s) >= 2],
        "train_ids": tuple(sid for s, sid in train if len(s) >= 2),
        "valid": (valid[0], valid[1], tuple(valid[2])),
        "test": (test[0], test[1], tuple(test[2])),
    }


def as_lists(arrays) -> list[list[int]]:
    assert all(a.dtype == np.int64 for a in arrays)
    return [a.tolist() for a in arrays]


def assert_same_ids(got: tuple, want: tuple) -> None:
    assert got == want
    assert [type(v) for v in got] == [type(v) for v in want]  # Python ints or str, never numpy


def assert_same_path(events: pd.DataFrame, vocab: ItemVocab | None = None) -> None:
    """build_interactions and leave_one_out_split against the references, field by field."""
    want = reference_interactions(events, vocab.items if vocab else None)
    got = build_interactions(events, vocab)
    assert_same_ids(got.vocab.items, want["items"])
    assert as_lists(got.sequences) == want["sequences"]
    assert_same_ids(got.sequence_ids, want["sequence_ids"])
    assert (got.fingerprint, got.n_events, got.unknown_events) == (
        want["fingerprint"],
        want["n_events"],
        want["unknown_events"],
    )
    split, want_split = leave_one_out_split(got), reference_split(want["sequences"], want["sequence_ids"])
    assert as_lists(split.train) == want_split["train"]
    assert_same_ids(split.train_ids, want_split["train_ids"])
    for held_out, (inputs, targets, ids) in (
        (split.valid, want_split["valid"]),
        (split.test, want_split["test"]),
    ):
        assert as_lists(held_out.inputs) == inputs
        assert held_out.targets.dtype == np.int64 and held_out.targets.tolist() == targets
        assert_same_ids(held_out.sequence_ids, ids)
    assert split.n_items == len(want["items"])


def synthetic_text_ids() -> pd.DataFrame:
    """Text ids ("item-10" sorts before "item-9"), sessions interleaved, many equal timestamps."""
    events = generate_sessions(SyntheticConfig())
    shuffled = events.sample(frac=1.0, random_state=3).reset_index(drop=True)
    return shuffled.assign(
        session_id="s" + shuffled["session_id"].astype(str),
        item_id="item-" + shuffled["item_id"].astype(str),
        timestamp=shuffled["timestamp"] // 600 * 600,
    )


@unit
@pytest.mark.parametrize("make", [lambda: generate_sessions(SyntheticConfig()), synthetic_text_ids])
def test_synthetic_events_give_the_reference_interactions_and_split(make):
    events = validate_events(make())
    assert_same_path(events)
    assert_same_path(events, ItemVocab(reference_vocab(events["item_id"])[::2]))  # half unknown


@pytest.mark.integration
@pytest.mark.slow
def test_ml100k_gives_the_reference_interactions_and_split(ml100k):
    assert len(ml100k) == 100_000
    assert_same_path(ml100k)
    assert_same_path(ml100k, ItemVocab(tuple(range(1, 1683, 3))))


@unit
@pytest.mark.parametrize(
    "items",
    [
        [5, 3, 9, 3, -2, 2**62],
        np.array([7, 1, 7, 4], dtype=np.int64),
        ["b", "a", "item-10", "item-9", "Z", "é", "a"],
        pd.Series(["x", "y", "x"], dtype="str"),
        (i % 4 for i in range(10)),
        [1.0, 3.0, 2.0],
    ],
)
def test_vocab_is_sorted_as_before(items):
    values = list(items) if not isinstance(items, np.ndarray | pd.Series) else items
    assert_same_ids(ItemVocab.from_items(values).items, reference_vocab(values))


@unit
def test_vocab_of_ints_and_text_together_is_still_refused():
    with pytest.raises(TypeError):
        ItemVocab.from_items([1, "a"])


@unit
@pytest.mark.parametrize(
    ("vocab", "values"),
    [
        ((1, 2, 3), [3, 1, 99, 2]),
        ((1, 2, 3), pd.Series([3, 7, 1], dtype=np.int64)),
        (("a", "b"), pd.Series(["b", "zz", "a"], dtype="str")),
        ((1, 2, 3), ["1", "3"]),  # text never matches an integer id
        (("1", "2"), np.array([1, 2])),
        ((1, 2, 3), [1, "1", 1.0, True, np.int64(2), None]),  # mixed: value by value
        ((), [1, 2]),
        ((1, 2), []),
        ((1, 1, 2), [1, 2]),  # repeated items: the last wins, as in the dict
    ],
)
def test_indices_of_is_index_of_for_each_value(vocab, values):
    vocab = ItemVocab(vocab)
    got = vocab.indices_of(values)
    assert got.dtype == np.int64
    assert got.tolist() == [vocab.index_of(v) for v in values]


def reference_ids(values: list[str]) -> list:
    canonical = all(re.fullmatch(r"0|-?[1-9][0-9]*", v) and -(2**63) <= int(v) < 2**63 for v in values)
    return [int(v) for v in values] if canonical else values


@unit
@pytest.mark.parametrize(
    "values",
    [
        ["1", "20", "-3", "0"],
        ["9223372036854775807", "-9223372036854775808"],
        ["9223372036854775808"],
        ["-9223372036854775809"],
        ["1", "007"],
        ["-0"],
        ["+5"],
        ["0x10"],
        [" 5"],
        ["1e3"],
        ["٣"],
        ["12", "x"],
    ],
)
def test_text_ids_are_integers_only_when_canonical(values):
    text = pd.Series(values, dtype="str")
    assert isinstance(text.array, pd.arrays.ArrowStringArray)  # the Arrow path is the one tested
    assert _normalise_ids(text).tolist() == reference_ids(values)


@unit
@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"s": [1, 1, 2, 1], "t": [0.0, -0.0, 0.0, 0.0], "e": ["a", "a", "a", "b"]}),
        pd.DataFrame(
            {"s": ["x", "x", "y"], "t": [np.nan, np.nan, 1.0], "e": pd.Series(["a", None, None], dtype="str")}
        ),
        pd.DataFrame({"s": np.arange(1000) % 7, "t": np.arange(1000) % 5 * 1.5}),
        pd.DataFrame({"s": [1, 2], "o": pd.Series([1, 1.0], dtype=object)}),  # object: pandas decides
    ],
)
def test_duplicates_are_pandas_duplicates(frame):
    assert _duplicated(frame).tolist() == frame.duplicated(keep="first").tolist()


HEADER = "session_id,item_id,timestamp,event_type,category\n"
CSV_CASES = {
    "ids as written": HEADER + "1,007,1700000000,view,1\n2,7,1700000001.5,cart,2\n",
    "null markers": HEADER + '1,,1,NA,<NA>\nnull,None,2,"null",\nNaN,"",,n/a,#N/A\n',
    "dates stay text": HEADER
    + "1,a,2024-01-01 10:00:00,view,2024-01-01\n2,b,2024-01-02T11:00:00Z,cart,10:00\n",
    "bools and nulls": HEADER + "1,True,1,true,false\n2,false,2,False,\n",
    "all null": HEADER + "1,1,1,,\n2,2,2,,\n",
    "quoted": HEADER + '"1","a,b",1," view",x\n" 2",b ,2,cart ,y\n',
    "unused columns": "url,user_id,session_id,item_id,timestamp\nu,9,1,1,1\n",
    "repeated names": "session_id,item_id,timestamp,item_id\n1,1,1,2\n",
    "blank name": ",item_id,timestamp,user_id\n1,1,1,3\n",
    "missing column": "session_id,timestamp,url\n1,1,u\n",
    "byte order mark": "\ufeff" + HEADER + "1,1,1,v,c\r\n",
}


def pandas_csv(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), dtype=dict.fromkeys(ID_COLUMNS, str))


def event_part(frame: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    return frame[list(like.columns)]


@unit
def test_csv_nulls_are_pandas_nulls():
    assert set(columnar.NULLS) == set(STR_NA_VALUES)


@unit
@pytest.mark.parametrize("case", CSV_CASES)
def test_csv_reads_as_pandas_reads_it(case):
    data = CSV_CASES[case].encode()
    got = read_table("csv", data, "csv:x")
    pd.testing.assert_frame_equal(got, event_part(pandas_csv(data), got))
    if case == "unused columns":
        assert list(got.columns) == ["session_id", "item_id", "timestamp"]


@unit
@pytest.mark.parametrize(
    ("category", "later"),
    [
        ("1", "5,1,1700000099.5,view,1"),
        ("1", "5,1,,view,"),
        ("1", "5,1,2024-01-01,view,1"),
        ("1", "5,1,1,view,x"),
        ("1", "5,1,1,,1.5"),
        ("", "5,1,1,view,2024-01-01"),  # null in the first block, dates later
    ],
)
def test_csv_types_follow_the_whole_file_not_its_first_block(monkeypatch, category, later):
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 64)  # many blocks; types change in a late one
    kind = ("cart", "view", "view")
    rows = [f"{i},{i % 7:03d},{1_700_000_000 + i},{kind[i % 3]},{category}" for i in range(40)]
    data = (HEADER + "\n".join([*rows, later, *rows]) + "\n").encode()
    pd.testing.assert_frame_equal(read_table("csv", data, "csv:x"), pandas_csv(data))


@unit
def test_csv_and_parquet_files_read_as_pandas_reads_them(tmp_path):
    data = CSV_CASES["ids as written"].encode()
    (tmp_path / "e.csv.gz").write_bytes(gzip.compress(data))
    pd.testing.assert_frame_equal(read_table("csv", tmp_path / "e.csv.gz", "csv:x"), pandas_csv(data))
    frame = pd.DataFrame(
        {"session_id": [1, 2], "url": ["u", "v"], "item_id": ["a", "b"], "timestamp": [1.0, 2.0]},
        index=[5, 6],  # kept in the file's pandas metadata
    )
    frame.to_parquet(tmp_path / "e.parquet")
    want = pd.read_parquet(tmp_path / "e.parquet").drop(columns="url")
    for source in (tmp_path / "e.parquet", (tmp_path / "e.parquet").read_bytes()):
        pd.testing.assert_frame_equal(read_table("parquet", source, "parquet:x"), want)


@unit
@pytest.mark.parametrize("body", ["1,1,1,5\n", "1,1\n"])
def test_csv_rows_with_the_wrong_number_of_fields_are_refused(body):
    with pytest.raises(DataValidationError, match=r"^csv:x: cannot read as csv: .*Expected 3 columns"):
        read_table("csv", ("session_id,item_id,timestamp\n" + body).encode(), "csv:x")


@unit
def test_a_csv_file_validates_as_the_pandas_frame_does():
    data = synthetic_text_ids().head(3000).to_csv(index=False).encode()
    got, want = validate_events(read_table("csv", data, "csv:x")), validate_events(pandas_csv(data))
    pd.testing.assert_frame_equal(got, want)
    assert got.attrs == want.attrs and got.attrs["duplicates_dropped"] > 0  # times rounded: repeats
