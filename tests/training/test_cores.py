"""Threads per process: the cores a process may use, and the default for one model."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.conftest import make_config
from tunelab.evaluation.fitting import fit_on_rows
from tunelab.evaluation.prepare import prepare
from tunelab.training import cores
from tunelab.training import cores as cores_module
from tunelab.training.cores import (
    SMALL_MODEL_PARAMS,
    Speeds,
    available_cores,
    cgroup_quota,
    default_threads,
    free_cores,
    other_work,
    plan_jobs,
    process_threads,
    rejudge,
    share_cores,
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


class FakeMachine:
    """CPU-seconds counters as psutil gives them: every process's on this process's cores,
    and this run's own; each advances by its rate (cores busy) per second of the clock."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, cores: int) -> None:
        self.clock, self.busy, self.own = 1000.0, 5000.0, 100.0
        self.busy_rate, self.own_rate = 0.0, 0.0
        monkeypatch.setattr(cores_module, "available_cores", lambda: cores)
        monkeypatch.setattr(cores_module, "_busy_seconds", lambda cpus: self.busy)
        monkeypatch.setattr(cores_module, "_run_seconds", lambda root: self.own)
        monkeypatch.setattr(cores_module, "_clock", lambda: self.clock)
        monkeypatch.setattr(cores_module, "_sleep", self.sleep)
        # the lagging one-minute average of a machine that was busy until a moment ago
        monkeypatch.setattr(cores_module.os, "getloadavg", lambda: (8.0, 8.0, 8.0))
        share_cores(jobs=1)

    def sleep(self, seconds: float) -> None:
        self.clock += seconds
        self.busy += (self.busy_rate + self.own_rate) * seconds
        self.own += self.own_rate * seconds


def test_work_that_ended_does_not_reduce_the_free_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process kept every core busy and has just ended: its counters stand still.
    The load average still says 8; the cores are free now."""
    FakeMachine(monkeypatch, cores=8)
    assert free_cores() == 8
    large = nn.Linear(1000, SMALL_MODEL_PARAMS // 1000 + 1)
    assert default_threads(large) == 8


def test_other_work_now_leaves_fewer_free_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = FakeMachine(monkeypatch, cores=8)
    for busy, free in [(0.2, 8), (2.6, 5), (7.9, 1), (30.0, 1)]:
        machine.busy_rate = busy
        rejudge()
        assert other_work() == pytest.approx(busy)
        assert free_cores() == free


def test_this_runs_own_processes_are_not_other_work(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = FakeMachine(monkeypatch, cores=4)
    machine.own_rate = 4.0  # its workers train on every core
    assert free_cores() == 4


def test_a_judgement_is_kept_until_the_next_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = FakeMachine(monkeypatch, cores=4)
    assert free_cores() == 4
    machine.busy_rate = 3.0  # another run starts
    assert free_cores() == 4, "judged once per trial, not per fit"
    rejudge()  # the next trial starts
    assert free_cores() == 1
    machine.busy_rate = 0.0  # the other run ended
    machine.clock += cores_module.REJUDGE_SECONDS + 1
    assert free_cores() == 4, "and judged again after a while without trials"


def test_workers_of_one_run_split_the_free_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeMachine(monkeypatch, cores=8)
    share_cores(jobs=3, root=1)
    assert process_threads() == 2
    share_cores(jobs=16, root=1)
    assert process_threads() == 1
    share_cores(jobs=1)


def test_a_small_model_trains_on_one_thread_a_large_one_on_the_free_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cores_module, "free_cores", lambda: 6)
    small = nn.Linear(10, 10)
    large = nn.Linear(1000, SMALL_MODEL_PARAMS // 1000 + 1)
    assert default_threads(small) == 1
    assert default_threads(large) == 6
    frozen = nn.Linear(1000, 100).requires_grad_(False)  # only trainable weights count
    assert default_threads(frozen) == 1


def test_the_real_counters_count_this_runs_cpu_seconds_among_every_processs() -> None:
    """psutil's counters, as ``other_work`` reads them: a busy loop of this process shows
    in this run's seconds, and every process's seconds include them."""
    share_cores(jobs=1)
    cpus = cores_module._allowed_cpus()
    busy, own = cores_module._busy_seconds(cpus), cores_module._run_seconds(os.getpid())
    started = time.process_time()
    while time.process_time() - started < 0.3:
        pass
    own_used = cores_module._run_seconds(os.getpid()) - own
    busy_used = cores_module._busy_seconds(cpus) - busy
    assert 0.2 < own_used < 5, own_used
    assert busy_used >= own_used - 0.05  # clock ticks of 10 ms


@pytest.mark.parametrize(
    ("cores", "trainable", "speeds", "left", "memory", "expected"),
    [
        # a small model: one trial per core, limited by the trials left and the memory
        (8, 5_000, None, None, None, (8, 1)),
        (8, 5_000, None, 3, None, (3, 1)),
        (8, 5_000, None, None, 2, (2, 1)),
        # a large model whose threads scale well: one trial on every core
        (4, 10**6, Speeds(one=1.0, every=3.8, parallel=3.9, cores=4), None, None, (1, 4)),
        # a large one whose threads scale badly: one trial per core
        (4, 10**6, Speeds(one=1.0, every=1.5, parallel=3.9, cores=4), None, None, (4, 1)),
        # side by side crowd each other (memory bandwidth): two trials on two threads
        (4, 10**6, Speeds(one=1.0, every=2.2, parallel=2.2, cores=4), None, None, (2, 2)),
        # not measured: one trial on every core
        (4, 10**6, None, None, None, (1, 4)),
        (1, 10**6, None, None, None, (1, 1)),
    ],
)
def test_the_jobs_and_threads_plan_for_given_cores_and_model_sizes(
    cores: int,
    trainable: int,
    speeds: Speeds | None,
    left: int | None,
    memory: int | None,
    expected: tuple[int, int],
) -> None:
    plan = plan_jobs(
        cores=cores, trainable=trainable, speeds=speeds, trials_left=left, memory_jobs=memory
    )
    assert (plan.jobs, plan.threads) == expected, plan.reason
    assert plan.jobs * plan.threads <= cores


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
