"""``tunelab run``: search, keep the best, refit, evaluate once on the test rows.

Resuming is re-running: the study lives in its storage, so completed trials are kept and
only the missing ones are trained. ``jobs`` local worker processes share the study.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial, TrialState

from tunelab.config import RunConfig, load_config
from tunelab.errors import ConfigError, FatalError
from tunelab.pipeline import Prepared, evaluate_and_write, fit_on_rows, prepare
from tunelab.results.leaderboard import leaderboard
from tunelab.results.rundir import write_json
from tunelab.search.objective import EpochHook, Objective
from tunelab.search.space import apply_params
from tunelab.search.study import artifact_store, make_storage, open_study, redact, storage_url

TrialHook = Callable[[optuna.Study, FrozenTrial], None]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
log = logging.getLogger("tunelab")


@dataclass
class StudyResult:
    run_dir: Path
    study: optuna.Study
    stop_reason: str
    metrics: dict[str, Any] | None


class FailureGuard:
    """Stops the study after ``limit`` failed trials in a row, naming the likely cause."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.reasons: list[str] = []

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state == TrialState.FAIL:
            self.reasons.append(str(trial.user_attrs.get("fail_reason", "unknown error")))
        elif trial.state in FINISHED:
            self.reasons = []
        if self.tripped:
            study.stop()

    @property
    def tripped(self) -> bool:
        return len(self.reasons) >= self.limit

    def message(self) -> str:
        common = max(set(self.reasons), key=self.reasons.count)
        return (
            f"stopped after {len(self.reasons)} failed trials in a row; the most common "
            f"reason: {common}"
        )


def study_directory(cfg: RunConfig, out: str | Path | None, *, overwrite: bool) -> Path:
    """The run directory; an existing one resumes if it holds the same config."""
    import shutil

    path = Path(out) if out is not None else Path("runs") / cfg.name
    saved = path / "config.yaml"
    if saved.is_file() and not overwrite:
        previous = load_config(saved)
        # a resumed study may ask for more trials or time; anything else must match
        same = previous.model_copy(
            update={
                "search": previous.search.model_copy(
                    update={"n_trials": cfg.search.n_trials, "timeout": cfg.search.timeout}
                )
            }
        )
        # a run that failed before any trial (say, a bad storage URL) holds nothing to keep
        artifacts = path / "artifacts"
        started = (path / "study.db").is_file() or (
            artifacts.is_dir() and any(artifacts.iterdir())
        )
        if same != cfg and started:
            changed = _differences(same.model_dump(), cfg.model_dump())
            raise FatalError(
                f"{path} holds a study of another config (changed: {', '.join(changed[:6])}); "
                "re-run with the same config to resume, or pass --out OTHER_DIR or --overwrite"
            )
    elif path.exists() and any(path.iterdir()) and not overwrite:
        raise FatalError(
            f"{path} exists and is not a tunelab run; pass --out OTHER_DIR or --overwrite"
        )
    if overwrite and path.exists():
        shutil.rmtree(path)
    (path / "artifacts").mkdir(parents=True, exist_ok=True)
    saved.write_text(cfg.to_yaml())
    return path


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out: list[str] = []
    for key in keys:
        name = f"{prefix}{key}"
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            out += _differences(a[key], b[key], name + ".")
        elif a.get(key) != b.get(key):
            out.append(name)
    return out


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def optimize(
    study: optuna.Study,
    objective: Objective,
    cfg: RunConfig,
    *,
    hooks: list[TrialHook] | None = None,
    deadline: float | None = None,
) -> str:
    """Run trials until ``n_trials`` have finished (in any process), the deadline, or too
    many failures in a row. Returns why it stopped."""
    guard = FailureGuard(cfg.search.max_consecutive_failures)
    keep = TopCheckpoints(objective.store, cfg.search.keep_top_k)
    callbacks: list[TrialHook] = [guard, keep, *(hooks or [])]
    while True:
        with warnings.catch_warnings():  # experimental in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # a dead process's trial is retried
        running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        if finished(study) + running >= cfg.search.n_trials:
            return "n_trials"
        if deadline is not None and time.time() >= deadline:
            return "timeout"
        study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=callbacks)
        if guard.tripped:
            log.error(guard.message())
            return guard.message()


class TopCheckpoints:
    """Deletes the predictor checkpoints of trials outside the best ``k`` (histories and
    out-of-fold predictions are small and kept for every trial)."""

    def __init__(self, store: FileSystemArtifactStore, k: int) -> None:
        self.store, self.k = store, k

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(complete) <= self.k:
            return
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        ranked = sorted(complete, key=lambda t: t.value or 0.0, reverse=maximize)
        for old in ranked[self.k :]:
            artifact = old.user_attrs.get("artifacts", {}).get("predictor")
            if artifact and (Path(self.store._base_path) / artifact).exists():
                with contextlib.suppress(ArtifactNotFound):  # another worker removed it
                    self.store.remove(artifact)
        for other in study.get_trials(deepcopy=False, states=(TrialState.PRUNED, TrialState.FAIL)):
            artifact = other.user_attrs.get("artifacts", {}).get("predictor")
            if artifact and (Path(self.store._base_path) / artifact).exists():
                with contextlib.suppress(ArtifactNotFound):  # another worker removed it
                    self.store.remove(artifact)


