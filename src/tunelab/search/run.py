"""``tunelab run``: search, keep the best, refit it, evaluate once on the test rows.

Resuming is re-running: the study lives in its storage, so finished trials are kept and
only the missing ones are trained. ``jobs`` local worker processes share the study.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from tunelab.config import ParamSpec, RunConfig, load_config
from tunelab.errors import FatalError
from tunelab.evaluation.fitting import fit_on_rows
from tunelab.evaluation.holdout import evaluate_and_write
from tunelab.evaluation.prepare import Prepared, prepare
from tunelab.results.artifacts import TrialArtifacts
from tunelab.results.leaderboard import leaderboard
from tunelab.results.rundir import RunDir, open_run_dir, write_json
from tunelab.search.objective import EpochHook, Objective
from tunelab.search.optimize import (
    TrialHook,
    failure_message,
    finished,
    optimize,
    trailing_failures,
)
from tunelab.search.space import apply_params, decode
from tunelab.search.study import make_storage, open_study, redact, storage_url
from tunelab.search.workers import run_workers, watch_parent, worker_config_path

log = logging.getLogger("tunelab")


@dataclass
class StudyResult:
    """How a study ended.

    Attributes:
        failed: the study stopped on failures (``stop_reason`` says which); no refit ran.
        metrics: the refit's ``metrics.json``, or None without a refit.
    """

    run_dir: Path
    study: optuna.Study
    stop_reason: str
    metrics: dict[str, Any] | None
    failed: bool = False


def resumable(cfg: RunConfig) -> Callable[[RunDir], bool]:
    """For ``open_run_dir``: a run directory resumes when it holds a study of the same
    config (more trials or time allowed) or one that never started."""

    def check(run: RunDir) -> bool:
        if not run.config.is_file() or not run.started_study():
            return True  # a run that failed before any trial holds nothing to keep
        previous = load_config(run.config)
        same = previous.model_copy(
            update={
                "search": previous.search.model_copy(
                    update={"n_trials": cfg.search.n_trials, "timeout": cfg.search.timeout}
                )
            }
        )
        if same != cfg:
            changed = _differences(same.model_dump(), cfg.model_dump())
            raise FatalError(
                f"{run.path} holds a study of another config (changed: "
                f"{', '.join(changed[:6])}); re-run with the same config to resume, or pass "
                "--out OTHER_DIR or --overwrite"
            )
        return True

    return check


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key in sorted(set(a) | set(b)):
        name = f"{prefix}{key}"
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            out += _differences(a[key], b[key], name + ".")
        elif a.get(key) != b.get(key):
            out.append(name)
    return out


def setup(cfg: RunConfig, run: RunDir) -> tuple[Prepared, optuna.Study, TrialArtifacts]:
    """Load the data and open the study and its artifacts (main process and workers)."""
    prepared = replace(prepare(cfg), cache_dir=run.features)  # shared by the trials
    url = storage_url(cfg, run.path)
    study = open_study(cfg, make_storage(url, cfg.search), metric=prepared.metric)
    study.set_user_attr("metric", prepared.metric)
    study.set_user_attr("storage", redact(url))
    return prepared, study, TrialArtifacts(run.artifacts)


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
    run = open_run_dir(cfg, out, overwrite=overwrite, resume=resumable(cfg))
    run.artifacts.mkdir(exist_ok=True)
    with logging_to(run.log):
        prepared, study, artifacts = setup(cfg, run)
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
                reason, failed = _with_workers(run, jobs, study, deadline=deadline, poll=poll)
            else:
                objective = Objective(cfg, prepared, artifacts, on_epoch=on_epoch)
                reason, failed = optimize(study, objective, cfg, hooks=hooks, deadline=deadline)
        except KeyboardInterrupt:
            # what finished is in the storage already; write the tables so the run can be read
            log.info("interrupted; %d trials finished", finished(study))
            write_study_results(run, study, cfg.search.space)
            raise
        write_study_results(run, study, cfg.search.space)
        if failed or not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            return StudyResult(run.path, study, reason, None, failed=failed)
        metrics = refit_best(cfg, prepared, study, run)
        return StudyResult(run.path, study, reason, metrics)


def _with_workers(
    run: RunDir,
    jobs: int,
    study: optuna.Study,
    *,
    deadline: float | None,
    poll: Callable[[optuna.Study], None] | None,
) -> tuple[str, bool]:
    codes = run_workers(run, jobs, study, deadline=deadline, poll=poll)
    if all(code == 0 for code in codes):
        return "n_trials", False
    log.warning("worker exit codes: %s", codes)
    reasons = trailing_failures(study)
    if reasons:
        return failure_message(reasons), True
    return f"workers exited {codes}; see {run.log}", True


def run_worker(
    run_dir: Path,
    *,
    threads: int | None = None,
    deadline: float | None = None,
    parent: int | None = None,
) -> tuple[str, bool]:
    """A worker process: join the study of ``run_dir`` and run trials until done."""
    if parent is not None:
        watch_parent(parent)
    cfg = load_config(worker_config_path(run_dir))
    if threads:
        cfg = apply_params(cfg, {"train.threads": threads})
    run = RunDir(run_dir)
    with logging_to(run.log):
        prepared, study, artifacts = setup(cfg, run)
        return optimize(study, Objective(cfg, prepared, artifacts), cfg, deadline=deadline)


def write_study_results(run: RunDir, study: optuna.Study, space: dict[str, ParamSpec]) -> None:
    """leaderboard.csv, best_params.json (as config values) and importances.json."""
    leaderboard(study).to_csv(run.leaderboard, index=False)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return
    best = study.best_trial
    params = decode(space, best.params)
    run.best_params.write_text(json.dumps(params, indent=2) + "\n")
    importances: dict[str, float] = {}
    if len(complete) >= 3 and best.params:
        try:
            with warnings.catch_warnings():  # few trials per regime: say so in the log only
                warnings.simplefilter("ignore")
                importances = dict(optuna.importance.get_param_importances(study))
        except (RuntimeError, ValueError, TypeError) as exc:
            log.info("no parameter importances: %s", exc)
    write_json(run.importances, importances)


def refit_best(
    cfg: RunConfig, prepared: Prepared, study: optuna.Study, run: RunDir
) -> dict[str, Any]:
    """Refit the best parameters on every non-test row, then evaluate once on the test rows.

    The refit has no validation rows, so it trains for the number of epochs the best trial's
    folds kept (their median) instead of early stopping.
    """
    best = study.best_trial
    params = decode(cfg.search.space, best.params)
    tuned = apply_params(cfg, params)
    epochs = int(np.median(best.user_attrs.get("best_epochs", [tuned.train.epochs])))
    refit = apply_params(
        tuned,
        {
            "train.epochs": max(epochs, 1),
            "early_stopping.enabled": False,
            "early_stopping.restore_best": False,
        },
    )
    if tuned.data != cfg.data:  # a searched encoding (data.image_size): load at the best
        prepared = prepare(tuned)
    rows = np.sort(np.concatenate([prepared.split.train, prepared.split.validation]))
    fitted = fit_on_rows(refit, prepared, rows, None)
    extra = {
        "best_trial": best.number,
        "best_value": best.value,
        "best_value_std": best.user_attrs.get("std"),
        "fold_scores": best.user_attrs.get("fold_scores"),
        "best_params": params,
        "refit_epochs": refit.train.epochs,
        "trials": {
            state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,)))
            for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        },
    }
    return evaluate_and_write(run, prepared, fitted, seed=cfg.seed, extra=extra)


@contextmanager
def logging_to(path: Path) -> Iterator[None]:
    """tunelab's and Optuna's log records (failed trials' tracebacks included) go to
    ``path`` while the block runs, and nowhere else: the terminal shows one line each."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    optuna.logging.disable_default_handler()
    optuna_log = logging.getLogger("optuna")
    saved = [(logger, logger.level) for logger in (log, optuna_log)]
    for logger in (log, optuna_log):
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
        handler.close()
        optuna.logging.enable_default_handler()


__all__ = ["StudyResult", "run_study", "run_worker", "setup"]
