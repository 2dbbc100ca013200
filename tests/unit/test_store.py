"""recops.store: one table of cases run on a local folder and on S3 (the AWS emulator, moto's
server on 127.0.0.1, through s3fs as production uses it): write, read, list, stamp, move,
delete, the two write conditions, and listings that see another client's writes at once."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from recops.config import load_config
from recops.store import STORE_ENV, Store, StoreConflictError, StoreError, open_store, store_uri
from tests.emulator import emulator

_prefixes = itertools.count()


@pytest.fixture(scope="module")
def aws():
    with emulator() as emu:
        emu.bucket("recops-store")
        yield emu


class Other:
    """Another client of the same place: plain files, or boto3 on the emulator."""

    def __init__(self, store: Store, emu=None) -> None:
        self.store, self.emu = store, emu

    def put(self, key: str, data: bytes) -> None:
        if self.emu is None:
            path = Path(self.store.url(key))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        else:
            bucket, _, prefix = self.store.uri.removeprefix("s3://").partition("/")
            self.emu.client("s3").put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=data)

    def remove(self, key: str) -> None:
        if self.emu is None:
            Path(self.store.url(key)).unlink()
        else:
            bucket, _, prefix = self.store.uri.removeprefix("s3://").partition("/")
            self.emu.client("s3").delete_object(Bucket=bucket, Key=f"{prefix}/{key}")


@pytest.fixture(
    params=[
        pytest.param("local", marks=pytest.mark.unit),
        pytest.param("s3", marks=pytest.mark.integration),
    ]
)
def where(request, tmp_path, monkeypatch) -> tuple[Store, Other]:
    if request.param == "local":
        store = Store(tmp_path / "store")
        return store, Other(store)
    emu = request.getfixturevalue("aws")
    for name, value in emu.env().items():
        monkeypatch.setenv(name, value)
    store = Store(f"s3://recops-store/test-{next(_prefixes)}")
    return store, Other(store, emu)


def test_write_then_read(where):
    store, _ = where
    assert not store.exists("a/b.txt")
    store.write_bytes("a/b.txt", b"one")
    assert store.exists("a/b.txt") and store.read_bytes("a/b.txt") == b"one"
    store.write_text("a/b.txt", "two")  # replaced whole
    assert store.read_text("a/b.txt") == "two"
    assert not store.exists("a")  # a prefix is not a file
    with pytest.raises(FileNotFoundError):
        store.read_bytes("a/missing.txt")


def test_urls_and_children(where):
    store, _ = where
    url = store.url("incoming/0001.csv")
    if store.local:
        assert Path(url).is_absolute() and url == str(Path(store.uri) / "incoming" / "0001.csv")
    else:
        assert url == f"{store.uri}/incoming/0001.csv" and url.startswith("s3://recops-store/")
    incoming = store.child("incoming")
    assert incoming.url("0001.csv") == url
    incoming.write_bytes("0001.csv", b"x")
    assert store.read_bytes("incoming/0001.csv") == b"x"
    assert Store.of(url)[0].uri == incoming.uri and Store.of(url)[1] == "0001.csv"
    for bad in ("/abs", "../up", "a/../b", "a//b"):
        with pytest.raises(ValueError, match="relative paths"):
            store.url(bad)


def test_list_is_one_level_filtered_and_sorted(where):
    store, _ = where
    assert store.list("incoming") == []  # nothing there yet: empty, not an error
    for key, data in [("incoming/b.csv", b"12"), ("incoming/a.parquet", b"1"), ("incoming/c.txt", b"")]:
        store.write_bytes(key, data)
    store.write_bytes("incoming/quarantine/x.csv", b"1")
    listed = store.list("incoming", suffixes=(".csv", ".parquet"))
    assert [(e.key, e.size) for e in listed] == [("incoming/a.parquet", 1), ("incoming/b.csv", 2)]
    assert all(e.modified_ns > 1_700_000_000 * 10**9 for e in listed)
    assert [e.key for e in store.child("incoming").list()] == ["a.parquet", "b.csv", "c.txt"]


def test_stamps_follow_the_content(where):
    store, _ = where
    assert store.stamp("m.json") is None
    first = store.write_text("m.json", "one")
    assert store.stamp("m.json") == first
    assert store.read_stamped("m.json") == (b"one", first)
    second = store.write_text("m.json", "two")
    assert second != first and store.stamp("m.json") == second


def test_if_absent_writes_once(where):
    store, _ = where
    store.write_bytes("snapshots/x.parquet", b"first", if_absent=True)
    with pytest.raises(StoreConflictError, match=r"snapshots/x\.parquet: exists already") as err:
        store.write_bytes("snapshots/x.parquet", b"second", if_absent=True)
    assert err.value.url == store.url("snapshots/x.parquet")
    assert store.read_bytes("snapshots/x.parquet") == b"first"
    if store.local:  # the temporary file went too
        assert [p.name for p in Path(store.url("snapshots")).iterdir()] == ["x.parquet"]


def test_if_match_is_compare_and_set(where):
    store, other = where
    with pytest.raises(StoreConflictError, match=r"manifest\.json: changed since it was read \(it is gone\)"):
        store.write_text("manifest.json", "v1", if_match="nothing-there")
    stamp = store.write_text("manifest.json", "v1", if_absent=True)
    _, read_stamp = store.read_stamped("manifest.json")
    other.put("manifest.json", b"v1 by another cycle")
    with pytest.raises(StoreConflictError, match=r"manifest\.json: changed since it was read"):
        store.write_text("manifest.json", "v2", if_match=read_stamp)
    assert store.read_text("manifest.json") == "v1 by another cycle"
    current = store.stamp("manifest.json")
    assert current != stamp
    store.write_text("manifest.json", "v2", if_match=current)
    assert store.read_text("manifest.json") == "v2"
    with pytest.raises(ValueError, match="exclude each other"):
        store.write_text("manifest.json", "v3", if_absent=True, if_match=current)


def test_move_and_delete(where):
    store, _ = where
    store.write_bytes("incoming/0001.csv", b"bad")
    store.move("incoming/0001.csv", "incoming/quarantine/0001.csv")
    assert not store.exists("incoming/0001.csv")
    assert store.read_bytes("incoming/quarantine/0001.csv") == b"bad"
    store.delete("incoming/quarantine/0001.csv")
    assert not store.exists("incoming/quarantine/0001.csv")
    store.delete("incoming/quarantine/0001.csv")  # absent: nothing happens


def test_listings_see_another_clients_writes_at_once(where):
    store, other = where
    assert store.list("incoming") == []
    other.put("incoming/0001.csv", b"a,b\n")
    assert [e.key for e in store.list("incoming")] == ["incoming/0001.csv"]
    other.put("incoming/0002.csv", b"a,b\n")
    assert store.exists("incoming/0002.csv")
    assert [e.key for e in store.list("incoming")] == ["incoming/0001.csv", "incoming/0002.csv"]
    other.remove("incoming/0001.csv")
    assert [e.key for e in store.list("incoming")] == ["incoming/0002.csv"]
    assert not store.exists("incoming/0001.csv") and store.stamp("incoming/0001.csv") is None


@pytest.mark.unit
def test_the_store_is_recops_store_then_the_config_then_recops_home(monkeypatch, recops_home):
    monkeypatch.delenv(STORE_ENV, raising=False)
    assert store_uri() == str(recops_home) and open_store().uri == str(recops_home)
    config = load_config(overrides={"store.uri": "s3://bucket/prefix"})
    assert store_uri(config) == "s3://bucket/prefix"
    monkeypatch.setenv(STORE_ENV, "/srv/recops")
    assert store_uri(config) == "/srv/recops" and store_uri() == "/srv/recops"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("uri", "message"),
    [("gs://bucket/x", "the scheme gs:// is not supported"), ("s3://", "names no bucket")],
)
def test_a_store_uri_of_another_kind_is_refused(uri, message):
    with pytest.raises(StoreError, match=message):
        Store(uri)


def test_alerts_failures_and_the_last_cycle_are_records_in_the_store(where, monkeypatch):
    from types import SimpleNamespace

    from recops.continuous.alerts import (
        last_failure,
        read_alerts,
        read_failures,
        read_last_cycle,
        record_failure,
        send_alert,
        write_last_cycle,
    )

    store, _ = where
    monkeypatch.setenv(STORE_ENV, store.uri)
    monkeypatch.delenv("RECOPS_WEBHOOK_URL", raising=False)
    assert read_alerts() == [] and last_failure() is None and read_last_cycle() is None
    send_alert("quarantined", "0001.csv: bad", moved_to="quarantine/0001.csv")
    for n in (1, 2):
        state = SimpleNamespace(name="Failed", message=f"boom {n}", is_crashed=lambda: False)
        record_failure(SimpleNamespace(name="retrain"), SimpleNamespace(id=f"run-{n}", name="r"), state)
    assert [a["kind"] for a in read_alerts()] == ["quarantined", "cycle_failed", "cycle_failed"]
    assert [f["message"] for f in read_failures()] == ["boom 1", "boom 2"]
    assert last_failure()["flow_run_id"] == "run-2"
    assert len(store.list("monitoring/alerts")) == 3 and len(store.list("monitoring/failures")) == 2
    write_last_cycle({"outcome": "skipped"})
    write_last_cycle({"outcome": "retrained, promoted"})
    assert read_last_cycle() == {"outcome": "retrained, promoted"}
