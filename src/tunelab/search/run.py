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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.trial import FrozenTrial, TrialState

from tunelab.applies import peek_modality, refuse_misfits
from tunelab.config import ParamSpec, RunConfig, apply_params, load_config
from tunelab.data import take
from tunelab.ensembles.build import OutOfTime, build, decide
from tunelab.ensembles.distill import distill_stage
from tunelab.errors import FatalError
from tunelab.evaluation.holdout import evaluate_and_write, test_outputs
from tunelab.evaluation.prepare import Prepared, prepare
from tunelab.evaluation.refit import refit
from tunelab.ladder import Watcher, run_ladder
from tunelab.preflight import check_stages, known_task
from tunelab.report import report_or_log, write_report
from tunelab.resolved import write_resolved
from tunelab.results.artifacts import TrialArtifacts
from tunelab.results.leaderboard import leaderboard, ranked, tie_break
from tunelab.results.predictor import AnyPredictor
from tunelab.results.rundir import (
    RunDir,
    RunDirBusy,
    open_run_dir,
    release_run_dir,
    write_json,
)
from tunelab.results.stages import LateStages, StageFailure
from tunelab.results.trial_record import record
from tunelab.search.budget import STOPPED_ATTR, Budget, fold_fraction, run_budget
from tunelab.search.claim import claim_study
from tunelab.search.jobs import jobs_after_a_trial
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
from tunelab.tracking import Tracking, refuse_unreachable
from tunelab.training.cores import share_cores
from tunelab.training.loop import EpochCallback
from tunelab.training.metrics import compute_metrics, paired_bootstrap_difference

log = logging.getLogger("tunelab")


@dataclass
class StudyResult:
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


def resumable(cfg: RunConfig) -> Callable[[RunDir], bool]:
    """For ``open_run_dir``: a run directory resumes when it holds a study of the same
    config (more trials or time allowed) or one that never started."""

    def check(run: RunDir) -> bool:
        if not run.config.is_file() or not run.started_study():
            return True  # a run that failed before any trial holds nothing to keep
        changed = study_changes(load_config(run.config), cfg)
        if changed:
            raise FatalError(
                f"{run.path} holds a study of another config (changed: "
                f"{', '.join(changed[:6])}); re-run with the same config to resume, or pass "
                "--out OTHER_DIR or --overwrite"
            )
        return True

    return check


def study_changes(previous: RunConfig, cfg: RunConfig) -> list[str]:
    """The fields in which ``cfg`` is another study than ``previous`` (more trials or time,
    another budget, ensemble, ladder or trackers leave the trials valid)."""
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
    return [] if same == cfg else _differences(same.model_dump(), cfg.model_dump())


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
    if known_task(cfg) is None:  # the loaded target decided the task: check what needs it
        check_stages(cfg, task=prepared.target.task)
    url = storage_url(cfg, run.path)
    study = open_study(cfg, make_storage(url, cfg.search), metric=prepared.metric)
    with warnings.catch_warnings():  # experimental in Optuna; the dashboard shows the name
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([prepared.metric])
    study.set_user_attr("metric", prepared.metric)
    study.set_user_attr("storage", redact(url))
    return prepared, study, TrialArtifacts(artifact_folder(cfg, run.path))


