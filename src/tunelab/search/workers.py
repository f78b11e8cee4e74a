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
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from tunelab.config import apply_params, load_config
from tunelab.errors import FatalError
from tunelab.evaluation.prepare import prepare
from tunelab.observer import Observer
from tunelab.results.rundir import RunDir
from tunelab.search.budget import Budget, budget_for
from tunelab.search.objective import Objective
from tunelab.search.optimize import finished, optimize
from tunelab.search.space import params_text
from tunelab.search.study import open_run_study
from tunelab.training.cores import share_cores

log = logging.getLogger("tunelab")
PARENT_POLL_SECONDS = 1.0
WAIT_SECONDS = 1.0  # between looks at the study while workers run


def run_workers(
    run: RunDir,
    jobs: int,
    study: optuna.Study,
    *,
    budget: Budget,
    observer: Observer,
    quiet: bool = False,
) -> list[int]:
    """Start ``jobs`` worker processes on the study and wait; they split the free cores
    between them. Returns their exit codes.

    Args:
        observer: polled (``poll``) while they run.
        quiet: the workers print nothing (their lines would break a live view).
    """
    command = [sys.executable, "-m", "tunelab.cli", "worker", str(run.path)]
    command += ["--share", str(jobs), "--parent", str(os.getpid())]
    command += ["--quiet"] if quiet else []
    if budget.timeout_end is not None:
        command += ["--deadline", repr(budget.timeout_end)]
    if budget.end is not None:
        command += ["--budget-end", repr(budget.end)]
    workers = [subprocess.Popen(command) for _ in range(jobs)]
    stopped: set[int] = set()
    try:
        while any(w.poll() is None for w in workers):
            observer.poll(study)
            if budget.out_of_time():
                stopped |= _stop_for_the_budget(workers)
            _wait(workers, WAIT_SECONDS)
    except KeyboardInterrupt:
        for worker in workers:
            worker.send_signal(signal.SIGINT)
        for worker in workers:
            worker.wait()
        raise
    return [0 if w.pid in stopped else w.returncode for w in workers]


def _stop_for_the_budget(workers: list[subprocess.Popen[bytes]]) -> set[int]:
    """End the workers still running when the time left is the refit's and the report's:
    by then their trials have stopped (pruned at the search's deadline), so what is left
    is starting up or exiting."""
    running = {w.pid for w in workers if w.poll() is None}
    for worker in workers:
        if worker.pid in running:
            log.info("worker %d stopped: the time budget ends", worker.pid)
            worker.terminate()
    return running


def _wait(workers: list[subprocess.Popen[bytes]], seconds: float) -> None:
    """Sleep up to ``seconds``, less once every worker has ended."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and any(w.poll() is None for w in workers):
        time.sleep(0.1)


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


def run_worker(
    run_dir: Path,
    *,
    threads: int | None = None,
    deadline: float | None = None,
    budget_end: float | None = None,
    parent: int | None = None,
    say: Callable[[str], None] | None = None,
    share: int = 1,
) -> tuple[str, bool]:
    """A worker process (``tunelab worker``): join the study of ``run_dir`` and run trials
    until done.

    Args:
        threads: torch threads for every trial; default this worker's share of the cores
            that other work leaves free, judged at every trial.
        deadline: ``search.timeout``'s end (Unix time).
        budget_end: the whole run's end (``budget``); the worker stops early enough for
            the refit and ensemble, as the main process does, and prunes a trial that
            would run past that.
        parent: the ``tunelab run`` process that started this worker: the worker ends
            with it, and its processes are not other work.
        say: told, in one line each, that the worker joined, and each trial it starts
            and ends.
        share: the workers of that run, which split the free cores.
    """
    share_cores(jobs=share, root=parent)
    if parent is not None:
        watch_parent(parent)
    cfg = load_config(worker_config_path(run_dir))
    if threads:
        cfg = apply_params(cfg, {"train.threads": threads})
    run = RunDir(run_dir)
    lines = WorkerLines(say or (lambda line: None))
    with run.logging():
        prepared = replace(prepare(cfg), cache_dir=run.features)  # shared by the trials
        study, artifacts = open_run_study(cfg, run.path, metric=prepared.metric)
        lines.say(
            f"{lines.me} joined study {study.study_name} in {run_dir}: {finished(study)} of "
            f"{cfg.search.n_trials} trials finished"
        )
        budget = budget_for(cfg, prepared, end=budget_end, timeout_end=deadline)
        objective = Objective(cfg, prepared, artifacts, observer=lines, budget=budget)
        return optimize(study, objective, cfg, observer=lines, budget=budget)


class WorkerLines(Observer):
    """A worker's lines: each trial it starts and ends."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say, self.me = say, f"worker {os.getpid()}"

    def trial_started(self, number: int, params: dict[str, Any]) -> None:
        self.say(f"{self.me}: trial {number} started ({params_text(params)})")

    def trial_ended(self, study: optuna.Study, trial: FrozenTrial) -> None:
        value = f" value {trial.value:.4f}" if trial.value is not None else ""
        self.say(f"{self.me}: trial {trial.number} {trial.state.name.lower()}{value}")
