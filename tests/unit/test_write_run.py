"""write_run: a run folder is written whole or not at all, and never over a user's files."""

import json
import os

import pytest

from recops.config import load_config
from recops.data import validate_events
from recops.errors import RecopsError
from recops.training.checkpoint import Checkpoint
from recops.training.experiment import (
    RUN_FILES,
    RunDirError,
    prepare_events,
    train_and_evaluate,
    write_run,
)
from tests.helpers import TINY, cycle_events


@pytest.fixture(scope="module")
def report():
    data = prepare_events("cycle", validate_events(cycle_events(n_sessions=60)), load_config(overrides=TINY))
    return train_and_evaluate(data, "popular", load_config(overrides=TINY))


def snapshot(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def assert_is_run(folder):
    assert sorted(p.name for p in folder.iterdir()) == sorted(RUN_FILES)
    assert json.loads((folder / "metrics.json").read_text())["model"] == "popular"
    assert Checkpoint.load(folder / "checkpoint.pt").model_name == "popular"


def test_a_folder_with_other_files_is_refused_and_left_intact(report, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    (out / "metrics.json").write_text("{}")  # an earlier run's file beside them changes nothing
    before = snapshot(out)
    with pytest.raises(RunDirError) as caught:
        write_run(report, out)
    assert isinstance(caught.value, RecopsError)
    message = str(caught.value)
    assert str(out) in message and "(it holds notes.txt;" in message  # only what a run does not write
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging folder left behind


def test_the_working_directory_is_refused(report, tmp_path, monkeypatch):
    """`--out .` in a project folder: nothing is deleted, the message names a few entries."""
    for i in range(8):
        (tmp_path / f"file{i}.py").write_text("x = 1\n")
    (tmp_path / "src").mkdir()
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(RunDirError, match=r"not empty and not an earlier run") as caught:
        write_run(report, ".")
    assert str(tmp_path) in str(caught.value) and "and 4 more" in str(caught.value)
    assert snapshot(tmp_path) == before and (tmp_path / "src").is_dir()
    assert os.getcwd() == str(tmp_path)


def test_a_file_is_refused(report, tmp_path):
    target = tmp_path / "run"
    target.write_text("not a folder")
    with pytest.raises(RunDirError, match="not a folder"):
        write_run(report, target)
    assert target.read_text() == "not a folder"


def test_an_earlier_run_is_replaced(report, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"old weights")
    (out / "metrics.json").write_text('{"model": "old"}')
    assert write_run(report, out) == out.resolve()
    assert_is_run(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the old run is gone, no leftovers
    write_run(report, out)  # a run of our own is an earlier run too
    assert_is_run(out)


@pytest.mark.parametrize("state", ["missing", "empty", "missing parent"])
def test_a_missing_or_empty_folder_is_written(report, tmp_path, state):
    out = tmp_path / "a" / "run" if state == "missing parent" else tmp_path / "run"
    if state == "empty":
        out.mkdir()
    assert write_run(report, out) == out.resolve()
    assert_is_run(out)


@pytest.mark.parametrize(("mask", "folder_mode", "file_mode"), [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)])
def test_a_run_is_written_with_the_modes_the_umask_allows(report, tmp_path, mask, folder_mode, file_mode):
    """tempfile makes 0700 folders and 0600 files whatever the umask; a run (and every file
    written through atomic_path) gets what mkdir and open would have given it."""
    before = os.umask(mask)
    try:
        out = write_run(report, tmp_path / "run")
    finally:
        os.umask(before)
    assert out.stat().st_mode & 0o777 == folder_mode
    assert (out / "checkpoint.pt").stat().st_mode & 0o777 == file_mode
    assert (out / "metrics.json").stat().st_mode & 0o777 == file_mode
