"""Threads per process: the cores a process may use, and the default for one model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from tests.conftest import make_config
from tunelab.evaluation.fitting import fit_on_rows
from tunelab.evaluation.prepare import prepare
from tunelab.training import cores
from tunelab.training.cores import (
    SMALL_MODEL_PARAMS,
    available_cores,
    cgroup_quota,
    default_threads,
    free_cores,
    threads_per_job,
)


@pytest.mark.parametrize(
    ("text", "quota"),
    [("max 100000\n", None), ("150000 100000\n", 1.5), ("50000 100000", 0.5), ("oops", None)],
)
def test_a_cgroup_cpu_quota_is_read_in_cores(
    tmp_path: Path, text: str, quota: float | None
) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(text)
    assert cgroup_quota(path) == quota


def test_no_cgroup_file_means_no_quota(tmp_path: Path) -> None:
    assert cgroup_quota(tmp_path / "missing") is None


def test_a_quota_caps_the_cores_that_affinity_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``docker run --cpus 1.5`` on a many-core host: two threads, not the host's count."""
    path = tmp_path / "cpu.max"
    path.write_text("150000 100000\n")
    monkeypatch.setattr(cores, "CGROUP_CPU_MAX", path)
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda pid: set(range(64)))
    assert available_cores() == 2
    assert threads_per_job(4) == 1 and threads_per_job(1) == 2


def test_a_busy_machine_leaves_fewer_free_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cores, "available_cores", lambda: 8)
    for load, free in [(0.2, 8), (2.6, 5), (7.9, 1), (30.0, 1)]:
        monkeypatch.setattr(cores.os, "getloadavg", lambda load=load: (load, load, load))
        free_cores.cache_clear()
        assert free_cores() == free
    free_cores.cache_clear()


def test_a_small_model_trains_on_one_thread_a_large_one_on_the_free_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cores, "free_cores", lambda: 6)
    small = nn.Linear(10, 10)
    large = nn.Linear(1000, SMALL_MODEL_PARAMS // 1000 + 1)
    assert default_threads(small) == 1
    assert default_threads(large) == 6
    frozen = nn.Linear(1000, 100).requires_grad_(False)  # only trainable weights count
    assert default_threads(frozen) == 1


def test_fit_without_train_threads_uses_the_default() -> None:
    cfg = make_config(train={"epochs": 1, "threads": None})
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        prepared = prepare(cfg)
        fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation)
        assert torch.get_num_threads() == 1, "a small MLP trains on one thread"
    finally:
        torch.set_num_threads(before)
