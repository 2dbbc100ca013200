"""The served-list log: records become Parquet rows in the store, a full buffer drops and counts
instead of waiting, and nothing half-written is ever read."""

import threading
import time

import pandas as pd
import pytest

from recops.serving.recommender import Recommendation
from recops.serving.served_log import (
    SERVED_PREFIX,
    ServedLog,
    ServedLogError,
    ServedRecord,
    read_served,
)
from recops.store import Store


def record(i: int, role: str = "champion", fallback: str | None = None) -> ServedRecord:
    answer = Recommendation([(i, 0.5), (f"item-{i}", 0.25)], [], fallback)
    return ServedRecord(
        request_id=f"r{i}",
        served_at=1_000_000.0 + i,
        session_id=f"s{i}" if i % 2 else None,
        session=[1, "x"],
        recommendation=answer,
        model={"name": "session-recommender", "version": "3"},
        role=role,
        catalogue_size=100,
        endpoint="recommend",
    )


def test_records_come_back_as_rows_in_order(tmp_path):
    store = Store(tmp_path)
    log = ServedLog(store, flush_records=4, flush_seconds=3600)
    for i in range(10):
        assert log.record(record(i, fallback="popular" if i == 3 else None))
    log.close()
    assert log.written == 10 and log.dropped == 0 and log.files >= 1
    read = read_served(store)
    rows = read.rows
    assert list(rows["request_id"]) == [f"r{i}" for i in range(10)]
    first = rows.iloc[1]
    assert list(first["items"]) == ["1", "item-1"] and list(first["scores"]) == [0.5, 0.25]
    assert list(first["session"]) == ["1", "x"] and first["session_id"] == "s1"
    assert pd.isna(rows.iloc[0]["session_id"])
    model = (first["model_name"], first["model_version"], first["role"])
    assert model == ("session-recommender", "3", "champion")
    assert rows.iloc[3]["fallback"] == "popular" and pd.isna(rows.iloc[2]["fallback"])
    assert read.files == log.files and read.dropped == 0


def test_a_flush_happens_after_flush_seconds_without_close(tmp_path):
    store = Store(tmp_path)
    log = ServedLog(store, flush_records=1000, flush_seconds=0.05)
    log.record(record(1))
    try:
        for _ in range(200):
            if store.list(SERVED_PREFIX, suffixes=(".parquet",)):
                break
            threading.Event().wait(0.02)
        assert len(read_served(store).rows) == 1
    finally:
        log.close()


class BlockedStore(Store):
    """A store whose writes wait until released: a slow or stuck S3."""

    def __init__(self, root):
        super().__init__(root)
        self.release = threading.Event()
        self.writing = threading.Event()

    def write_bytes(self, key, data, **kwargs):
        self.writing.set()
        assert self.release.wait(30), "never released"
        return super().write_bytes(key, data, **kwargs)


def test_a_full_buffer_drops_and_counts_and_never_waits_for_the_store(tmp_path):
    store = BlockedStore(tmp_path)
    log = ServedLog(store, capacity=5, flush_records=2, flush_seconds=3600)
    log.record(record(0))
    log.record(record(1))  # wakes the flush thread, which takes both and blocks in the write
    assert store.writing.wait(10)
    # the writer is stuck: the buffer fills to capacity, then every record is refused at once
    kept = [log.record(record(i)) for i in range(2, 12)]
    assert kept == [True] * 5 + [False] * 5
    assert log.dropped == 5
    store.release.set()
    log.close()
    read = read_served(store)
    assert sorted(read.rows["request_id"]) == sorted(f"r{i}" for i in range(7))
    assert read.dropped == 5  # said in the metadata of the file after the drops


def test_a_failed_write_is_counted_and_serving_goes_on(tmp_path, caplog):
    class DownStore(Store):
        def write_bytes(self, key, data, **kwargs):
            raise OSError("the store is unreachable")

    log = ServedLog(DownStore(tmp_path), flush_records=1000, flush_seconds=3600)
    assert log.record(record(1)) and log.record(record(2))
    assert log.flush() == 0
    assert log.dropped == 2 and log.written == 0
    assert "could not write 2 records" in caplog.text
    log.close()


def test_since_skips_older_files_and_rows(tmp_path):
    store = Store(tmp_path)
    log = ServedLog(store, flush_records=1000, flush_seconds=3600)
    for i in range(4):
        log.record(record(i))
    log.close()
    read = read_served(store, since=1_000_002.0)
    assert list(read.rows["request_id"]) == ["r2", "r3"]
    assert read_served(store, since=time.time() + 3600).files == 0  # named before: never opened


def test_bad_settings_name_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("RECOPS_SERVED_LOG_FLUSH_SECONDS", "soon")
    problem = r"\$RECOPS_SERVED_LOG_FLUSH_SECONDS must be a number, not 'soon'"
    with pytest.raises(ServedLogError, match=problem):
        ServedLog.from_env(Store(tmp_path))
    monkeypatch.setenv("RECOPS_SERVED_LOG", "0")
    assert ServedLog.from_env(Store(tmp_path)) is None