@dataclass
class _Hooks:
    """What the caller watches a search with, and how many local worker processes run it."""

    jobs: int | Literal["auto"]
    on_epoch: EpochHook | None
    trial: list[TrialHook]
    poll: Callable[[optuna.Study], None] | None
    on_start: StartHook | None = None
    quiet_workers: bool = False  # --jobs workers print nothing (a live view owns the terminal)


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
    on_stage: Callable[[str], None] | None = None,
    on_start: StartHook | None = None,
    started: float | None = None,
    quiet_workers: bool = False,
) -> StudyResult:
    """Search, refit the best parameters, combine the best trials when that helps, and
    evaluate the final predictor once on the test rows (then measure the ablation ladder of
    the best recipe when ``ladder.enabled``).

    One process finishes a study: the one holding the run directory's lock (and, for a
    study in PostgreSQL, the study's claim). Started while another holds it, this call
    joins the search with that run's config and returns after its trials, with
    ``StudyResult.finisher`` naming the process that finishes.

    Args:
        jobs: trials side by side (worker processes), or ``auto`` (``tunelab run``'s
            default): from the free cores and a measurement of the recipe's model.
        on_stage: told each stage in words as it starts (loading data, search, refit ...).
        on_start: told each trial this process starts, with its parameters.
        started: when the command started (Unix time), where the budget's clock starts;
            default now.
        quiet_workers: ``--jobs`` workers print nothing (a live view owns the terminal).

    Raises:
        ConfigError: a setting, set or searched, that cannot apply to the data's modality
            (before any trial).
    """
    clock = Stages(Timeline(started or time.time()), on_stage=on_stage, on_epoch=on_epoch)
    watch = _Hooks(jobs, on_epoch, hooks or [], poll, on_start, quiet_workers)
    check_stages(cfg, task=known_task(cfg))  # what later stages would refuse, said now
    refuse_unreachable(cfg)  # before the run directory: a mistyped address leaves none
    known = peek_modality(cfg.data)
    if known is not None:  # before the run directory: a setting that cannot apply
        refuse_misfits(cfg, known)
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
        held.enter_context(logging_to(run.log))
        clock.say("loading data and opening the study")
        prepared, study, artifacts = setup(cfg, run)
        refuse_misfits(cfg, prepared.raw.modality)  # a py: source's modality is known now
        claim = claim_study(storage_url(cfg, run.path), study)
        held.callback(claim.release)
        budget = _budget(cfg, prepared, clock.clock.started)
        opened = (prepared, study, artifacts)
        if claim.held:
            result = _own_study(cfg, run, opened, budget, watch, ladder_watcher, clock)
        else:  # a run on another machine finishes this study
            result = _trials_only(cfg, run, opened, budget, watch, claim.holder)
    return result


Opened = tuple[Prepared, optuna.Study, TrialArtifacts]


def _own_study(
    cfg: RunConfig,
    run: RunDir,
    opened: Opened,
    budget: Budget,
    watch: _Hooks,
    ladder_watcher: Watcher | None,
    clock: Stages,
) -> StudyResult:
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
        hooks = [tracking.on_trial, trial_log(prepared.metric)]
        reason, failed = _search(cfg, run, opened, budget, watch, hooks, wait=True)
    except KeyboardInterrupt:
        # what finished is in the storage already; write the tables so the run can be read
        log.info("interrupted; %d trials finished", finished(study))
        write_study_results(run, study, cfg.search.space)
        raise
    write_study_results(run, study, cfg.search.space)
    ending = _Ending(tracking, budget, clock, ladder_watcher)
    return _conclude(cfg, run, opened, ending, stopped=(reason, failed))


@dataclass(frozen=True)
class _Ending:
    """What the stages after the search report to, and the time they may take."""

    tracking: Tracking
    budget: Budget
    clock: Stages
    ladder_watcher: Watcher | None


