"""The continuous-training state on S3: ``RECOPS_STORE=s3://bucket/prefix`` against the AWS
emulator (moto's server on 127.0.0.1, reached through s3fs and boto3 as in production), with the
assertions of the local tests (tests/unit/test_inputs.py): events land in a snapshot object, the
manifest records them, a bad file is quarantined with its reason, a second gather finds nothing
new, snapshots read back as ``parquet:s3://...`` (one object or a glob), and a crash between the
writes (snapshot and manifest; the copy and the delete of a move) loses and doubles nothing."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from recops.config import load_config
from recops.continuous import inputs as inputs_module
from recops.continuous.inputs import commit_manifest, gather_inputs
from recops.continuous.manifest import InputsError, prune_snapshots, read_manifest
from recops.data import DataValidationError, load_events, read_raw_events
from recops.store import STORE_ENV, open_store
from recops.store.backends import S3Backend
from tests.emulator import emulator

pytestmark = [pytest.mark.integration]

T = 1_720_000_000  # 2024-07-03, after the synthetic base (2023-11)
BUCKET, PREFIX = "recops-state", "team/prod"
ROOT = f"s3://{BUCKET}/{PREFIX}"


@pytest.fixture(scope="module")
def aws():
    with emulator() as emu:
        emu.bucket(BUCKET)
        yield emu


@pytest.fixture
def s3(aws, monkeypatch):
    """RECOPS_STORE on the emulator, emptied for each test; boto3 to look behind the store."""
    for name, value in aws.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(STORE_ENV, ROOT)
    client = aws.client("s3")
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    return client


@pytest.fixture
def config():
    return load_config(overrides={"data.synthetic.n_sessions": 30, "data.synthetic.n_items": 20})


def put(client, key: str, rows: list[tuple]) -> str:
    lines = ["session_id,item_id,timestamp", *(",".join(str(v) for v in row) for row in rows)]
    client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{key}", Body=("\n".join(lines) + "\n").encode())
    return f"{ROOT}/{key}"


def keys(client, under: str) -> list[str]:
    found = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/{under}").get("Contents", [])
    return sorted(obj["Key"].removeprefix(f"{PREFIX}/") for obj in found)


def good(session: int, n: int = 3) -> list[tuple]:
    return [(session, 1 + i, T + 60 * session + i) for i in range(n)]


def test_a_cycle_s_inputs_on_s3(s3, config, monkeypatch):
    reads: list[str] = []
    real = inputs_module._read_bytes
    monkeypatch.setattr(inputs_module, "_read_bytes", lambda inc, key: reads.append(key) or real(inc, key))
    one = put(s3, "incoming/0001.csv", good(9001))
    put(s3, "incoming/0002.csv", [(9002, 5, T), (9002, "", T + 60)])
    three = put(s3, "incoming/0003.csv", good(9003))

    got = gather_inputs("synthetic", None, config)
    assert reads == ["0001.csv", "0002.csv", "0003.csv"]
    assert got.new_files == [one, three] and len(got.new_events) == 6
    key = got.snapshot.fingerprint.split(":")[1][:16]
    assert got.snapshot.spec == f"parquet:{ROOT}/snapshots/{key}.parquet"
    assert keys(s3, "snapshots/") == [f"snapshots/{key}.parquet"]
    [q] = got.quarantined
    assert q.file == f"{ROOT}/incoming/0002.csv" and q.moved_to == f"{ROOT}/incoming/quarantine/0002.csv"
    assert "column 'item_id' has null values" in q.reason
    reason = open_store().read_text("incoming/quarantine/0002.csv.reason.txt")
    assert "column 'item_id' has null values" in reason and "(UTC)" in reason
    assert keys(s3, "incoming/") == [
        "incoming/0001.csv",
        "incoming/0003.csv",
        "incoming/quarantine/0002.csv",
        "incoming/quarantine/0002.csv.reason.txt",
    ]

    commit_manifest(got)
    manifest = json.loads(open_store().read_text("incoming/manifest.json"))
    assert manifest["version"] == 1 and manifest["snapshot"] == got.snapshot.spec.removeprefix("parquet:")
    assert [(f["name"], f["rows"], f["added"]) for f in manifest["files"]] == [
        ("0001.csv", 3, 3),
        ("0003.csv", 3, 3),
    ]
    assert all(f["mtime_ns"] > T * 10**9 and f["size"] > 0 for f in manifest["files"])

    again = gather_inputs("synthetic", None, config)
    assert reads == ["0001.csv", "0002.csv", "0003.csv"]  # nothing read twice
    assert again.new_files == [] and again.quarantined == [] and again.manifest is None
    assert again.snapshot == got.snapshot
    pd.testing.assert_frame_equal(again.events, got.events)

    held = load_events(got.snapshot.spec)
    assert len(held) == len(got.events)
    assert len(load_events(f"csv:{one}")) == 3


def test_snapshots_read_as_one_object_or_a_glob(s3, config):
    fingerprints, sizes = [], []
    for n in range(1, 3):
        put(s3, f"incoming/000{n}.csv", good(9000 + n))
        got = gather_inputs("synthetic", None, config)
        commit_manifest(got)
        fingerprints.append(got.snapshot.fingerprint)
        sizes.append(len(got.events))
    both = read_raw_events(f"parquet:{ROOT}/snapshots/*.parquet")  # concatenated in name order
    assert len(both) == sum(sizes)
    assert len(load_events(f"parquet:{ROOT}/snapshots/*.parquet")) == sizes[1]  # the second holds the first
    csvs = load_events(f"csv:{ROOT}/incoming/*.csv")
    assert sorted(set(csvs["sequence_id"])) == [9001, 9002]
    with pytest.raises(
        DataValidationError, match=r"parquet:s3://recops-state/team/prod/none/\*\.parquet: no file"
    ):
        load_events(f"parquet:{ROOT}/none/*.parquet")
    with pytest.raises(DataValidationError, match=r"csv:s3://recops-state/team/prod/x\.csv: file not found"):
        load_events(f"csv:{ROOT}/x.csv")

    deleted = prune_snapshots(set())  # the manifest's snapshot stays
    assert deleted == [f"{ROOT}/snapshots/{fingerprints[0].split(':')[1][:16]}.parquet"]
    assert keys(s3, "snapshots/") == [f"snapshots/{fingerprints[1].split(':')[1][:16]}.parquet"]


def test_a_crash_between_snapshot_and_manifest_loses_and_doubles_nothing(s3, config):
    put(s3, "incoming/0001.csv", good(9001))
    committed = gather_inputs("synthetic", None, config)
    commit_manifest(committed)
    two = put(s3, "incoming/0002.csv", good(9002))
    crashed = gather_inputs("synthetic", None, config)  # snapshot written; manifest not
    assert len(keys(s3, "snapshots/")) == 2
    assert read_manifest(open_store().child("incoming")).fingerprint == committed.snapshot.fingerprint

    again = gather_inputs("synthetic", None, config)  # the next cycle: the same object, reused
    assert again.new_files == crashed.new_files == [two] and again.snapshot == crashed.snapshot
    assert len(again.events) == len(committed.events) + 3 and len(keys(s3, "snapshots/")) == 2
    commit_manifest(again)
    after = gather_inputs("synthetic", None, config)
    assert after.new_files == [] and after.snapshot == again.snapshot


def test_two_cycles_cannot_both_commit(s3, config):
    put(s3, "incoming/0001.csv", good(9001))
    one, two = gather_inputs("synthetic", None, config), gather_inputs("synthetic", None, config)
    commit_manifest(one)  # If-None-Match: * (there was no manifest)
    with pytest.raises(InputsError, match="changed since these inputs were gathered"):
        commit_manifest(two)
    put(s3, "incoming/0002.csv", good(9002))
    three, four = gather_inputs("synthetic", None, config), gather_inputs("synthetic", None, config)
    commit_manifest(three)  # If-Match: <the ETag read>
    with pytest.raises(InputsError, match="changed since these inputs were gathered"):
        commit_manifest(four)


def test_a_move_interrupted_between_copy_and_delete_is_finished_next_cycle(s3, config, monkeypatch):
    bad = put(s3, "incoming/0001.csv", [(9001, 5, -1)])

    def copy_then_die(self, src: str, dst: str) -> None:
        self.fs.copy(self._path(src), self._path(dst))
        raise RuntimeError("killed between the copy and the delete")

    with monkeypatch.context() as patch:
        patch.setattr(S3Backend, "move", copy_then_die)
        with pytest.raises(RuntimeError, match="killed"):
            gather_inputs("synthetic", None, config)
    left = ["incoming/0001.csv", "incoming/quarantine/0001.csv", "incoming/quarantine/0001.csv.reason.txt"]
    assert keys(s3, "incoming/") == left  # in both places

    got = gather_inputs("synthetic", None, config)
    [q] = got.quarantined  # reported (and alerted) once more: the crashed cycle never alerted
    assert q.file == bad and q.moved_to == f"{ROOT}/incoming/quarantine/0001.csv"
    assert "before 2000-01-01" in q.reason and got.new_files == []
    assert keys(s3, "incoming/") == left[1:]  # one copy, no 0001.1.csv
    assert gather_inputs("synthetic", None, config).quarantined == []


def test_the_online_loop_on_s3(s3, config):
    """The served-list log, the follow-up events and the trending lists in an S3 store: a server
    on ECS writes and reads exactly what a local one does."""
    import time

    from recops.continuous.online import online_report
    from recops.continuous.online_check import publish_trending
    from recops.data.trending import TRENDING_KEY, Trending
    from recops.serving.recommender import Recommendation
    from recops.serving.served_log import ServedLog, ServedRecord, read_served

    store = open_store()
    log = ServedLog(store, flush_records=2, flush_seconds=3600)
    now = time.time()
    for i in range(3):
        answer = Recommendation([(i + 1, 1.0), (i + 2, 0.5)])
        log.record(
            ServedRecord(
                f"r{i}",
                now - 60 + i,
                f"s{i}",
                [i],
                answer,
                {"name": "m", "version": "1"},
                "champion",
                20,
                "recommend",
            )
        )
    log.close()
    keys = [obj["Key"] for obj in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/served/")["Contents"]]
    assert keys and all(key.endswith(".parquet") for key in keys)
    assert list(read_served(store).rows["request_id"]) == ["r0", "r1", "r2"]
    # the next events: s0 took its first recommendation, s1 its second, s2 something else
    put(s3, "incoming/follow.csv", [("s0", 1, now - 30), ("s1", 3, now - 30), ("s2", 19, now - 30)])
    report = online_report(config, store=store, offline={})
    figures = report.figures("1")
    assert figures.pairs == 3 and figures.metrics["hr@10"] == pytest.approx(2 / 3)
    published = publish_trending(load_events("synthetic", config.data), config)
    assert Trending.from_json(store.read_text(TRENDING_KEY)) == published


def test_a_release_record_on_s3_is_one_object_never_replaced(s3):
    """recops provenance --record with the store on S3 (CD's last step on AWS)."""
    from recops.cicd import provenance
    from recops.store import StoreConflictError

    release = provenance.Release(
        released_at="2026-12-04T18:00:00+00:00",
        stack="prod",
        links={"git_commit": "f00dfeed" * 5, "model": {"name": "session-recommender", "version": 4}},
        missing={"terraform_apply": "no terraform apply in this release (make cd-apply)"},
    )
    key = provenance.record(release)
    assert keys(s3, "provenance/") == [key]
    with pytest.raises(StoreConflictError):
        provenance.record(release)
    [read] = provenance.releases()
    assert read.recorded and read.model_version == 4 and read.missing == release.missing


def test_the_maturity_report_reads_its_records_from_s3(s3):
    """recops maturity (and the weekly report) on AWS: the last cycle and the releases are read
    from the S3 store, and a recorded release is what makes CD pass."""
    from recops.cicd import maturity, provenance
    from recops.continuous.alerts import write_last_cycle

    plan = "retrain: drift in item popularity over 480 new events"
    write_last_cycle({"at": "2026-12-04T02:00:00+00:00", "outcome": "retrained, promoted", "plan": plan})
    facts = maturity.read_facts(prefect=False)
    assert facts.last_cycle["plan"] == plan and facts.provenance == []
    assert not {i.key: i for i in maturity.score(facts).items}["cd"].passed

    release = provenance.Release(released_at="2026-12-04T18:00:00+00:00", stack="prod", links={}, missing={})
    provenance.record(release)
    cd = {i.key: i for i in maturity.score(maturity.read_facts(prefect=False)).items}["cd"]
    assert cd.passed and "to prod" in cd.evidence, cd
