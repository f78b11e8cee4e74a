"""How many CPU threads a training process uses, so that processes do not oversubscribe the
cores (two processes that each use every core slow each other down many times over).

The cores a process may use are its CPU affinity (``taskset``, cpusets), capped by a cgroup
v2 CPU quota (``docker run --cpus``, Kubernetes limits), which ``os.cpu_count()`` and
torch's default both ignore. ``--jobs N`` divides them between the N workers. One process
takes the cores that other work leaves free when it starts (the load average), except for a
small model, whose steps are too short for a second thread to pay for its synchronisation
(``bench/threads.py`` measures both).
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is not imported to count cores
    from torch import nn

# trainable parameters below which one thread trains faster than two (see the README's
# benchmarks: the tabular MLP runs faster on one thread, the digits CNN on two)
SMALL_MODEL_PARAMS = 20_000
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cores() -> int:
    """The cores this process may use: its affinity, capped by a cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        cores = os.cpu_count() or 1
    quota = cgroup_quota(CGROUP_CPU_MAX)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


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


def threads_per_job(jobs: int) -> int:
    """Threads for each of ``jobs`` processes sharing this machine."""
    return max(1, available_cores() // max(jobs, 1))


def default_threads(model: nn.Module) -> int:
    """Threads for one process training ``model`` when the config does not say."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return 1 if trainable < SMALL_MODEL_PARAMS else free_cores()


@functools.cache
def free_cores() -> int:
    """The cores other work leaves free, judged once per process (the first time a model
    trains): the available cores less the one-minute load average, rounded, at least one.
    Work that starts later is not seen: set ``train.threads`` on a shared machine."""
    cores = available_cores()
    try:
        busy = os.getloadavg()[0]
    except OSError:  # no load average on this system
        busy = 0.0
    return max(1, min(cores, cores - round(busy)))
