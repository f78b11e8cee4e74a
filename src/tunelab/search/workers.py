"""Worker processes: ``--jobs N`` starts N of them on one study; each runs trials until the
study has enough. They split the free cores between them (judged again at every trial, see
``tunelab.training.cores``). A worker started by ``tunelab run`` stops when that process
dies, so a killed run leaves no orphans behind (its running trials are retried on resume)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import optuna

from tunelab.config import load_config
from tunelab.errors import FatalError
from tunelab.results.rundir import RunDir
from tunelab.search.budget import Budget

log = logging.getLogger("tunelab")
PARENT_POLL_SECONDS = 1.0


def run_workers(
    run: RunDir,
    jobs: int,
    study: optuna.Study,
    *,
    budget: Budget,
    poll: Callable[[optuna.Study], None] | None,
) -> list[int]:
    """Start ``jobs`` worker processes on the study and wait; they split the free cores
    between them. Returns their exit codes."""
    command = [sys.executable, "-m", "tunelab.cli", "worker", str(run.path)]
    command += ["--share", str(jobs), "--parent", str(os.getpid())]
    if budget.timeout_end is not None:
        command += ["--deadline", repr(budget.timeout_end)]
    if budget.end is not None:
        command += ["--budget-end", repr(budget.end)]
    workers = [subprocess.Popen(command) for _ in range(jobs)]
    try:
        while any(w.poll() is None for w in workers):
            if poll is not None:
                poll(study)
            time.sleep(1.0)
    except KeyboardInterrupt:
        for worker in workers:
            worker.send_signal(signal.SIGINT)
        for worker in workers:
            worker.wait()
        raise
    return [w.returncode for w in workers]


def worker_config_path(run_dir: Path) -> Path:
    """The study's config in a run directory, or a clear error for anything else."""
    path = RunDir(run_dir).config
    if not path.is_file():
        raise FatalError(
            f"{str(run_dir)!r} is not the run directory of a started study (no config.yaml); "
            "start the study with 'tunelab run CONFIG' and give its run directory"
        )
    cfg = load_config(path)
    run = RunDir(run_dir)
    trained_once = run.final.is_dir() and not run.study_db.exists()
    if not cfg.search.space or (trained_once and cfg.search.storage is None):
        raise FatalError(
            f"{str(run_dir)!r} holds a 'tunelab train' run, not a study (no search.space, "
            "or a final model without a study); tunelab worker joins a study started with "
            "'tunelab run CONFIG'"
        )
    return path


def watch_parent(parent: int) -> None:
    """End this process when ``parent`` is gone (a SIGKILLed ``tunelab run``): the trial in
    progress stays RUNNING, goes stale, and is retried when the study resumes."""

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_SECONDS)
            if os.getppid() != parent:
                log.error("the tunelab run process %d ended; this worker stops", parent)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="tunelab-parent-watch", daemon=True).start()
