"""``tunelab run``: search, keep the best, refit it, evaluate once on the test rows.

Resuming is re-running: the study lives in its storage, so finished trials are kept and
only the missing ones are trained (``flows.resume``). ``jobs`` local worker processes share
the study (``search.workers``); after the search, ``flows.finish`` refits, ensembles and
evaluates, then the ladder and the report run as late stages.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.trial import FrozenTrial, TrialState

from tunelab.applies import peek_modality, refuse_misfits
from tunelab.config import RunConfig, recipe
from tunelab.evaluation.prepare import Prepared, prepare
from tunelab.flows.finish import Opened, finish, write_study_results
from tunelab.flows.resume import owner_config, resumable
from tunelab.flows.timeline import Stages, Timeline
from tunelab.ladder import run_ladder
from tunelab.observer import Observer, Observers
from tunelab.preflight import check_stages, known_task
from tunelab.report import report_or_log, write_report
from tunelab.resolved import write_resolved
from tunelab.results.leaderboard import ranked
from tunelab.results.rundir import (
    RunDir,
    RunDirBusy,
    open_run_dir,
    release_run_dir,
    write_json,
)
from tunelab.results.stages import LateStages, StageFailure
from tunelab.results.trial_record import record
from tunelab.search.budget import STOPPED_ATTR, Budget, budget_for
from tunelab.search.claim import claim_study
from tunelab.search.jobs import jobs_after_a_trial
from tunelab.search.objective import Objective
from tunelab.search.optimize import failure_message, finished, optimize, trailing_failures
from tunelab.search.study import open_run_study, storage_url
from tunelab.search.workers import run_workers
from tunelab.tracking import Tracking, refuse_unreachable
from tunelab.training.cores import share_cores

log = logging.getLogger("tunelab")


@dataclass
class StudySummary:
    """How a study ended.

    Attributes:
        failed: the study stopped on failures (``stop_reason`` says which); no refit ran.
        metrics: the refit's ``metrics.json``, or None without a refit.
        finisher: set when another process finishes the study (it holds the run's lock):
            who it is; this process ran trials only.
        failed_stages: stages after the final predictor that failed (the ensemble, the
            ladder, tracking, the report), each with its reason; what finished is kept.
        time: where the time went (``Timeline.summary``).
    """

    run_dir: Path
    study: optuna.Study
    stop_reason: str
    metrics: dict[str, Any] | None
    failed: bool = False
    finisher: str | None = None
    failed_stages: list[StageFailure] = field(default_factory=list)
    time: dict[str, Any] | None = None


def setup(cfg: RunConfig, run: RunDir) -> Opened:
    """Load the data, check what needed the loaded task, and open the study and its
    artifacts."""
    prepared = replace(prepare(cfg), cache_dir=run.features)  # shared by the trials
    if known_task(cfg) is None:  # the loaded target decided the task: check what needs it
        check_stages(cfg, task=prepared.target.task)
    study, artifacts = open_run_study(cfg, run.path, metric=prepared.metric)
    return prepared, study, artifacts


@dataclass
class _Watch:
    """Who watches a search, and how many local worker processes run it."""

    jobs: int | Literal["auto"]
    observer: Observer
    quiet_workers: bool = False  # --jobs workers print nothing (a live view owns the terminal)


def run_study(
    cfg: RunConfig,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    observer: Observer | None = None,
    jobs: int | Literal["auto"] = 1,
    started: float | None = None,
    quiet_workers: bool = False,
) -> StudySummary:
    """Search, refit the best parameters, combine the best trials when that helps, and
    evaluate the final predictor once on the test rows (then measure the ablation ladder of
    the best recipe when ``ladder.enabled``).

    One process finishes a study: the one holding the run directory's lock (and, for a
    study in PostgreSQL, the study's claim). Started while another holds it, this call
    joins the search with that run's config and returns after its trials, with
    ``StudySummary.finisher`` naming the process that finishes.

    Args:
        observer: told each stage in words as it starts (loading data, search, refit ...),
            each trial this process starts, runs and ends, the refit's epochs, the ladder's
            progress; polled while worker processes run the trials.
        jobs: trials side by side (worker processes), or ``auto`` (``tunelab run``'s
            default): from the free cores and a measurement of the recipe's model.
        started: when the command started (Unix time), where the budget's clock starts;
            default now.
        quiet_workers: ``--jobs`` workers print nothing (a live view owns the terminal).

    Raises:
        ConfigError: a setting, set or searched, that cannot apply to the data's modality
            (before any trial).
    """
    observer = observer or Observer()
    clock = Stages(Timeline(started or time.time()), observer)
    watch = _Watch(jobs, observer, quiet_workers)
    _refuse_early(cfg)
    share_cores(jobs=1)  # this process: trials it runs itself, the refit, the ensemble
    try:
        run = open_run_dir(cfg, out, overwrite=overwrite, resume=resumable(cfg), study=True)
    except RunDirBusy as busy:
        if overwrite or not busy.holder.study:
            raise
        holder = str(busy.holder)
        return _join(owner_config(busy.run, cfg), busy.run, holder, clock, watch)
    with ExitStack() as held:
        held.callback(release_run_dir, run)
        held.enter_context(run.logging())
        clock.say("loading data and opening the study")
        prepared, study, artifacts = setup(cfg, run)
        refuse_misfits(cfg, prepared.raw.modality)  # a py: source's modality is known now
        claim = claim_study(storage_url(cfg, run.path), study)
        held.callback(claim.release)
        budget = _budget(cfg, prepared, clock.clock.started)
        opened = (prepared, study, artifacts)
        if claim.held:
            result = _own_study(cfg, run, opened, budget, watch, clock)
        else:  # a run on another machine finishes this study
            result = _trials_only(cfg, run, opened, budget, watch, claim.holder)
    return result


def _refuse_early(cfg: RunConfig) -> None:
    """What would fail later, refused before the run directory is made: what later stages
    would refuse, a mistyped tracker address, a setting that cannot apply to the data."""
    check_stages(cfg, task=known_task(cfg))
    refuse_unreachable(cfg)
    known = peek_modality(cfg.data)
    if known is not None:
        refuse_misfits(cfg, known)


def _own_study(
    cfg: RunConfig,
    run: RunDir,
    opened: Opened,
    budget: Budget,
    watch: _Watch,
    clock: Stages,
) -> StudySummary:
    """The finisher's part: search, then refit, ensemble, test, ladder and report."""
    prepared, study, artifacts = opened
    write_resolved(run.config, cfg, prepared.raw)  # notes on values the data make unused
    log.info(
        "study %s: %d of %d trials finished; storage %s",
        study.study_name,
        finished(study),
        cfg.search.n_trials,
        study.user_attrs.get("storage"),
    )
    tracking = Tracking.open(cfg, run, metric=prepared.metric, study=study, artifacts=artifacts)
    clock.enter("search", f"search: {finished(study)} of {cfg.search.n_trials} trials done")
    try:
        observer = Observers(watch.observer, tracking, TrialLog(prepared.metric))
        reason, failed = _search(cfg, run, opened, budget, replace(watch, observer=observer))
    except KeyboardInterrupt:
        # what finished is in the storage already; write the tables so the run can be read
        log.info("interrupted; %d trials finished", finished(study))
        write_study_results(run, study, cfg)
        raise
    write_study_results(run, study, cfg)
    ending = _Ending(tracking, budget, clock)
    return _conclude(cfg, run, opened, ending, stopped=(reason, failed))


@dataclass(frozen=True)
class _Ending:
    """What the stages after the search report to, and the time they may take."""

    tracking: Tracking
    budget: Budget
    clock: Stages


def _conclude(
    cfg: RunConfig, run: RunDir, opened: Opened, ending: _Ending, *, stopped: tuple[str, bool]
) -> StudySummary:
    """After the search: the refit and ensemble, then the late stages (tracking, the
    ladder, the report), each of which may fail without costing what finished."""
    prepared, study, _ = opened
    reason, failed = stopped
    tracking, clock = ending.tracking, ending.clock
    stages = LateStages(run)
    # the trials --jobs workers ran, or a callback missed
    stages.attempt("tracking", lambda: tracking.on_trial(study))
    if failed or not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        clock.enter("report", "report")
        report_or_log(run.path, study=study)
        _budget_notes(study, clock)
        time_spent = _time(run, cfg, clock)
        return StudySummary(
            run.path, study, reason, None, failed, time=time_spent, failed_stages=stages.failures
        )
    log.info(
        "the search is done (%s); finishing study %s: refit the best on all non-test rows, "
        "ensemble, final/, metrics, report",
        reason,
        study.study_name,
    )
    budget = ending.budget
    metrics = finish(cfg, opened, run, stages, budget=budget, clock=clock)
    stages.attempt("tracking", lambda: tracking.final(metrics))
    if cfg.ladder.enabled:  # what each technique of the best recipe contributed
        clock.enter("ladder", "ladder: what each technique contributed")
        params = recipe(cfg, ranked(study)[0].params)
        observer = clock.observer
        stages.attempt(
            "ladder",
            lambda: run_ladder(cfg, run, prepared=prepared, params=params, observer=observer),
        )
    clock.enter("report", "report")
    stages.conclude(lambda: write_report(run.path, study=study))
    _budget_notes(study, clock)
    time_spent = _time(run, cfg, clock)
    return StudySummary(
        run.path, study, reason, metrics, time=time_spent, failed_stages=stages.failures
    )


def _budget_notes(study: optuna.Study, clock: Stages) -> None:
    """The trials of this command that the time budget stopped (pruned), noted first."""
    stopped = [
        f"trial {trial.number} stopped after {trial.user_attrs[STOPPED_ATTR]} (pruned): the "
        "time budget ends"
        for trial in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
        if STOPPED_ATTR in trial.user_attrs
        and trial.datetime_start is not None
        and trial.datetime_start.timestamp() >= clock.clock.started
    ]
    clock.clock.notes[:0] = stopped


def _time(run: RunDir, cfg: RunConfig, clock: Stages) -> dict[str, Any]:
    """Where the time went, also in ``metrics.json`` when the run wrote one."""
    summary = clock.clock.summary(budget=cfg.budget)
    log.info("time: %s", summary)
    if run.metrics.is_file():
        metrics = json.loads(run.metrics.read_text())
        write_json(run.metrics, {**metrics, "time": summary})
    return summary


def _search(
    cfg: RunConfig,
    run: RunDir,
    opened: Opened,
    budget: Budget,
    watch: _Watch,
    *,
    wait: bool = True,
) -> tuple[str, bool]:
    """Run trials (``--jobs`` workers, then this process) until the study has enough."""
    prepared, study, artifacts = opened
    objective = Objective(cfg, prepared, artifacts, observer=watch.observer, budget=budget)

    def trials(settings: RunConfig, *, wait_for_running: bool = False) -> tuple[str, bool]:
        return optimize(
            study,
            objective,
            settings,
            observer=watch.observer,
            budget=budget,
            wait_for_running=wait_for_running,
        )

    reason, failed, jobs = "n_trials", False, watch.jobs
    if jobs == "auto":  # a trial timed here first, unless the study has some
        jobs, reason, failed = jobs_after_a_trial(cfg, prepared, run, study, trials)
    if jobs > 1 and not failed:
        reason, failed = _with_workers(run, jobs, watch, study, budget=budget)
    if not failed:  # also after --jobs: a trial of a killed worker is run again here
        reason, failed = trials(cfg, wait_for_running=wait)
    return reason, failed


def _join(cfg: RunConfig, run: RunDir, holder: str, clock: Stages, watch: _Watch) -> StudySummary:
    """Run trials of the study that ``holder`` runs in ``run`` (its run directory's lock is
    taken); it does the finishing stages."""
    with run.logging():
        clock.say("loading data and opening the study")
        prepared, study, artifacts = setup(cfg, run)
        budget = _budget(cfg, prepared, clock.clock.started)
        return _trials_only(cfg, run, (prepared, study, artifacts), budget, watch, holder)


def _trials_only(
    cfg: RunConfig, run: RunDir, opened: Opened, budget: Budget, watch: _Watch, holder: str
) -> StudySummary:
    study = opened[1]
    log.info("%s finishes study %s; this process runs trials only", holder, study.study_name)
    if watch.jobs == "auto":  # the finisher measured its machine; this one runs in-process
        watch = replace(watch, jobs=1)
    reason, failed = _search(cfg, run, opened, budget, watch, wait=False)
    return StudySummary(run.path, study, reason, None, failed=failed, finisher=holder)


class TrialLog(Observer):
    """Logs ``trial 3 complete: accuracy 0.9722 ± 0.0100`` (INFO) as each trial ends, from
    the finished trial alone (no storage read)."""

    def __init__(self, metric: str) -> None:
        self.metric = metric

    def trial_ended(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        value = ""
        if trial.value is not None:
            spread = record(trial).get("std")
            value = f": {self.metric} {trial.value:.4f}"
            value += f" ± {spread:.4f}" if isinstance(spread, float) else ""
        reason = trial.user_attrs.get("fail_reason")
        why = f" ({reason})" if reason else ""
        log.info("trial %d %s%s%s", trial.number, trial.state.name.lower(), value, why)


def _budget(cfg: RunConfig, prepared: Prepared, started: float) -> Budget:
    """The run's end (``budget``, from the command's start) and the search's
    (``search.timeout``, from now: the search's start)."""
    timeout = cfg.search.timeout
    return budget_for(
        cfg,
        prepared,
        end=started + cfg.budget if cfg.budget else None,
        timeout_end=time.time() + timeout if timeout else None,
    )


def _with_workers(
    run: RunDir, jobs: int, watch: _Watch, study: optuna.Study, *, budget: Budget
) -> tuple[str, bool]:
    codes = run_workers(
        run, jobs, study, budget=budget, observer=watch.observer, quiet=watch.quiet_workers
    )
    if all(code == 0 for code in codes):
        return "n_trials", False
    log.warning("worker exit codes: %s", codes)
    reasons = trailing_failures(study)
    if reasons:
        return failure_message(reasons), True
    return f"workers exited {codes}; see {run.log}", True


__all__ = ["StudySummary", "TrialLog", "run_study", "setup"]
