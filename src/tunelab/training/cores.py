"""How many CPU threads a process uses and how many trials run side by side, so that a run
uses the whole machine without oversubscribing it (two processes that each use every core
slow each other down many times over).

The cores a process may use are its CPU affinity (``taskset``, cpusets), capped by a cgroup
v2 CPU quota (``docker run --cpus``, Kubernetes limits), which ``os.cpu_count()`` and
torch's default both ignore. Other work is judged *now*: the CPU time that processes outside
this run used on those cores over a short sample (``other_work``), judged again at every
trial (``rejudge``). The one-minute load average is not used: it still counts work that
ended a minute ago, such as the previous run. The processes of one run (``tunelab run`` and
its ``--jobs`` workers) are not other work to each other: they split the free cores
(``share_cores``). A small model trains on one thread, whose steps are too short for a
second thread to pay for its synchronisation (``bench/threads.py`` measures both).

``plan_jobs`` is the ``--jobs auto`` decision: parallel trials x threads per trial.
"""

from __future__ import annotations

import logging
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:  # torch is not imported to count cores
    from collections.abc import Iterator

    from torch import nn

log = logging.getLogger("tunelab")

# trainable parameters below which one thread trains faster than two (see the README's
# benchmarks: the tabular MLP runs faster on one thread, the digits CNN on two)
SMALL_MODEL_PARAMS = 20_000
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
SAMPLE_SECONDS = 0.1  # how long other work is watched: 10 clock ticks of a core at 100 Hz
REJUDGE_SECONDS = 30.0  # a judgement is kept this long unless a trial asks again
_NOT_BUSY = ("idle", "iowait", "guest", "guest_nice")


def available_cores() -> int:
    """The cores this process may use: its affinity, capped by a cgroup CPU quota."""
    cores = len(_allowed_cpus()) or os.cpu_count() or 1
    quota = cgroup_quota(CGROUP_CPU_MAX)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def _allowed_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return list(range(os.cpu_count() or 1))


def cgroup_quota(path: Path) -> float | None:
    """The CPU quota in cores from a cgroup v2 ``cpu.max`` file (``max 100000``: none)."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


# -- other work, judged now -----------------------------------------------------------------


@dataclass
class _Share:
    """This process's part of the run: one of ``jobs`` processes that split the free cores;
    the run's processes are ``root`` and its descendants."""

    jobs: int = 1
    root: int = field(default_factory=os.getpid)
    judged: int | None = None  # free cores at ``judged_at`` (monotonic seconds)
    judged_at: float = 0.0


_share = _Share()
_clock, _sleep = time.monotonic, time.sleep  # replaced by the tests' clock


def share_cores(*, jobs: int, root: int | None = None) -> None:
    """This process is one of ``jobs`` processes of one run, whose top process is ``root``
    (default: this one): they split the free cores, and none counts as other work."""
    _share.jobs = max(1, jobs)
    _share.root = root if root is not None else os.getpid()
    rejudge()


def sharing() -> int:
    """How many processes of this run split the cores."""
    return _share.jobs


def rejudge() -> None:
    """Judge the free cores again at the next question (a trial starts)."""
    _share.judged = None


def _busy_seconds(cpus: list[int]) -> float:
    """CPU seconds spent on ``cpus`` since boot, not idle (every process's)."""
    per_cpu = psutil.cpu_times(percpu=True)
    total = 0.0
    for index in cpus:
        if index < len(per_cpu):
            times = per_cpu[index]._asdict()
            # guest time is counted in user time already; iowait is idle
            total += sum(v for k, v in times.items() if k not in _NOT_BUSY)
    return total


def _run_seconds(root: int) -> float:
    """CPU seconds that this run's processes (``root`` and its descendants) have used."""
    try:
        top = psutil.Process(root)
        processes = [top, *top.children(recursive=True)]
    except psutil.Error:
        processes = [psutil.Process()]
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:  # it ended meanwhile
            continue
        total += times.user + times.system
    return total


def other_work(seconds: float = SAMPLE_SECONDS) -> float:
    """Cores busy now with processes outside this run: the CPU time used on this process's
    cores over ``seconds``, less what this run's own processes used, per second of wall
    time. Work that ended before the sample does not count."""
    cpus, root = _allowed_cpus(), _share.root
    started, busy, own = _clock(), _busy_seconds(cpus), _run_seconds(root)
    _sleep(seconds)
    wall = max(_clock() - started, 1e-3)
    others = (_busy_seconds(cpus) - busy) - (_run_seconds(root) - own)
    return max(0.0, others / wall)


def free_cores() -> int:
    """The available cores less those other work keeps busy now, at least one; judged
    again when a trial starts (``rejudge``) or after ``REJUDGE_SECONDS``."""
    now = _clock()
    if _share.judged is None or now - _share.judged_at > REJUDGE_SECONDS:
        cores = available_cores()
        busy = other_work()
        _share.judged = max(1, min(cores, cores - round(busy)))
        _share.judged_at = now
        if _share.judged < cores:
            log.info(
                "other work keeps %.1f of %d cores busy: this run uses %d",
                busy,
                cores,
                _share.judged,
            )
    return _share.judged


