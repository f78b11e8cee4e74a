"""The trial loop: run trials until the study has enough, the deadline, or too many
failures in a row; keep only the top-k trials' fold models."""

from __future__ import annotations

import logging
import time
import warnings
from collections import Counter
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from tunelab.config import RunConfig
from tunelab.observer import Observer
from tunelab.results.artifacts import TrialArtifacts
from tunelab.results.leaderboard import ranked
from tunelab.search.budget import Budget
from tunelab.search.objective import Objective, models_kept

TrialHook = Callable[[optuna.Study, FrozenTrial], None]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
WAIT_POLL_S = 0.5  # seconds between looks at trials other processes run
log = logging.getLogger("tunelab")


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
        return failure_message(self.reasons)


def failure_message(reasons: list[str]) -> str:
    common, _ = Counter(reasons).most_common(1)[0]
    return (
        f"stopped after {len(reasons)} failed trials in a row; the most common reason: "
        f"{common}. Fix it and run the same command again to resume"
    )


def trailing_failures(study: optuna.Study) -> list[str]:
    """The fail reasons of the study's last trials, up to its last finished one."""
    reasons: list[str] = []
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number, reverse=True):
        if trial.state in FINISHED:
            break
        if trial.state == TrialState.FAIL:
            reasons.append(str(trial.user_attrs.get("fail_reason", "unknown error")))
    return reasons


class TopCheckpoints:
    """Deletes the fold models of trials outside the best ``k`` (histories and out-of-fold
    predictions are small and kept for every trial).

    Only a trial that kept its fold models can push another out of the top ``k``, so the
    study is ranked after those alone (a trial outside the top ``k`` never writes its
    models); a pruned or failed trial drops its own."""

    def __init__(self, artifacts: TrialArtifacts, k: int) -> None:
        self.artifacts, self.k = artifacts, k

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state != TrialState.COMPLETE:
            self.artifacts.drop_predictors(trial)
        elif self.artifacts.kept_predictors(trial):
            for old in ranked(study)[self.k :]:
                self.artifacts.drop_predictors(old)


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def optimize(
    study: optuna.Study,
    objective: Objective,
    cfg: RunConfig,
    *,
    observer: Observer | None = None,
    budget: Budget | None = None,
    wait_for_running: bool = False,
) -> tuple[str, bool]:
    """Run trials until ``n_trials`` have finished (in any process), the time ``budget``
    leaves for the search is up, or too many failures in a row. Returns why it stopped,
    and whether that was a failure.

    Args:
        observer: told each trial this process ran as it ends (``trial_ended``).
        wait_for_running: when the study has its trials but some still run in other
            processes, wait for them (the refit that follows then sees every trial); a
            trial whose process died goes stale after ``search.grace_period`` and is run
            again here.
    """
    guard = FailureGuard(cfg.search.max_consecutive_failures)
    keep = TopCheckpoints(objective.artifacts, models_kept(cfg))
    callbacks: list[TrialHook] = [guard, keep]
    if observer is not None:
        callbacks.append(observer.trial_ended)
    waiting_logged = False
    while True:
        with warnings.catch_warnings():  # experimental in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # a dead process's trial is retried
        trials = study.get_trials(deepcopy=False)  # one read of the storage per trial
        running = sum(t.state == TrialState.RUNNING for t in trials)
        started = running + sum(t.state in FINISHED for t in trials)
        if started >= cfg.search.n_trials and not (wait_for_running and running):
            return "n_trials", False
        if budget is not None and budget.exhausted(trials):
            return "time budget", False
        if started >= cfg.search.n_trials:  # the rest run in other processes
            if not waiting_logged:
                log.info("waiting for %d trials running in other processes", running)
                waiting_logged = True
            time.sleep(WAIT_POLL_S)
            continue
        objective.known = trials
        study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=callbacks)
        if guard.tripped:
            log.error(guard.message())
            return guard.message(), True
