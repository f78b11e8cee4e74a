"""``tunelab run``: search, keep the best, refit it, evaluate once on the test rows.

Resuming is re-running: the study lives in its storage, so finished trials are kept and
only the missing ones are trained. ``jobs`` local worker processes share the study.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tunelab.config import ParamSpec, RunConfig, apply_params, load_config
from tunelab.data import take
from tunelab.ensembles.build import OutOfTime, build, decide
from tunelab.errors import FatalError
from tunelab.evaluation.holdout import evaluate_and_write, test_outputs
from tunelab.evaluation.prepare import Prepared, prepare
from tunelab.evaluation.refit import Refit, refit
from tunelab.ladder import Watcher, run_ladder
from tunelab.report import report_or_log
from tunelab.results.artifacts import TrialArtifacts
from tunelab.results.leaderboard import leaderboard, ranked
from tunelab.results.predictor import AnyPredictor
from tunelab.results.rundir import RunDir, open_run_dir, write_json
from tunelab.results.trial_record import record
from tunelab.search.budget import STOPPED_ATTR, Budget, fold_fraction, run_budget
from tunelab.search.objective import EpochHook, Objective, StartHook
from tunelab.search.optimize import (
    TrialHook,
    failure_message,
    finished,
    optimize,
    trailing_failures,
)
from tunelab.search.space import decode, params_text
from tunelab.search.study import (
    artifact_folder,
    make_storage,
    open_study,
    redact,
    storage_url,
)
from tunelab.search.timeline import Stages, Timeline
from tunelab.search.workers import run_workers, watch_parent, worker_config_path
from tunelab.tracking import Tracking, final_record
from tunelab.training.loop import EpochCallback
from tunelab.training.metrics import compute_metrics, paired_bootstrap_difference

log = logging.getLogger("tunelab")


@dataclass
class StudyResult:
    """How a study ended.

    Attributes:
        failed: the study stopped on failures (``stop_reason`` says which); no refit ran.
        metrics: the refit's ``metrics.json``, or None without a refit.
        time: where the time went (``Timeline.summary``).
    """

    run_dir: Path
    study: optuna.Study
    stop_reason: str
    metrics: dict[str, Any] | None
    failed: bool = False
    time: dict[str, Any] | None = None


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
    jobs: int = 1,
    on_epoch: EpochHook | None = None,
    hooks: list[TrialHook] | None = None,
    poll: Callable[[optuna.Study], None] | None = None,
    ladder_watcher: Watcher | None = None,
    on_stage: Callable[[str], None] | None = None,
    on_start: StartHook | None = None,
    started: float | None = None,
    quiet_workers: bool = False,
) -> StudyResult:
    """Search, refit the best parameters, combine the best trials when that helps, and
    evaluate the final predictor once on the test rows (then measure the ablation ladder of
    the best recipe when ``ladder.enabled``).

    Args:
        on_stage: told each stage in words as it starts (loading data, search, refit ...).
        on_start: told each trial this process starts, with its parameters.
        started: when the command started (Unix time), where the budget's clock starts;
            default now.
        quiet_workers: ``--jobs`` workers print nothing (a live view owns the terminal).
    """
    stages = Stages(Timeline(started or time.time()), on_stage=on_stage, on_epoch=on_epoch)
    run = open_run_dir(cfg, out, overwrite=overwrite, resume=resumable(cfg))
    run.artifacts.mkdir(exist_ok=True)
    with logging_to(run.log):
        stages.say("loading data and opening the study")
        prepared, study, artifacts = setup(cfg, run)
        log.info(
            "study %s: %d of %d trials finished; storage %s",
            study.study_name,
            finished(study),
            cfg.search.n_trials,
            study.user_attrs.get("storage"),
        )
        budget = _budget(cfg, prepared, stages.clock.started)
        tracking = Tracking.open(cfg, run, metric=prepared.metric, study=study, artifacts=artifacts)
        stages.enter("search", f"search: {finished(study)} of {cfg.search.n_trials} trials done")
        objective = Objective(
            cfg, prepared, artifacts, on_epoch=on_epoch, on_start=on_start, budget=budget
        )
        search = Search(jobs, [*(hooks or []), tracking.on_trial], poll, quiet_workers)
        reason, failed = _search(cfg, run, study, objective, search, budget)
        tracking.on_trial(study)  # the trials --jobs workers ran, or a callback missed
        metrics = None
        if not failed and study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            metrics = finish(cfg, prepared, study, artifacts, run, budget=budget, stages=stages)
            tracking.final(final_record(metrics))
            if cfg.ladder.enabled:  # what each technique of the best recipe contributed
                stages.enter("ladder", "ladder: what each technique contributed")
                params = decode(cfg.search.space, ranked(study)[0].params)
                run_ladder(cfg, run, prepared=prepared, params=params, watcher=ladder_watcher)
        stages.enter("report", "report")
        report_or_log(run.path, study=study)
        _budget_notes(study, stages)
        return StudyResult(run.path, study, reason, metrics, failed, _time(run, cfg, stages))


@dataclass(frozen=True)
class Search:
    """How the trials run: ``jobs`` worker processes or this one, and who hears of them."""

    jobs: int
    hooks: list[TrialHook]
    poll: Callable[[optuna.Study], None] | None
    quiet_workers: bool


def _search(
    cfg: RunConfig,
    run: RunDir,
    study: optuna.Study,
    objective: Objective,
    search: Search,
    budget: Budget,
) -> tuple[str, bool]:
    """Run the trials (``--jobs`` workers first, then this process: a trial of a killed
    worker is run again here); the study's tables are written even when interrupted."""
    try:
        reason, failed = "n_trials", False
        if search.jobs > 1:
            reason, failed = _with_workers(run, search, study, budget=budget)
        if not failed:
            reason, failed = optimize(
                study, objective, cfg, hooks=search.hooks, budget=budget, wait_for_running=True
            )
    except KeyboardInterrupt:
        # what finished is in the storage already; write the tables so the run can be read
        log.info("interrupted; %d trials finished", finished(study))
        write_study_results(run, study, cfg.search.space)
        raise
    write_study_results(run, study, cfg.search.space)
    return reason, failed