def _conclude(
    cfg: RunConfig, run: RunDir, opened: Opened, ending: _Ending, *, stopped: tuple[str, bool]
) -> StudyResult:
    """After the search: the refit and ensemble, then the late stages (tracking, the
    ladder, the report), each of which may fail without costing what finished."""
    prepared, study, artifacts = opened
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
        return StudyResult(
            run.path, study, reason, None, failed, time=time_spent, failed_stages=stages.failures
        )
    log.info(
        "the search is done (%s); finishing study %s: refit the best on all non-test rows, "
        "ensemble, final/, metrics, report",
        reason,
        study.study_name,
    )
    budget = ending.budget
    metrics = finish(cfg, prepared, study, artifacts, run, stages, budget=budget, clock=clock)
    stages.attempt("tracking", lambda: tracking.final(metrics))
    if cfg.ladder.enabled:  # what each technique of the best recipe contributed
        clock.enter("ladder", "ladder: what each technique contributed")
        params = decode(cfg.search.space, ranked(study)[0].params)
        watcher = ending.ladder_watcher
        stages.attempt(
            "ladder",
            lambda: run_ladder(cfg, run, prepared=prepared, params=params, watcher=watcher),
        )
    clock.enter("report", "report")
    stages.conclude(lambda: write_report(run.path, study=study))
    _budget_notes(study, clock)
    time_spent = _time(run, cfg, clock)
    return StudyResult(
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
    watch: _Hooks,
    more_hooks: list[TrialHook],
    *,
    wait: bool,
) -> tuple[str, bool]:
    """Run trials (``--jobs`` workers, then this process) until the study has enough."""
    prepared, study, artifacts = opened
    objective = Objective(
        cfg, prepared, artifacts, on_epoch=watch.on_epoch, on_start=watch.on_start, budget=budget
    )
    hooks = [*watch.trial, *more_hooks]

    def trials(settings: RunConfig, *, wait_for_running: bool = False) -> tuple[str, bool]:
        return optimize(
            study,
            objective,
            settings,
            hooks=hooks,
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


def _join(cfg: RunConfig, run: RunDir, holder: str, clock: Stages, watch: _Hooks) -> StudyResult:
    """Run trials of the study that ``holder`` runs in ``run`` (its run directory's lock is
    taken); it does the finishing stages."""
    with logging_to(run.log):
        clock.say("loading data and opening the study")
        prepared, study, artifacts = setup(cfg, run)
        budget = _budget(cfg, prepared, clock.clock.started)
        return _trials_only(cfg, run, (prepared, study, artifacts), budget, watch, holder)


def _trials_only(
    cfg: RunConfig, run: RunDir, opened: Opened, budget: Budget, watch: _Hooks, holder: str
) -> StudyResult:
    study = opened[1]
    log.info("%s finishes study %s; this process runs trials only", holder, study.study_name)
    if watch.jobs == "auto":  # the finisher measured its machine; this one runs in-process
        watch = replace(watch, jobs=1)
    reason, failed = _search(cfg, run, opened, budget, watch, [], wait=False)
    return StudyResult(run.path, study, reason, None, failed=failed, finisher=holder)


def owner_config(run: RunDir, cfg: RunConfig, *, wait_s: float = 60.0) -> RunConfig:
    """The config of the process that holds ``run``'s lock, once it has written it (not
    older than the lock); ``cfg`` must be the same study (``resumable``).

    Raises:
        FatalError: ``cfg`` is another study's config, or the holder wrote none in time.
    """
    deadline = time.monotonic() + wait_s
    while not _written_since_lock(run):
        if time.monotonic() > deadline:
            raise FatalError(
                f"{run.path} is locked by another process that has not written its "
                f"config.yaml in {wait_s:.0f} s; run this command again when it has started"
            )
        time.sleep(0.1)
    owner = load_config(run.config)
    changed = study_changes(owner, cfg)
    if changed:
        raise FatalError(
            f"{run.path} is in use by a study of another config (changed: "
            f"{', '.join(changed[:6])}), which another process runs; wait for it to end, or "
            "pass --out OTHER_DIR"
        )
    return owner


def _written_since_lock(run: RunDir) -> bool:
    try:
        return run.config.stat().st_mtime >= run.lock.stat().st_mtime
    except OSError:
        return False


def trial_log(metric: str) -> TrialHook:
    """A study hook that logs ``trial 3 complete: accuracy 0.9722 ± 0.0100`` (INFO), from the
    finished trial alone (no storage read)."""

    def logged(study: optuna.Study, trial: FrozenTrial) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        value = ""
        if trial.value is not None:
            spread = record(trial).get("std")
            value = f": {metric} {trial.value:.4f}"
            value += f" ± {spread:.4f}" if isinstance(spread, float) else ""
        reason = trial.user_attrs.get("fail_reason")
        why = f" ({reason})" if reason else ""
        log.info("trial %d %s%s%s", trial.number, trial.state.name.lower(), value, why)

    return logged


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
    run: RunDir, jobs: int, watch: _Hooks, study: optuna.Study, *, budget: Budget
) -> tuple[str, bool]:
    codes = run_workers(run, jobs, study, budget=budget, poll=watch.poll, quiet=watch.quiet_workers)
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
    share: int = 1,
) -> tuple[str, bool]:
    """A worker process: join the study of ``run_dir`` and run trials until done.

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
    stages: LateStages | None = None,
    *,
    budget: Budget | None = None,
    clock: Stages | None = None,
) -> dict[str, Any]:
    """Refit the best trial on every non-test row; build the ensemble when it passes the
    keep rule against that trial on out-of-fold predictions; evaluate the final predictor
    once on the test rows (and, when an ensemble is kept, the refit best trial beside it,
    paired). An ensemble stage that fails leaves the refit best trial as the final
    predictor, and the failure in ``stages``.

    Args:
        budget: the time budget: the refit and the ensemble's refits stop at an epoch
            boundary by its deadline, and an ensemble that cannot be refit in time is not
            built (each with a note).
        clock: the time line and the live view.
    """
    clock = clock or Stages(Timeline(time.time()))
    deadline = budget.final_deadline if budget is not None else None
    best = ranked(study)[0]
    tie_note = tie_break(study)
    if tie_note:
        log.info("best trial: %s", tie_note)
    params = decode(cfg.search.space, best.params)
    tuned = apply_params(cfg, params)
    clock.enter("refit", f"refit: trial {best.number} on all non-test rows")
    if tuned.data != cfg.data:  # a searched encoding (data.image_size): load at the best
        prepared = prepare(tuned)
    single = refit(
        tuned,
        prepared,
        fold_epochs=record(best).get("best_epochs"),
        deadline=deadline,
        callbacks=[_refit_view(clock, best.number)],
    )
    for note in single.notes:
        clock.note(note)
    clock.enter("ensemble", f"ensemble: {cfg.ensemble.method} on out-of-fold predictions")
    stages = stages or LateStages(run)
    final, summary = _ensemble_stage(
        cfg, prepared, study, artifacts, single.predictor, stages, _Deadline(deadline, clock)
    )
    if cfg.ensemble.distill and summary["kept"]:  # one student learns the ensemble
        clock.say("distillation: one student learns the ensemble")
        distilled = stages.attempt(
            "distillation", lambda: distill_stage(tuned, prepared, final, single.predictor, summary)
        )
        final = distilled or final
        if "distillation" in summary:
            clock.note(f"distillation: {summary['distillation']['reason']}")
    write_json(run.ensemble, summary)
    clock.enter("test evaluation", "test evaluation: the final predictor on the test rows")
    extra = {
        "best_trial": best.number,
        "best_value": best.value,
        "best_value_std": record(best).get("std"),
        "best_trial_tie_break": tie_note,
        "fold_scores": record(best).get("fold_scores"),
        "best_params": params,
        "refit_epochs": single.epochs,
        "bagging": cfg.ensemble.bagging.model_dump() if cfg.ensemble.bagging.seeds > 1 else None,
        "final": summary.get("final") or ("ensemble" if summary["kept"] else "best trial"),
        "ensemble": summary,
        "trials": {
            state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,)))
            for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        },
    }
    return evaluate_and_write(run, prepared, single.first, seed=cfg.seed, extra=extra, final=final)


def _refit_view(clock: Stages, trial: int) -> EpochCallback:
    """The refit's epochs, for the live view (as fold 1 of 1 of its trial)."""

    def show(record: dict[str, Any]) -> None:
        if clock.on_epoch is not None:
            clock.on_epoch(trial, 0, 1, record)

    return show


