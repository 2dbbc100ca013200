"""4. A full disk, for real: a small tmpfs mounted over the folder that receives a write, holding a
copy of what was there and filled to the last byte, so the write fails with ENOSPC.

- during the snapshot write (``$RECOPS_HOME/snapshots``, with ``monitoring`` full too): load-data
  fails (after its retries), the alert reaches the webhook although nothing can be recorded
  locally, no half-written snapshot is left and the manifest does not move;
- during the checkpoint write (the registry's artifact store, ``mlflow/artifacts/models``, where
  the register step uploads the model with its checkpoint): the Metaflow run fails in register,
  nothing is registered, the alert goes out.

Then the tmpfs is unmounted (space freed) and the next cycle recovers: for the checkpoint it
resumes the failed Metaflow run (training is not repeated).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.conftest import (
    add_incoming,
    assert_recovered,
    half_written,
    new_versions,
    registry_state,
    report,
    run_cycle,
)
from tests.helpers import require_tool

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

PAGE = 4096


def _pages(folder: Path) -> int:
    return sum(-(-p.stat().st_size // PAGE) for p in folder.rglob("*") if p.is_file())


def _fill(path: Path) -> int:
    """Write zeros to ``path`` until the file system is full; the bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    written = 0
    try:
        while True:
            written += os.write(fd, b"\0" * PAGE)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return written


@contextlib.contextmanager
def full_disk(folder: Path, free_bytes: int = 0) -> Iterator[Path]:
    """Mount a tmpfs over ``folder`` holding a copy of its files, filled so that only
    ``free_bytes`` (whole pages) can still be written; on exit copy what was written there back
    onto the real folder (without the filler) and unmount."""
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="recops-full-disk-"))
    shutil.copytree(folder, staging / "before", symlinks=True)
    size = (_pages(folder) + 16) * PAGE + free_bytes
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        require_tool(False, f"cannot mount a tmpfs over {folder} (needs root): {done.stderr.strip()}")
    filler = folder / ".filler"
    try:
        shutil.copytree(staging / "before", folder, symlinks=True, dirs_exist_ok=True)
        written = _fill(filler)
        fd = os.open(filler, os.O_WRONLY)
        try:
            os.ftruncate(fd, max(0, written - free_bytes))  # leave exactly free_bytes
        finally:
            os.close(fd)
        assert _fill(folder / ".probe") <= free_bytes  # full indeed
        (folder / ".probe").unlink()
        yield folder
    finally:
        filler.unlink(missing_ok=True)
        shutil.copytree(folder, staging / "after", symlinks=True)
        subprocess.run(["umount", str(folder)], check=True)
        shutil.copytree(staging / "after", folder, symlinks=True, dirs_exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)


def test_a_full_disk_during_the_snapshot_write(fault_home, server, webhook, record_property):
    from recops.continuous.alerts import read_failures
    from recops.continuous.inputs import manifest_url

    path = add_incoming(fault_home, "disk-full-snapshot")
    before = registry_state()
    snapshots = fault_home.home / "snapshots"
    snapshots_before = sorted(snapshots.glob("*.parquet"))
    manifest = Path(manifest_url(fault_home.incoming))
    manifest_before = manifest.read_bytes() if manifest.is_file() else None
    alerts = len(webhook.received)
    with full_disk(snapshots), full_disk(fault_home.home / "monitoring"):
        full_at = time.monotonic()
        failed = run_cycle(fault_home, "snapshot-disk-full", expect_rc=None)
        assert failed.process.returncode != 0, failed.tail()
        alert = webhook.wait_for("cycle_failed", since=alerts)
        assert "No space left on device" in alert["message"], alert
        # nothing half-written, nothing consumed: the same snapshots, the same manifest, no temp file
        assert sorted(snapshots.glob("*.parquet")) == snapshots_before
        assert half_written(fault_home.home) == []
        assert (manifest.read_bytes() if manifest.is_file() else None) == manifest_before
        assert path.is_file()
        # the webhook got it although the local record could not be written (the disk is full)
        recorded = json.dumps(read_failures())
        assert alert["flow_run_id"] not in recorded
    recovery = run_cycle(fault_home, "after-snapshot-disk-full")
    assert recovery.last_result().startswith("retrained"), recovery.tail()
    assert_recovered(fault_home, server, before)
    report(
        record_property,
        "full disk during the snapshot write",
        alert=alert["message"][-160:],
        time_to_recover_s=time.monotonic() - full_at,
    )


def test_a_full_disk_during_the_checkpoint_write(fault_home, server, webhook, record_property):
    from recops.continuous.training_run import FAILED_RUN_KEY
    from recops.paths import file_sha256
    from recops.store import open_store

    add_incoming(fault_home, "disk-full-checkpoint")
    before = registry_state()
    models = fault_home.home / "mlflow" / "artifacts" / "models"
    assert models.is_dir()  # the seeded champion's model is there
    alerts = len(webhook.received)
    # room for the model's small files (a page each), not for a SASRec checkpoint (~25 pages)
    with full_disk(models, free_bytes=12 * PAGE):
        full_at = time.monotonic()
        failed = run_cycle(fault_home, "checkpoint-disk-full", "--model", "sasrec", expect_rc=None)
        assert failed.process.returncode != 0, failed.tail()
        alert = webhook.wait_for("cycle_failed", since=alerts)
        assert "No space left on device" in alert["message"], alert
        assert new_versions(before) == [], "a version was registered without its checkpoint"
        # no partial checkpoint stays in the store: each one is a registered version's, whole
        whole = {tags["checkpoint_sha256"] for tags in registry_state().tags.values()}
        partial = [p for p in models.rglob("checkpoint.pt") if file_sha256(p) not in whole]
        assert partial == [], f"half-written checkpoints in the artifact store: {partial}"
        assert half_written(fault_home.home) == []
    failed_run = json.loads(open_store().read_text(FAILED_RUN_KEY))["pathspec"]
    recovery = run_cycle(fault_home, "after-checkpoint-disk-full", "--model", "sasrec")
    assert f"resuming failed run {failed_run.split('/')[-1]}" in recovery.text(), recovery.tail()
    assert_recovered(fault_home, server, before)
    report(
        record_property,
        "full disk during the checkpoint write",
        alert=alert["message"][-160:],
        time_to_recover_s=time.monotonic() - full_at,
    )