def _budget_notes(study: optuna.Study, stages: Stages) -> None:
    """The trials of this command that the time budget stopped (pruned), noted first."""
    stopped = [
        f"trial {trial.number} stopped after {trial.user_attrs[STOPPED_ATTR]} (pruned): the "
        "time budget ends"
        for trial in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
        if STOPPED_ATTR in trial.user_attrs
        and trial.datetime_start is not None
        and trial.datetime_start.timestamp() >= stages.clock.started
    ]
    stages.clock.notes[:0] = stopped


def _time(run: RunDir, cfg: RunConfig, stages: Stages) -> dict[str, Any]:
    """Where the time went, also in ``metrics.json`` when the run wrote one."""
    summary = stages.clock.summary(budget=cfg.budget)
    log.info("time: %s", summary)
    if run.metrics.is_file():
        metrics = json.loads(run.metrics.read_text())
        write_json(run.metrics, {**metrics, "time": summary})
    return summary


def _budget(cfg: RunConfig, prepared: Prepared, started: float) -> Budget:
    """The run's end (``budget``, from the command's start) and the search's
    (``search.timeout``, from now: the search's start)."""
    rows = len(prepared.split.train) + len(prepared.split.validation)
    timeout = cfg.search.timeout
    return run_budget(
        cfg,
        end=started + cfg.budget if cfg.budget else None,
        timeout_end=time.time() + timeout if timeout else None,
        fold_fraction=fold_fraction(cfg, len(prepared.split.train), rows),
    )


