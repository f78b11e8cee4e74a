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
from typing import Any, Literal

import optuna
from optuna.trial import TrialState

from tunelab.config import ParamSpec, RunConfig, apply_params, load_config
from tunelab.data import take
from tunelab.ensembles.build import build, decide
from tunelab.errors import FatalError
from tunelab.evaluation.holdout import evaluate_and_write, test_outputs
from tunelab.evaluation.prepare import Prepared, prepare
from tunelab.evaluation.refit import refit
from tunelab.ladder import Watcher, run_ladder
from tunelab.report import report_or_log
from tunelab.results.artifacts import TrialArtifacts
from tunelab.results.leaderboard import leaderboard, ranked
from tunelab.results.predictor import AnyPredictor
from tunelab.results.rundir import RunDir, open_run_dir, write_json
from tunelab.results.trial_record import record
from tunelab.search.budget import Budget, fold_fraction, run_budget
from tunelab.search.jobs import jobs_after_a_trial
from tunelab.search.objective import EpochHook, Objective
from tunelab.search.optimize import (
    TrialHook,
    failure_message,
    finished,
    optimize,
    trailing_failures,
)
from tunelab.search.space import decode
from tunelab.search.study import (
    artifact_folder,
    make_storage,
    open_study,
    redact,
    storage_url,
)
from tunelab.search.workers import run_workers, watch_parent, worker_config_path
from tunelab.tracking import Tracking, final_record
from tunelab.training.cores import share_cores
from tunelab.training.metrics import compute_metrics, paired_bootstrap_difference

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
        # more trials or time, another budget, ensemble or ladder: the trials stay valid
        same = previous.model_copy(
            update={
                "search": previous.search.model_copy(
                    update={"n_trials": cfg.search.n_trials, "timeout": cfg.search.timeout}
                ),
                "ensemble": cfg.ensemble,
                "budget": cfg.budget,
                "ladder": cfg.ladder,
                "tracking": cfg.tracking,  # trackers may be added to a running study
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
    with warnings.catch_warnings():  # experimental in Optuna; the dashboard shows the name
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([prepared.metric])
    study.set_user_attr("metric", prepared.metric)
    study.set_user_attr("storage", redact(url))
    return prepared, study, TrialArtifacts(artifact_folder(cfg, run.path))


def run_study(
    cfg: RunConfig,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    jobs: int | Literal["auto"] = 1,
    on_epoch: EpochHook | None = None,
    hooks: list[TrialHook] | None = None,
    poll: Callable[[optuna.Study], None] | None = None,
    ladder_watcher: Watcher | None = None,
) -> StudyResult:
    """Search, refit the best parameters, combine the best trials when that helps, and
    evaluate the final predictor once on the test rows (then measure the ablation ladder of
    the best recipe when ``ladder.enabled``).

    Args:
        jobs: trials side by side (worker processes), or ``auto`` (``tunelab run``'s
            default): from the free cores and a measurement of the recipe's model.
    """
    started = time.time()
    run = open_run_dir(cfg, out, overwrite=overwrite, resume=resumable(cfg))
    run.artifacts.mkdir(exist_ok=True)
    share_cores(jobs=1)  # this process: trials it runs itself, the refit, the ensemble
    with logging_to(run.log):
        prepared, study, artifacts = setup(cfg, run)
        log.info(
            "study %s: %d of %d trials finished; storage %s",
            study.study_name,
            finished(study),
            cfg.search.n_trials,
            study.user_attrs.get("storage"),
        )
        budget = _budget(cfg, prepared, started)
        tracking = Tracking.open(cfg, run, metric=prepared.metric, study=study, artifacts=artifacts)
        objective = Objective(cfg, prepared, artifacts, on_epoch=on_epoch)
        hooks = [*(hooks or []), tracking.on_trial]
        try:
            failed = False
            if jobs == "auto":  # a trial timed here first, unless the study has some
                jobs, reason, failed = jobs_after_a_trial(
                    cfg, prepared, run, study, lambda one: optimize(
                        study, objective, one, hooks=hooks, budget=budget
                    )
                )  # fmt: skip
            if jobs > 1 and not failed:
                reason, failed = _with_workers(run, jobs, study, budget=budget, poll=poll)
            if not failed:  # also after --jobs: a trial of a killed worker is run again here
                reason, failed = optimize(
                    study, objective, cfg, hooks=hooks, budget=budget, wait_for_running=True
                )
        except KeyboardInterrupt:
            # what finished is in the storage already; write the tables so the run can be read
            log.info("interrupted; %d trials finished", finished(study))
            write_study_results(run, study, cfg.search.space)
            raise
        write_study_results(run, study, cfg.search.space)
        tracking.on_trial(study)  # the trials --jobs workers ran, or a callback missed
        if failed or not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            report_or_log(run.path, study=study)
            return StudyResult(run.path, study, reason, None, failed=failed)
        metrics = finish(cfg, prepared, study, artifacts, run)
        tracking.final(final_record(metrics))
        if cfg.ladder.enabled:  # what each technique of the best recipe contributed
            params = decode(cfg.search.space, ranked(study)[0].params)
            run_ladder(cfg, run, prepared=prepared, params=params, watcher=ladder_watcher)
        report_or_log(run.path, study=study)
        return StudyResult(run.path, study, reason, metrics)


def _budget(cfg: RunConfig, prepared: Prepared, started: float) -> Budget:
    rows = len(prepared.split.train) + len(prepared.split.validation)
    return run_budget(
        cfg,
        end=started + cfg.budget if cfg.budget else None,
        timeout_end=started + cfg.search.timeout if cfg.search.timeout else None,
        fold_fraction=fold_fraction(cfg, len(prepared.split.train), rows),
    )


def _with_workers(
    run: RunDir,
    jobs: int,
    study: optuna.Study,
    *,
    budget: Budget,
    poll: Callable[[optuna.Study], None] | None,
) -> tuple[str, bool]:
    codes = run_workers(run, jobs, study, budget=budget, poll=poll)
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
    budget_end: float | None = None,
    parent: int | None = None,
    share: int = 1,
) -> tuple[str, bool]:
    """A worker process: join the study of ``run_dir`` and run trials until done.

    Args:
        threads: torch threads for every trial; default this worker's share of the cores
            that other work leaves free, judged at every trial.
        deadline: ``search.timeout``'s end (Unix time).
        budget_end: the whole run's end (``budget``); the worker stops early enough for
            the refit and ensemble, as the main process does.
        parent: the ``tunelab run`` process that started this worker: the worker ends
            with it, and its processes are not other work.
        share: the workers of that run, which split the free cores.
    """
    share_cores(jobs=share, root=parent)
    if parent is not None:
        watch_parent(parent)
    cfg = load_config(worker_config_path(run_dir))
    if threads:
        cfg = apply_params(cfg, {"train.threads": threads})
    run = RunDir(run_dir)
    with logging_to(run.log):
        prepared, study, artifacts = setup(cfg, run)
        rows = len(prepared.split.train) + len(prepared.split.validation)
        budget = run_budget(
            cfg,
            end=budget_end,
            timeout_end=deadline,
            fold_fraction=fold_fraction(cfg, len(prepared.split.train), rows),
        )
        return optimize(study, Objective(cfg, prepared, artifacts), cfg, budget=budget)


def write_study_results(run: RunDir, study: optuna.Study, space: dict[str, ParamSpec]) -> None:
    """leaderboard.csv, best_params.json (as config values) and importances.json."""
    leaderboard(study).to_csv(run.leaderboard, index=False)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return
    best = ranked(study)[0]
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


def finish(
    cfg: RunConfig,
    prepared: Prepared,
    study: optuna.Study,
    artifacts: TrialArtifacts,
    run: RunDir,
) -> dict[str, Any]:
    """Refit the best trial on every non-test row; build the ensemble when it beats the best
    single trial on out-of-fold predictions; evaluate the final predictor once on the test
    rows (and, when an ensemble is kept, the refit best trial beside it, paired)."""
    best = ranked(study)[0]
    params = decode(cfg.search.space, best.params)
    tuned = apply_params(cfg, params)
    if tuned.data != cfg.data:  # a searched encoding (data.image_size): load at the best
        prepared = prepare(tuned)
    single = refit(tuned, prepared, fold_epochs=record(best).get("best_epochs"))
    decision = decide(cfg, prepared, study, artifacts)
    log.info("ensemble: %s", decision.reason)
    final: AnyPredictor = single.predictor
    summary = decision.to_dict()
    if decision.kept:
        final = build(cfg, prepared, study, artifacts, decision)
        summary["test"] = compare_on_test(prepared, final, single.predictor, seed=cfg.seed)
    write_json(run.ensemble, summary)
    extra = {
        "best_trial": best.number,
        "best_value": best.value,
        "best_value_std": record(best).get("std"),
        "fold_scores": record(best).get("fold_scores"),
        "best_params": params,
        "refit_epochs": single.epochs,
        "bagging": cfg.ensemble.bagging.model_dump() if cfg.ensemble.bagging.seeds > 1 else None,
        "final": "ensemble" if decision.kept else "best trial",
        "ensemble": summary,
        "trials": {
            state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,)))
            for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        },
    }
    return evaluate_and_write(run, prepared, single.first, seed=cfg.seed, extra=extra, final=final)


def compare_on_test(
    prepared: Prepared, ensemble: AnyPredictor, single: AnyPredictor, *, seed: int
) -> dict[str, Any]:
    """The ensemble against the best single trial on the test rows: each metric, and the
    selection metric's paired bootstrap interval of the difference (ensemble - single)."""
    rows = prepared.split.test
    inputs = take(prepared.raw.inputs, rows)
    truth, task, metric = prepared.target.values[rows], prepared.target.task, prepared.metric
    first, second = test_outputs(ensemble, inputs), test_outputs(single, inputs)
    difference, low, high = paired_bootstrap_difference(
        task, truth, first, second, metric, seed=seed
    )
    return {
        "ensemble": compute_metrics(task, truth, first),
        "best_single": compute_metrics(task, truth, second),
        "difference": {
            "metric": metric,
            "ensemble_minus_single": difference,
            "low": low,
            "high": high,
            "level": 0.95,
            "method": "paired bootstrap over test rows (1000 resamples)",
        },
    }


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