@dataclass(frozen=True)
class _Deadline:
    """When the ensemble's refits must end (None: no budget), and where a note goes."""

    at: float | None
    clock: Stages


def _ensemble_stage(
    cfg: RunConfig,
    prepared: Prepared,
    study: optuna.Study,
    artifacts: TrialArtifacts,
    single: AnyPredictor,
    stages: LateStages,
    deadline: _Deadline,
) -> tuple[AnyPredictor, dict[str, Any]]:
    """(the final predictor, ``ensemble.json``): the ensemble when it is kept and built in
    time, else ``single``, also when the stage fails."""

    def decide_and_build() -> tuple[AnyPredictor, dict[str, Any]]:
        decision = decide(cfg, prepared, study, artifacts)
        log.info("ensemble: %s", decision.reason)
        if not decision.kept:
            return single, decision.to_dict()
        try:
            ensemble = build(cfg, prepared, study, artifacts, decision, deadline=deadline.at)
        except OutOfTime as exc:
            deadline.clock.note(f"ensemble not built: {exc}; the final predictor is the refit")
            late = replace(decision, kept=False, reason=f"{decision.reason}; {exc}")
            return single, late.to_dict()
        summary = decision.to_dict()
        summary["test"] = compare_on_test(prepared, ensemble, single, seed=cfg.seed)
        return ensemble, summary

    found = stages.attempt("ensemble", decide_and_build)
    if found is not None:
        return found
    reason = stages.failures[-1].reason
    return single, {
        "kept": False,
        "failed": True,
        "method": cfg.ensemble.method,
        "reason": f"the ensemble stage failed ({reason}); the best single trial is final",
    }


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