def process_threads() -> int:
    """Threads for this process: its share of the free cores."""
    return max(1, free_cores() // _share.jobs)


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def default_threads(model: nn.Module) -> int:
    """Threads for one process training ``model`` when the config does not say."""
    return 1 if trainable_parameters(model) < SMALL_MODEL_PARAMS else process_threads()


@contextmanager
def inference_threads(threads: int | None = None) -> Iterator[int]:
    """Run a block (a prediction, a frozen backbone's pass) on ``threads`` torch threads,
    default this process's share of the free cores, and put the count back afterwards."""
    import torch

    before = torch.get_num_threads()
    chosen = threads or process_threads()
    torch.set_num_threads(chosen)
    try:
        yield chosen
    finally:
        torch.set_num_threads(before)


@contextmanager
def limited_threads(threads: int) -> Iterator[None]:
    """BLAS and OpenMP on at most ``threads`` threads while a block runs (a scikit-learn
    fit beside other trials), and torch on ``threads`` from now on, as a fit of the loop
    leaves it: on a busy core even a tiny torch operation on more threads than are free
    waits milliseconds for them."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    with threadpool_limits(limits=threads):
        yield


# -- --jobs auto ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Speeds:
    """Training steps per second of one model, measured on this machine.

    Attributes:
        one: one process on one thread.
        every: one process on ``cores`` threads.
        parallel: ``cores`` trainings side by side on one thread each, all together.
        cores: the cores ``every`` and ``parallel`` used.
    """

    one: float
    every: float
    parallel: float
    cores: int


@dataclass(frozen=True)
class Plan:
    """How a study uses the cores: ``jobs`` trials side by side, ``threads`` each."""

    jobs: int
    threads: int
    reason: str


# fewer trials side by side win when their measured speed is at least this share of the
# fastest plan's: each trial ends sooner (the sampler and the pruner learn from it
# earlier), and fewer copies of the model are held in memory
FEWER_JOBS_TOLERANCE = 0.9


def plan_jobs(
    *,
    cores: int,
    trainable: int,
    speeds: Speeds | None = None,
    trials_left: int | None = None,
    memory_jobs: int | None = None,
) -> Plan:
    """The ``--jobs auto`` decision for a study on ``cores`` free cores.

    A small model (under ``SMALL_MODEL_PARAMS`` trainable weights) runs one trial per core.
    A larger one runs the plan whose measured (or, between the measured ends, estimated)
    steps per second over all trials is highest, preferring fewer trials with more threads
    when they come within ``FEWER_JOBS_TOLERANCE`` of it. Never more trials than are left,
    nor than ``memory_jobs`` (copies of the model that fit in memory).
    """
    limit = max(1, min(cores, trials_left or cores, memory_jobs or cores))
    limits = f" (at most {limit} fit: trials left, memory)" if limit < cores else ""
    if trainable < SMALL_MODEL_PARAMS or cores == 1:
        return Plan(limit, 1, f"{trainable:,} trainable weights: one trial per core{limits}")
    if speeds is None:
        return Plan(1, cores, "not measured: one trial on every core")
    rates = {jobs: _estimated_rate(speeds, jobs) for jobs in _job_counts(cores) if jobs <= limit}
    best = max(rates.values())
    jobs = min(j for j, rate in rates.items() if rate >= FEWER_JOBS_TOLERANCE * best)
    shown = ", ".join(f"{j}x{cores // j}: {rate:.1f}" for j, rate in sorted(rates.items()))
    return Plan(jobs, cores // jobs, f"steps/s by trials x threads: {shown}{limits}")


def _job_counts(cores: int) -> list[int]:
    """Trials side by side worth comparing: the divisors of ``cores``."""
    return [jobs for jobs in range(1, cores + 1) if cores % jobs == 0]


def _estimated_rate(speeds: Speeds, jobs: int) -> float:
    """Steps per second of ``jobs`` trials on ``cores // jobs`` threads each: measured at
    both ends; between them one trial's speed-up from its threads follows Amdahl's law
    fitted to the measured one, and the slow-down of running side by side (memory
    bandwidth, caches) grows in proportion to the trials."""
    cores = speeds.cores
    if jobs == 1:
        return speeds.every
    if jobs == cores:
        return speeds.parallel
    speedup = max(speeds.every / speeds.one, 1.0)
    # Amdahl: speedup(n) = 1 / ((1 - p) + p / n), p fitted at n = cores
    parallel_part = min(1.0, (1 - 1 / speedup) / (1 - 1 / cores))
    threads = cores // jobs
    one_trial = speeds.one / ((1 - parallel_part) + parallel_part / threads)
    crowding = speeds.parallel / (cores * speeds.one)  # 1.0: no slow-down side by side
    crowding_here = 1 - (1 - crowding) * (jobs - 1) / (cores - 1)
    return jobs * one_trial * crowding_here


def memory_jobs(model_bytes: int, trainable_bytes: int) -> int:
    """How many processes training this model fit in the available memory (weights,
    gradients and two optimizer moments, plus a process's own ~300 MB), using 80% of it."""
    per_process = model_bytes + 3 * trainable_bytes + 300 * 2**20
    return max(1, int(0.8 * psutil.virtual_memory().available // per_process))
