"""The served-list log: every answer the service sent, written off the response path.

Each answer of ``/recommend`` and ``/recommend_batch`` (and each list a shadow model scored for
the same request, role ``shadow``) becomes one row: request id, time, session id and items,
model name/version/role, the ranked items with their scores, the fallback if any, the session's
items the model did not know. The online
report (:mod:`recops.continuous.online`) joins these rows with the session's next event.

**Off the response path.** A request only appends a :class:`ServedRecord` to a bounded
in-memory buffer under a lock (no formatting, no I/O). A flush thread turns the buffer into
one Parquet file in the store every ``flush_records`` records or ``flush_seconds`` seconds,
whichever comes first, and once more on :meth:`ServedLog.close` (the service's shutdown). When
the buffer holds ``capacity`` records, a new record is dropped and counted, never waited for:
an answer is never delayed or failed by the log. Each file's Parquet metadata carries how many
records were dropped since the file before it (``recops.dropped``), so the report says what it
did not see.

**Files.** ``<store>/served/<UTC time of the flush>-<pid>-<random>.parquet``, written whole
(:mod:`recops.store`: a temporary file and a rename locally, one ``put_object`` on S3). A file
holds only records served before its name's time, so a reader with ``since`` skips older files
by name. Every worker process writes its own files.

**Crash.** A worker killed at any point loses at most its unflushed buffer (at most
``flush_records`` records or ``flush_seconds`` of traffic); no partial file is ever visible. A
write that fails (the store unreachable) drops that batch, counts it in ``recops.dropped`` of
the next file, and logs an error; serving goes on.

``RECOPS_SERVED_LOG=0`` turns the log off; ``RECOPS_SERVED_LOG_FLUSH_RECORDS`` (1000),
``RECOPS_SERVED_LOG_FLUSH_SECONDS`` (10) and ``RECOPS_SERVED_LOG_CAPACITY`` (20000) size it.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from recops.errors import RecopsError

if TYPE_CHECKING:
    import pandas as pd

    from recops.serving.recommender import Recommendation
    from recops.store import Store

log = logging.getLogger(__name__)

SERVED_PREFIX = "served"
SERVED_LOG_ENV = "RECOPS_SERVED_LOG"
FLUSH_RECORDS_ENV = "RECOPS_SERVED_LOG_FLUSH_RECORDS"
FLUSH_SECONDS_ENV = "RECOPS_SERVED_LOG_FLUSH_SECONDS"
CAPACITY_ENV = "RECOPS_SERVED_LOG_CAPACITY"
DROPPED_KEY = b"recops.dropped"
CHAMPION_ROLE, SHADOW_ROLE = "champion", "shadow"
_NAME_TIME = "%Y%m%dT%H%M%S.%fZ"  # sorts as the time does

COLUMNS = (
    "request_id",
    "served_at",
    "session_id",
    "session",
    "items",
    "scores",
    "model_name",
    "model_version",
    "role",
    "fallback",
    "unknown_items",
    "catalogue_size",
    "endpoint",
)


class ServedLogError(RecopsError):
    """The served-list log cannot be read or is set up wrongly."""


@dataclass(frozen=True)
class ServedRecord:
    """One answer as the response path hands it over; turned into a row on the flush thread."""

    request_id: str
    served_at: float  # epoch seconds
    session_id: str | None
    session: Sequence[Any]
    recommendation: Recommendation
    model: dict[str, str]  # {"name", "version"}
    role: str
    catalogue_size: int
    endpoint: str

    @classmethod
    def of(
        cls,
        request_id: str,
        served_at: float,
        session_id: str | None,
        session: Sequence[Any],
        recommendation: Recommendation,
        served: Any,
        role: str,
        endpoint: str,
    ) -> ServedRecord:
        """The record of ``recommendation`` by ``served`` (a :class:`recops.serving.runtime.ServedModel`)."""
        return cls(
            request_id,
            served_at,
            session_id,
            session,
            recommendation,
            served.info,
            role,
            served.n_items,
            endpoint,
        )


def _env_number(name: str, default: float, minimum: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ServedLogError(f"${name} must be a number, not {raw!r}") from None
    if not value >= minimum:
        raise ServedLogError(f"${name} must be at least {minimum:g}, not {raw!r}")
    return value


def served_log_enabled(environ: dict[str, str] | None = None) -> bool:
    return (environ if environ is not None else os.environ).get(SERVED_LOG_ENV, "1") != "0"


class ServedLog:
    """A bounded buffer of :class:`ServedRecord` flushed to Parquet files in ``store``."""

    def __init__(
        self,
        store: Store,
        *,
        capacity: int = 20_000,
        flush_records: int = 1_000,
        flush_seconds: float = 10.0,
    ) -> None:
        if capacity < 1 or flush_records < 1 or flush_seconds <= 0:
            raise ServedLogError("the served log needs capacity >= 1, flush_records >= 1, flush_seconds > 0")
        self.store = store
        self.capacity, self.flush_records, self.flush_seconds = capacity, flush_records, flush_seconds
        self.written = 0  # records in files
        self.dropped = 0  # records never written (buffer full, or a failed write), in total
        self.files = 0
        self._buffer: list[ServedRecord] = []
        self._unreported_drops = 0  # dropped since the last file, for its metadata
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flush at a time (the thread, or close())
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="recops-served-log", daemon=True)
        self._thread.start()

    @classmethod
    def from_env(cls, store: Store | None = None) -> ServedLog | None:
        """The log the service keeps, sized from the environment; None when it is turned off."""
        if not served_log_enabled():
            return None
        from recops.store import open_store

        return cls(
            store if store is not None else open_store(),
            capacity=int(_env_number(CAPACITY_ENV, 20_000, 1)),
            flush_records=int(_env_number(FLUSH_RECORDS_ENV, 1_000, 1)),
            flush_seconds=_env_number(FLUSH_SECONDS_ENV, 10.0, 0.01),
        )

    def record(self, entry: ServedRecord) -> bool:
        """Keep ``entry`` for the next file; False (and counted) when the buffer is full."""
        with self._lock:
            if self._closed or len(self._buffer) >= self.capacity:
                self.dropped += 1
                self._unreported_drops += 1
                return False
            self._buffer.append(entry)
            full = len(self._buffer) >= self.flush_records
        if full:
            self._wake.set()
        return True

    def flush(self) -> int:
        """Write what the buffer holds as one file now; the number of records written."""
        with self._flush_lock:
            with self._lock:
                batch, self._buffer = self._buffer, []
                drops, self._unreported_drops = self._unreported_drops, 0
            if not batch:
                with self._lock:
                    self._unreported_drops += drops  # reported with the next file
                return 0
            key = _new_key()
            try:
                self.store.write_bytes(key, _parquet(batch, drops))
            except Exception as exc:  # the store is down: serving goes on, the batch is lost
                with self._lock:
                    self.dropped += len(batch)
                    self._unreported_drops += drops + len(batch)
                log.error("served log: could not write %d records to %s (%s); dropped", len(batch), key, exc)
                return 0
            self.written += len(batch)
            self.files += 1
            if drops:
                log.warning("served log: %d records dropped (buffer full) before %s", drops, key)
            return len(batch)

    def close(self) -> None:
        """Stop the flush thread and write what is left (the service's shutdown)."""
        with self._lock:
            self._closed = True
        self._wake.set()
        self._thread.join(timeout=30)
        self.flush()

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if self._closed:
                return
            self.flush()


def _new_key() -> str:
    stamp = datetime.now(UTC).strftime(_NAME_TIME)
    return f"{SERVED_PREFIX}/{stamp}-{os.getpid()}-{secrets.token_hex(3)}.parquet"


def _parquet(batch: list[ServedRecord], dropped: int) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def ids(values: Sequence[Any]) -> list[str]:
        return [str(value) for value in values]

    columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    for entry in batch:
        answer = entry.recommendation
        row = {
            "request_id": entry.request_id,
            "served_at": entry.served_at,
            "session_id": entry.session_id,
            "session": ids(entry.session),
            "items": ids([item for item, _ in answer.items]),
            "scores": [float(score) for _, score in answer.items],
            "model_name": entry.model.get("name", ""),
            "model_version": str(entry.model.get("version", "")),
            "role": entry.role,
            "fallback": answer.fallback,
            "unknown_items": ids(answer.unknown_items),
            "catalogue_size": entry.catalogue_size,
            "endpoint": entry.endpoint,
        }
        for name in COLUMNS:
            columns[name].append(row[name])
    table = pa.table(columns, schema=_schema()).replace_schema_metadata({DROPPED_KEY: str(dropped).encode()})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("request_id", pa.string()),
            ("served_at", pa.float64()),
            ("session_id", pa.string()),
            ("session", pa.list_(pa.string())),
            ("items", pa.list_(pa.string())),
            ("scores", pa.list_(pa.float64())),
            ("model_name", pa.string()),
            ("model_version", pa.string()),
            ("role", pa.string()),
            ("fallback", pa.string()),
            ("unknown_items", pa.list_(pa.string())),
            ("catalogue_size", pa.int64()),
            ("endpoint", pa.string()),
        ]
    )


