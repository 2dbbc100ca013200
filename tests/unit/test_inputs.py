"""Incoming files: quarantine of bad ones, the manifest (each file read once), crash safety."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from recops.config import load_config
from recops.continuous import inputs as inputs_module
from recops.continuous.inputs import commit_manifest, current_events, gather_inputs
from recops.continuous.manifest import InputsError, manifest_url, prune_snapshots
from recops.data import DataValidationError, load_events, read_raw_events
from recops.paths import recops_home
from recops.store import as_store

pytestmark = pytest.mark.unit

T = 1_720_000_000  # 2024-07-03, after the synthetic base (2023-11)


@pytest.fixture
def config():
    return load_config(overrides={"data.synthetic.n_sessions": 30, "data.synthetic.n_items": 20})


@pytest.fixture
def incoming(tmp_path) -> Path:
    folder = tmp_path / "incoming"
    folder.mkdir()
    return folder


def write(folder: Path, name: str, rows: list[tuple]) -> Path:
    path = folder / name
    lines = ["session_id,item_id,timestamp", *(",".join(str(v) for v in row) for row in rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def good(session: int, n: int = 3) -> list[tuple]:
    return [(session, 1 + i, T + 60 * session + i) for i in range(n)]


def quarantine_dir(incoming: Path) -> Path:
    return incoming / "quarantine"


def manifest_path(incoming: Path) -> Path:
    return Path(manifest_url(incoming))


def snapshots_dir() -> Path:
    return recops_home() / "snapshots"


@pytest.fixture
def reads(monkeypatch) -> list[Path]:
    """Every incoming file whose content is read, in order."""
    seen: list[Path] = []
    real = inputs_module._read_bytes

    def counting(incoming, key: str) -> bytes:
        seen.append(Path(incoming.url(key)))
        return real(incoming, key)

    monkeypatch.setattr(inputs_module, "_read_bytes", counting)
    return seen


def test_no_incoming_files_trains_on_the_base(config, incoming):
    got = gather_inputs("synthetic", incoming, config)
    assert got.snapshot.spec == "synthetic" and got.snapshot.sources == ["synthetic"]
    assert got.new_files == [] and got.new_events.empty and got.manifest is None
    commit_manifest(got)
    assert not manifest_path(incoming).exists()


def test_a_bad_file_is_quarantined_and_the_good_ones_still_come(config, incoming):
    write(incoming, "0001.csv", good(9001))
    bad = write(incoming, "0002.csv", [(9002, 5, T), (9002, "", T + 60)])
    write(incoming, "0003.csv", good(9003))
    got = gather_inputs("synthetic", incoming, config)

    assert got.new_files == [str(incoming / "0001.csv"), str(incoming / "0003.csv")]
    assert len(got.new_events) == 6 and set(got.new_events["sequence_id"]) == {9001, 9003}
    [q] = got.quarantined
    moved = quarantine_dir(incoming) / "0002.csv"
    assert q.file == str(bad) and q.moved_to == str(moved)
    assert "column 'item_id' has null values" in q.reason
    assert not bad.exists() and moved.is_file()
    reason = (quarantine_dir(incoming) / "0002.csv.reason.txt").read_text()
    assert "column 'item_id' has null values" in reason and "(UTC)" in reason
    assert not list(quarantine_dir(incoming).glob(".*.tmp"))
    # the quarantine folder is not read as incoming data
    commit_manifest(got)
    assert gather_inputs("synthetic", incoming, config).quarantined == []


def test_a_text_id_file_on_an_integer_id_base_is_quarantined(config, incoming):
    write(incoming, "0001.csv", [(9001, "007", T), (9001, "8", T + 1)])
    got = gather_inputs("synthetic", incoming, config)
    assert got.new_files == [] and got.snapshot.spec == "synthetic"
    [q] = got.quarantined
    assert "column 'item_id' holds text ids" in q.reason and "'007'" in q.reason
    assert "ids are not converted" in q.reason


def test_integer_ids_on_a_text_id_base_become_text(config, incoming, tmp_path):
    base = tmp_path / "base.csv"
    base.write_text("session_id,item_id,timestamp\ns1,a,1700000000\ns1,7,1700000001\n")
    write(incoming, "0001.csv", [(9001, 7, T), (9001, 8, T + 1)])
    got = gather_inputs(f"csv:{base}", incoming, config)
    assert got.quarantined == []
    assert got.events["item_id"].tolist() == ["a", "7", "7", "8"]
    assert got.events["sequence_id"].tolist() == ["s1", "s1", "9001", "9001"]


def test_the_manifest_records_each_file_and_its_snapshot(config, incoming):
    write(incoming, "0001.csv", good(9001))
    got = gather_inputs("synthetic", incoming, config)
    commit_manifest(got)
    data = json.loads(manifest_path(incoming).read_text())
    assert data["snapshot"] == got.snapshot.spec.removeprefix("parquet:")
    assert data["fingerprint"] == got.snapshot.fingerprint and data["n_events"] == len(got.events)
    [entry] = data["files"]
    assert entry["name"] == "0001.csv" and entry["rows"] == 3 and entry["added"] == 3
    assert entry["snapshot"] == got.snapshot.fingerprint and len(entry["sha256"]) == 64
    assert Path(data["snapshot"]).is_file()


def test_a_second_gather_reads_no_consumed_file_again(config, incoming, reads, monkeypatch):
    write(incoming, "0001.csv", good(9001))
    first = gather_inputs("synthetic", incoming, config)
    commit_manifest(first)
    assert reads == [incoming / "0001.csv"]

    def no_base(*args, **kwargs):
        raise AssertionError("the base must not be read again: the snapshot holds it")

    monkeypatch.setattr(inputs_module, "load_events", no_base)
    second = gather_inputs("synthetic", incoming, config)
    assert reads == [incoming / "0001.csv"]  # not read again
    assert second.new_files == [] and second.new_events.empty and second.manifest is None
    assert second.snapshot == first.snapshot
    pd.testing.assert_frame_equal(second.events, first.events)

    (incoming / "0001.csv").unlink()  # a consumed file may go: its events are in the snapshot
    third = gather_inputs("synthetic", incoming, config)
    assert third.snapshot.fingerprint == first.snapshot.fingerprint and third.new_files == []

    write(incoming, "0002.csv", good(9002))
    fourth = gather_inputs("synthetic", incoming, config)
    assert reads == [incoming / "0001.csv", incoming / "0002.csv"]
    assert fourth.new_files == [str(incoming / "0002.csv")] and len(fourth.new_events) == 3
    assert len(fourth.events) == len(first.events) + 3
    assert fourth.snapshot.sources == ["synthetic", str(incoming / "0001.csv"), str(incoming / "0002.csv")]


def test_a_touched_but_unchanged_file_is_not_consumed_twice(config, incoming, reads):
    path = write(incoming, "0001.csv", good(9001))
    first = gather_inputs("synthetic", incoming, config)
    commit_manifest(first)
    os.utime(path, ns=(1, 1))
    second = gather_inputs("synthetic", incoming, config)
    assert second.new_files == [] and second.quarantined == [] and len(second.events) == len(first.events)
    commit_manifest(second)  # records the new mtime: not hashed again
    gather_inputs("synthetic", incoming, config)
    assert reads == [path, path]


def test_a_consumed_file_that_changed_is_quarantined(config, incoming):
    path = write(incoming, "0001.csv", good(9001))
    first = gather_inputs("synthetic", incoming, config)
    commit_manifest(first)
    write(incoming, "0001.csv", good(9001, n=5))
    second = gather_inputs("synthetic", incoming, config)
    [q] = second.quarantined
    assert q.file == str(path) and "changed after it was consumed" in q.reason
    assert "new name" in q.reason
    assert not path.exists() and (quarantine_dir(incoming) / "0001.csv.reason.txt").is_file()
    assert second.new_files == [] and second.snapshot.fingerprint == first.snapshot.fingerprint
    assert len(second.events) == len(first.events)  # the first version stays held


def test_a_crash_between_snapshot_and_manifest_loses_and_doubles_nothing(config, incoming):
    write(incoming, "0001.csv", good(9001))
    committed = gather_inputs("synthetic", incoming, config)
    commit_manifest(committed)
    write(incoming, "0002.csv", good(9002))
    crashed = gather_inputs("synthetic", incoming, config)  # snapshot written; manifest not
    assert Path(crashed.snapshot.spec.removeprefix("parquet:")).is_file()

    again = gather_inputs("synthetic", incoming, config)  # the next cycle
    assert again.new_files == crashed.new_files == [str(incoming / "0002.csv")]
    assert again.snapshot == crashed.snapshot
    assert len(again.events) == len(committed.events) + 3 and len(again.new_events) == 3
    pd.testing.assert_frame_equal(again.events, crashed.events)
    commit_manifest(again)

    after = gather_inputs("synthetic", incoming, config)
    assert after.new_files == [] and after.snapshot == again.snapshot
    assert len(after.events) == len(committed.events) + 3


def test_a_crash_inside_quarantine_is_handled_next_cycle(config, incoming):
    bad = write(incoming, "0001.csv", [(9001, 5, -1)])
    (quarantine_dir(incoming)).mkdir()
    (quarantine_dir(incoming) / "0001.csv.reason.txt").write_text("stale, from a crash")
    got = gather_inputs("synthetic", incoming, config)
    [q] = got.quarantined
    assert q.moved_to == str(quarantine_dir(incoming) / "0001.csv") and not bad.exists()
    assert "before 2000-01-01" in (quarantine_dir(incoming) / "0001.csv.reason.txt").read_text()


def test_a_name_quarantined_twice_keeps_both(config, incoming):
    for item in (5, 6):
        write(incoming, "0001.csv", [(9001, item, -1)])
        gather_inputs("synthetic", incoming, config)
    assert sorted(p.name for p in quarantine_dir(incoming).iterdir()) == [
        "0001.1.csv",
        "0001.1.csv.reason.txt",
        "0001.csv",
        "0001.csv.reason.txt",
    ]


def test_a_move_interrupted_after_its_copy_is_finished_next_cycle(config, incoming):
    """What a crash inside an S3 move (copy, then delete) leaves: the refused file in incoming
    and its copy, with its reason, in quarantine. The next pass only deletes the incoming one."""
    bad = write(incoming, "0001.csv", [(9001, 5, -1)])
    quarantine_dir(incoming).mkdir()
    (quarantine_dir(incoming) / "0001.csv").write_bytes(bad.read_bytes())
    (quarantine_dir(incoming) / "0001.csv.reason.txt").write_text(
        "0001.csv quarantined at ...\n\nbefore 2000\n"
    )
    got = gather_inputs("synthetic", incoming, config)
    [q] = got.quarantined
    assert q.file == str(bad) and q.moved_to == str(quarantine_dir(incoming) / "0001.csv")
    assert "before 2000-01-01" in q.reason  # refused again, so reported (and alerted) again
    assert not bad.exists() and got.new_files == [] and got.snapshot.spec == "synthetic"
    assert sorted(p.name for p in quarantine_dir(incoming).iterdir()) == ["0001.csv", "0001.csv.reason.txt"]
    assert gather_inputs("synthetic", incoming, config).quarantined == []


def test_exact_duplicates_across_files_are_dropped_and_counted(config, incoming):
    write(incoming, "0001.csv", good(9001))
    write(incoming, "0002.csv", [*good(9001), (9002, 4, T), (9002, 4, T)])
    got = gather_inputs("synthetic", incoming, config)
    assert got.duplicates_dropped == 4  # one inside 0002, three repeating 0001
    assert len(got.new_events) == 4
    commit_manifest(got)
    files = json.loads(manifest_path(incoming).read_text())["files"]
    assert [(f["rows"], f["added"]) for f in files] == [(3, 3), (4, 1)]
    write(incoming, "0003.csv", good(9001))  # re-delivered after a cycle: held already
    again = gather_inputs("synthetic", incoming, config)
    assert again.duplicates_dropped == 3 and again.new_events.empty
    assert again.new_files == [str(incoming / "0003.csv")]
    assert again.snapshot.fingerprint == got.snapshot.fingerprint


def test_a_missing_snapshot_is_rebuilt_from_the_files(config, incoming):
    write(incoming, "0001.csv", good(9001))
    first = gather_inputs("synthetic", incoming, config)
    commit_manifest(first)
    Path(first.snapshot.spec.removeprefix("parquet:")).unlink()
    again = gather_inputs("synthetic", incoming, config)
    assert "is missing" in again.rebuilt
    assert again.snapshot.fingerprint == first.snapshot.fingerprint
    assert again.new_files == [str(incoming / "0001.csv")]

    commit_manifest(again)
    Path(again.snapshot.spec.removeprefix("parquet:")).unlink()
    (incoming / "0001.csv").unlink()
    with pytest.raises(InputsError, match=r"0001\.csv; their events cannot be rebuilt"):
        gather_inputs("synthetic", incoming, config)


def test_a_changed_base_rebuilds(config, incoming):
    write(incoming, "0001.csv", good(9001))
    commit_manifest(gather_inputs("synthetic", incoming, config))
    other = load_config(overrides={"data.synthetic.n_sessions": 40, "data.synthetic.n_items": 20})
    got = gather_inputs("synthetic", incoming, other)
    assert "base data changed" in got.rebuilt and got.new_files == [str(incoming / "0001.csv")]


def test_commit_refuses_a_manifest_changed_since_gathering(config, incoming):
    write(incoming, "0001.csv", good(9001))
    one, two = gather_inputs("synthetic", incoming, config), gather_inputs("synthetic", incoming, config)
    commit_manifest(one)
    with pytest.raises(InputsError, match="changed since these inputs were gathered"):
        commit_manifest(two)


def test_prune_snapshots_keeps_the_named_and_the_manifests(config, incoming):
    fingerprints = []
    for n in range(3):
        write(incoming, f"000{n}.csv", good(9000 + n))
        got = gather_inputs("synthetic", incoming, config)
        commit_manifest(got)
        fingerprints.append(got.snapshot.fingerprint)
    assert len(list(snapshots_dir().glob("*.parquet"))) == 3
    deleted = prune_snapshots({fingerprints[0]}, incoming=incoming)
    assert [Path(p).stem for p in deleted] == [fingerprints[1].split(":")[1][:16]]
    left = sorted(p.stem for p in snapshots_dir().glob("*.parquet"))
    assert left == sorted(f.split(":")[1][:16] for f in (fingerprints[0], fingerprints[2]))
    assert gather_inputs("synthetic", incoming, config).snapshot.fingerprint == fingerprints[2]


def test_current_events_still_reads_everything(config, incoming):
    write(incoming, "0001.csv", good(9001))
    events, sources = current_events("synthetic", incoming, config)
    assert sources == ["synthetic", str(incoming / "0001.csv")] and 9001 in set(events["sequence_id"])
    write(incoming, "0002.csv", [(9002, "x", T)])
    with pytest.raises(DataValidationError, match="holds text ids"):
        current_events("synthetic", incoming, config)


def test_a_version_1_manifest_of_before_the_store_still_loads(config, incoming, reads):
    """The manifest as the code before recops.store wrote it (a local snapshot path, st_size and
    st_mtime_ns): read as it is, its consumed file not read again."""
    path = write(incoming, "0001.csv", good(9001))
    first = gather_inputs("synthetic", incoming, config)
    commit_manifest(first)
    stat, entry = path.stat(), json.loads(manifest_path(incoming).read_text())["files"][0]
    old = {
        "version": 1,
        "dataset": "synthetic",
        "base": first.manifest.base,
        "snapshot": str(snapshots_dir() / f"{first.snapshot.fingerprint.split(':')[1][:16]}.parquet"),
        "fingerprint": first.snapshot.fingerprint,
        "n_events": len(first.events),
        "files": [{**entry, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}],
    }
    manifest_path(incoming).write_text(json.dumps(old, indent=2) + "\n")
    again = gather_inputs("synthetic", incoming, config)
    assert reads == [path] and again.new_files == [] and again.manifest is None
    assert again.snapshot == first.snapshot


def test_snapshots_and_incoming_files_read_back_by_a_glob(config, incoming):
    sizes = []
    for n in range(1, 3):
        write(incoming, f"000{n}.csv", good(9000 + n))
        got = gather_inputs("synthetic", incoming, config)
        commit_manifest(got)
        sizes.append(len(got.events))
    assert len(read_raw_events(f"parquet:{snapshots_dir()}/*.parquet")) == sum(sizes)  # name order
    assert len(load_events(f"parquet:{snapshots_dir()}/*.parquet")) == sizes[1]  # the second holds the first
    incoming_csv = read_raw_events(f"csv:{incoming}/*.csv")
    assert incoming_csv["session_id"].tolist() == ["9001"] * 3 + ["9002"] * 3
    with pytest.raises(DataValidationError, match=r"\*\.parquet: no file matches"):
        load_events(f"parquet:{incoming}/*.parquet")
    (incoming / "0003.parquet").write_text("not parquet")
    with pytest.raises(DataValidationError, match=r"parquet:.*/\*\.parquet: .*0003\.parquet: cannot read"):
        load_events(f"parquet:{incoming}/*.parquet")


def test_a_file_reusing_earlier_session_ids_is_quarantined_not_merged(config, incoming):
    write(incoming, "0001.csv", good(9001))
    commit_manifest(gather_inputs("synthetic", incoming, config))
    # another session under a consumed id, and one under a base session's id (the base's times)
    write(incoming, "0002.csv", [(9001, 7, T + 60 * 9001), (9001, 8, T + 60 * 9001 + 1)])
    write(incoming, "0003.csv", [(1, 7, 1_700_000_000)])
    write(incoming, "0004.csv", [(9001, 5, T + 60 * 9001 + 100), (9005, 1, T)])  # 9001 continued
    got = gather_inputs("synthetic", incoming, config)
    reasons = {Path(q.file).name: q.reason for q in got.quarantined}
    assert sorted(reasons) == ["0002.csv", "0003.csv"]
    assert (
        "session id collision: 1 sequence(s) reuse the id of an earlier session with 2 event(s)"
        in (reasons["0002.csv"])
    )
    assert "session id collision" in reasons["0003.csv"]
    assert got.new_files == [str(incoming / "0004.csv")] and len(got.new_events) == 2


def test_two_new_files_with_the_same_sessions_in_one_cycle_keep_the_first(config, incoming):
    write(incoming, "0001.csv", good(9001))
    write(incoming, "0002.csv", [(9001, 9, T + 60 * 9001)])
    got = gather_inputs("synthetic", incoming, config)
    assert [Path(q.file).name for q in got.quarantined] == ["0002.csv"]
    assert got.new_files == [str(incoming / "0001.csv")]


def test_simulated_events_clear_every_event_a_cycle_would_see(config, incoming):
    from recops.continuous.inputs import known_events
    from recops.data.synthetic import new_events_like

    base = load_events("synthetic", config.data)
    first = new_events_like(
        base, 20, shift_popularity=True, known=known_events("synthetic", incoming, config)
    )
    first.to_csv(incoming / "demo-0001.csv", index=False)
    commit_manifest(gather_inputs("synthetic", incoming, config))  # consumed: now in the snapshot
    other = incoming.parent / "elsewhere"
    other.mkdir()
    again = new_events_like(
        base, 20, shift_popularity=True, known=known_events("synthetic", incoming, config)
    )
    again.to_csv(other / "x.csv", index=False)  # not yet in incoming, but where the next one goes
    third = new_events_like(
        base, 20, known=known_events("synthetic", incoming, config, also=as_store(other)), now=T + 10**7
    )
    frames = [first, again, third]
    ids = [set(f["session_id"]) for f in frames]
    assert not ids[0] & ids[1] and not ids[1] & ids[2] and not set(base["sequence_id"]) & ids[0]
    assert first["timestamp"].min() > base["timestamp"].max()
    assert again["timestamp"].min() > first["timestamp"].max()
    assert third["timestamp"].min() > again["timestamp"].max()
    assert third["timestamp"].max() <= T + 10**7  # ends by now: sessions started closer together
    (incoming / "0001.csv").write_text(again.to_csv(index=False))
    got = gather_inputs("synthetic", incoming, config)
    assert got.quarantined == [] and len(got.new_events) == len(again) and got.duplicates_dropped == 0


def test_simulate_events_twice_with_the_default_seed_writes_new_sessions(tmp_path):
    from typer.testing import CliRunner

    from recops.cli.main import app

    (tmp_path / "small.toml").write_text("[data.synthetic]\nn_sessions = 30\nn_items = 20\n")
    folder = recops_home() / "incoming"
    runner, written = CliRunner(), []
    for name in ("demo-0001.csv", "0001.csv"):
        args = ["simulate-events", str(folder / name), "--sessions", "10", "--shift-popularity"]
        done = runner.invoke(app, [*args, "-c", str(tmp_path / "small.toml")])
        assert done.exit_code == 0, done.output
        written.append(pd.read_csv(folder / name))
    assert not set(written[0]["session_id"]) & set(written[1]["session_id"])
    assert written[1]["timestamp"].min() > written[0]["timestamp"].max()
    again = runner.invoke(app, [*args, "-c", str(tmp_path / "small.toml")])
    assert again.exit_code == 2 and "exists already; incoming files are append-only" in again.output