def _with_workers(
    run: RunDir, search: Search, study: optuna.Study, *, budget: Budget
) -> tuple[str, bool]:
    codes = run_workers(
        run, search.jobs, study, budget=budget, poll=search.poll, quiet=search.quiet_workers
    )
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
    say: Callable[[str], None] | None = None,
) -> tuple[str, bool]:
    """A worker process: join the study of ``run_dir`` and run trials until done.

    Args:
        deadline: ``search.timeout``'s end (Unix time).
        budget_end: the whole run's end (``budget``); the worker stops early enough for
            the refit and ensemble, as the main process does, and prunes a trial that
            would run past that.
        say: told, in one line each, that the worker joined, and each trial it starts
            and ends.
    """
    if parent is not None:
        watch_parent(parent)
    cfg = load_config(worker_config_path(run_dir))
    if threads:
        cfg = apply_params(cfg, {"train.threads": threads})
    run = RunDir(run_dir)
    tell = say or (lambda line: None)
    me = f"worker {os.getpid()}"
    with logging_to(run.log):
        prepared, study, artifacts = setup(cfg, run)
        tell(
            f"{me} joined study {study.study_name} in {run_dir}: {finished(study)} of "
            f"{cfg.search.n_trials} trials finished"
        )
        rows = len(prepared.split.train) + len(prepared.split.validation)
        budget = run_budget(
            cfg,
            end=budget_end,
            timeout_end=deadline,
            fold_fraction=fold_fraction(cfg, len(prepared.split.train), rows),
        )
        objective = Objective(
            cfg,
            prepared,
            artifacts,
            on_start=lambda number, params: tell(
                f"{me}: trial {number} started ({params_text(params)})"
            ),
            budget=budget,
        )

        def ended(study: optuna.Study, trial: FrozenTrial) -> None:
            value = f" value {trial.value:.4f}" if trial.value is not None else ""
            tell(f"{me}: trial {trial.number} {trial.state.name.lower()}{value}")

        return optimize(study, objective, cfg, hooks=[ended], budget=budget)


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
    *,
    budget: Budget | None = None,
    stages: Stages | None = None,
) -> dict[str, Any]:
    """Refit the best trial on every non-test row; build the ensemble when it beats the best
    single trial on out-of-fold predictions; evaluate the final predictor once on the test
    rows (and, when an ensemble is kept, the refit best trial beside it, paired).

    Args:
        budget: the time budget: the refit and the ensemble's refits stop at an epoch
            boundary by its deadline, and an ensemble that cannot be refit in time is not
            built (each with a note).
        stages: the clock and the live view.
    """
    stages = stages or Stages(Timeline(time.time()))
    deadline = budget.final_deadline if budget is not None else None
    best = ranked(study)[0]
    params = decode(cfg.search.space, best.params)
    tuned = apply_params(cfg, params)
    stages.enter("refit", f"refit: trial {best.number} on all non-test rows")
    if tuned.data != cfg.data:  # a searched encoding (data.image_size): load at the best
        prepared = prepare(tuned)
    single = refit(
        tuned,
        prepared,
        fold_epochs=record(best).get("best_epochs"),
        deadline=deadline,
        callbacks=[_refit_view(stages, best.number)],
    )
    for note in single.notes:
        stages.note(note)
    stages.enter("ensemble", f"ensemble: {cfg.ensemble.method} on out-of-fold predictions")
    final, summary = _ensemble(cfg, prepared, study, artifacts, single, deadline, stages)
    write_json(run.ensemble, summary)
    stages.enter("test evaluation", "test evaluation: the final predictor on the test rows")
    extra = {
        "best_trial": best.number,
        "best_value": best.value,
        "best_value_std": record(best).get("std"),
        "fold_scores": record(best).get("fold_scores"),
        "best_params": params,
        "refit_epochs": single.epochs,
        "bagging": cfg.ensemble.bagging.model_dump() if cfg.ensemble.bagging.seeds > 1 else None,
        "final": "ensemble" if final is not single.predictor else "best trial",
        "ensemble": summary,
        "trials": {
            state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,)))
            for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        },
    }
    return evaluate_and_write(run, prepared, single.first, seed=cfg.seed, extra=extra, final=final)


def _refit_view(stages: Stages, trial: int) -> EpochCallback:
    """The refit's epochs, for the live view (as fold 1 of 1 of its trial)."""

    def show(record: dict[str, Any]) -> None:
        if stages.on_epoch is not None:
            stages.on_epoch(trial, 0, 1, record)

    return show


def _ensemble(
    cfg: RunConfig,
    prepared: Prepared,
    study: optuna.Study,
    artifacts: TrialArtifacts,
    single: Refit,
    deadline: float | None,
    stages: Stages,
) -> tuple[AnyPredictor, dict[str, Any]]:
    """The final predictor (the ensemble when kept and built in time, else the refit) and
    ``ensemble.json``'s content."""
    decision = decide(cfg, prepared, study, artifacts)
    log.info("ensemble: %s", decision.reason)
    if decision.kept:
        try:
            final = build(cfg, prepared, study, artifacts, decision, deadline=deadline)
        except OutOfTime as exc:
            stages.note(f"ensemble not built: {exc}; the final predictor is the refit")
            decision = replace(decision, kept=False, reason=f"{decision.reason}; {exc}")
    summary = decision.to_dict()
    if not decision.kept:
        return single.predictor, summary
    summary["test"] = compare_on_test(prepared, final, single.predictor, seed=cfg.seed)
    return final, summary


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