@dataclass(frozen=True)
class ServedLogRead:
    """The rows of the served log since a time, and how many records it says were dropped."""

    rows: pd.DataFrame
    files: int
    dropped: int


def _name_time(key: str) -> float | None:
    name = key.rsplit("/", 1)[-1]
    try:
        return datetime.strptime(name.split("-", 1)[0], _NAME_TIME).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def read_served(store: Store, since: float | None = None, until: float | None = None) -> ServedLogRead:
    """Every row served at or after ``since`` (and before ``until``), oldest first; files are
    skipped by name where they can only hold older rows."""
    import pandas as pd
    import pyarrow.parquet as pq

    frames, files, dropped = [], 0, 0
    for entry in store.list(SERVED_PREFIX, suffixes=(".parquet",)):
        written_at = _name_time(entry.key)
        if written_at is None:
            continue  # not a file of this log
        if since is not None and written_at < since:
            continue
        table = pq.read_table(io.BytesIO(store.read_bytes(entry.key)))
        files += 1
        dropped += int((table.schema.metadata or {}).get(DROPPED_KEY, b"0"))
        frames.append(table.to_pandas())
    if not frames:
        return ServedLogRead(pd.DataFrame({name: [] for name in COLUMNS}), files, dropped)
    rows = pd.concat(frames, ignore_index=True)
    keep = pd.Series(True, index=rows.index)
    if since is not None:
        keep &= rows["served_at"] >= since
    if until is not None:
        keep &= rows["served_at"] < until
    rows = rows[keep].sort_values("served_at", kind="stable").reset_index(drop=True)
    return ServedLogRead(rows, files, dropped)
