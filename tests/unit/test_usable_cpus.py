"""Training, evaluation and server workers size their torch threads to the CPUs this process
may use: its affinity mask capped by its cgroup's CPU quota, never the machine's core count."""

import pytest
import torch

from recops import localproc

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("v2", "v1", "expected"),
    [
        ("150000 100000\n", None, 1.5),  # docker --cpus 1.5
        ("max 100000\n", None, None),  # no quota
        (None, ("200000", "100000"), 2.0),
        (None, ("-1", "100000"), None),
        (None, None, None),  # no cgroup files (macOS, a sandbox)
        ("garbage\n", None, None),
    ],
)
def test_the_cgroup_quota_is_read_from_v2_or_v1(tmp_path, v2, v1, expected):
    v2_file, quota, period = tmp_path / "cpu.max", tmp_path / "quota", tmp_path / "period"
    if v2 is not None:
        v2_file.write_text(v2)
    if v1 is not None:
        quota.write_text(v1[0])
        period.write_text(v1[1])
    assert localproc._cgroup_cpus(((v2_file, None), (quota, period))) == expected


@pytest.mark.parametrize(
    ("affinity", "quota", "expected"), [(16, 2.0, 2), (16, 1.5, 1), (2, 8.0, 2), (4, None, 4), (8, 0.5, 1)]
)
def test_usable_cpus_is_the_affinity_capped_by_the_quota(monkeypatch, affinity, quota, expected):
    monkeypatch.setattr(localproc.os, "sched_getaffinity", lambda _pid: set(range(affinity)))
    monkeypatch.setattr(localproc, "_cgroup_cpus", lambda: quota)
    assert localproc.usable_cpus() == expected
    assert localproc.cpu_share(2) == max(1, expected // 2)


def test_torch_threads_are_capped_and_a_lower_setting_is_kept(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(localproc, "usable_cpus", lambda: 1)
        torch.set_num_threads(2)
        assert localproc.cap_torch_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.setattr(localproc, "usable_cpus", lambda: 8)
        assert localproc.cap_torch_threads() == 1  # kept: never raised
    finally:
        torch.set_num_threads(before)
