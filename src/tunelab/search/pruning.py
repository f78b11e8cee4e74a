"""Pruning as an observer of a trial: the time budget's stop, and Optuna's pruner judging
the first fold's epochs (or each fold's score)."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import optuna

from tunelab.observer import Observer
from tunelab.search.budget import STOPPED_ATTR
from tunelab.training.loop import would_pass

REPORT_EVERY_S = 1.0  # with no pruner: seconds between epoch reports (live progress only)
log = logging.getLogger("tunelab")


class Pruning(Observer):
    """Reports one trial's first fold's epochs to its study: every epoch when the pruner
    judges them (the other folds have no comparable intermediate values); with no pruner,
    at most one a second, so a dashboard still follows a long trial while short trials
    write nothing per epoch (their curves are in the trial's history). Prunes the trial
    when its next epoch would end after ``deadline`` (the time budget), and, with
    ``per_fold``, when the pruner judges a fold's score.
    """

    def __init__(
        self, trial: optuna.Trial, *, metric: str, prune: bool, deadline: float | None
    ) -> None:
        self.trial, self.metric, self.prune, self.deadline = trial, metric, prune, deadline
        self._last_report = time.monotonic()

    def trial_epoch(self, number: int, fold: int, folds: int, record: dict[str, Any]) -> None:
        trial = self.trial
        if self.deadline is not None and would_pass(self.deadline, record):
            where = f"fold {fold + 1}/{folds} epoch {record['epoch'] + 1}"
            log.info("trial %d stopped after %s: the time budget ends", number, where)
            trial.set_user_attr(STOPPED_ATTR, where)
            raise optuna.TrialPruned(f"stopped after {where}: the time budget ends")
        value = record.get(self.metric)
        if fold != 0 or value is None or not np.isfinite(value):
            return
        if self.prune or time.monotonic() - self._last_report >= REPORT_EVERY_S:
            trial.report(float(value), record["epoch"])
            self._last_report = time.monotonic()
        if self.prune and trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {record['epoch']}")

    def trial_fold(self, number: int, fold: int, score: float) -> None:
        self.trial.report(score, fold)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after fold {fold}")