def setup(cfg: RunConfig, run_dir: Path) -> tuple[Prepared, optuna.Study, FileSystemArtifactStore]:
    """Load the data and open the study and artifact store (main process and workers)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    prepared = prepare(cfg)
    url = storage_url(cfg, run_dir)
    study = open_study(cfg, make_storage(url, cfg.search), metric=prepared.metric)
    study.set_user_attr("metric", prepared.metric)
    study.set_user_attr("storage", redact(url))
    return prepared, study, artifact_store(cfg, run_dir)


def run_study(
    cfg: RunConfig,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    jobs: int = 1,
    on_epoch: EpochHook | None = None,
    hooks: list[TrialHook] | None = None,
    poll: Callable[[optuna.Study], None] | None = None,
) -> StudyResult:
    """Search, then refit the best parameters and evaluate once on the test rows."""
    run_dir = study_directory(cfg, out, overwrite=overwrite)
    _log_to(run_dir / "run.log")
    prepared, study, store = setup(cfg, run_dir)
    log.info(
        "study %s: %d of %d trials finished; storage %s",
        study.study_name,
        finished(study),
        cfg.search.n_trials,
        study.user_attrs.get("storage"),
    )
    deadline = time.time() + cfg.search.timeout if cfg.search.timeout else None
    try:
        if jobs > 1:
            reason = run_workers(run_dir, jobs, study, deadline=deadline, poll=poll)
        else:
            objective = Objective(cfg, prepared, store, on_epoch=on_epoch)
            reason = optimize(study, objective, cfg, hooks=hooks, deadline=deadline)
    except KeyboardInterrupt:
        # what finished is in the storage already; write the tables so the run can be read
        log.info("interrupted; %d trials finished", finished(study))
        write_study_results(run_dir, study)
        raise
    write_study_results(run_dir, study)
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return StudyResult(run_dir, study, reason, None)
    metrics = refit_best(cfg, prepared, study, run_dir)
    return StudyResult(run_dir, study, reason, metrics)


def run_workers(
    run_dir: Path,
    jobs: int,
    study: optuna.Study,
    *,
    deadline: float | None,
    poll: Callable[[optuna.Study], None] | None,
) -> str:
    """Start ``jobs`` worker processes on the study and wait; CPU threads are split."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    command = [
        sys.executable,
        "-m",
        "tunelab.cli",
        "worker",
        str(run_dir),
        "--threads",
        str(threads),
    ]
    if deadline is not None:
        command += ["--deadline", str(deadline)]
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
    codes = [w.returncode for w in workers]
    if any(code not in (0,) for code in codes):
        log.warning("worker exit codes: %s", codes)
    return "n_trials" if all(code == 0 for code in codes) else f"workers exited {codes}"


def run_worker(run_dir: Path, *, threads: int | None = None, deadline: float | None = None) -> str:
    """A worker process: join the study of ``run_dir`` and run trials until done."""
    cfg = load_config(run_dir / "config.yaml")
    if threads:
        cfg = apply_params(cfg, {"train.threads": threads})
    _log_to(run_dir / "run.log")
    prepared, study, store = setup(cfg, run_dir)
    return optimize(study, Objective(cfg, prepared, store), cfg, deadline=deadline)


def write_study_results(run_dir: Path, study: optuna.Study) -> None:
    """leaderboard.csv, best_params.json and importances.json."""
    board = leaderboard(study)
    board.to_csv(run_dir / "leaderboard.csv", index=False)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return
    best = study.best_trial
    (run_dir / "best_params.json").write_text(json.dumps(best.params, indent=2) + "\n")
    importances: dict[str, float] = {}
    if len(complete) >= 3 and best.params:
        try:
            with warnings.catch_warnings():  # few trials per regime: say so in the log only
                warnings.simplefilter("ignore")
                importances = dict(optuna.importance.get_param_importances(study))
        except (RuntimeError, ValueError) as exc:
            log.info("no parameter importances: %s", exc)
    write_json(run_dir / "importances.json", importances)


def refit_best(
    cfg: RunConfig, prepared: Prepared, study: optuna.Study, run_dir: Path
) -> dict[str, Any]:
    """Refit the best parameters on every non-test row, then evaluate once on the test rows.

    The refit has no validation rows, so it trains for the number of epochs the best trial's
    folds chose (their median best epoch) instead of early stopping.
    """
    best = study.best_trial
    tuned = apply_params(cfg, best.params)
    epochs = int(np.median(best.user_attrs.get("best_epochs", [tuned.train.epochs])))
    refit = apply_params(
        tuned,
        {
            "train.epochs": max(epochs, 1),
            "early_stopping.enabled": False,
            "early_stopping.restore_best": False,
        },
    )
    rows = np.sort(np.concatenate([prepared.split.train, prepared.split.validation]))
    fitted = fit_on_rows(refit, prepared, rows, None)
    extra = {
        "best_trial": best.number,
        "best_value": best.value,
        "best_value_std": best.user_attrs.get("std"),
        "fold_scores": best.user_attrs.get("fold_scores"),
        "best_params": best.params,
        "refit_epochs": refit.train.epochs,
        "trials": {
            state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,)))
            for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        },
    }
    return evaluate_and_write(run_dir, prepared, fitted, seed=cfg.seed, extra=extra)


def _log_to(path: Path) -> None:
    if any(
        isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path.resolve()
        for h in log.handlers
    ):
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    for logger in (log, logging.getLogger("optuna")):
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


__all__ = ["ConfigError", "StudyResult", "run_study", "run_worker"]
