"""One trial: suggest parameters, cross-validate them, store what the trial produced.

A trial's value is the mean of its fold scores. Fold scores, their spread, the epochs each
fold kept, out-of-fold predictions and histories are kept with every trial; the fold models
only when the trial ranks in the top ``keep_top_k``. Any error becomes a failed trial with
its reason (the traceback goes to ``run.log``), and the study goes on.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial

from tunelab.config import RunConfig, apply_params
from tunelab.errors import TunelabError
from tunelab.evaluation.crossval import CrossValidation, Splits, cross_validate, cv_splits
from tunelab.evaluation.prepare import Prepared, prepare
from tunelab.observer import Observer, Observers
from tunelab.results.artifacts import TrialArtifacts
from tunelab.results.leaderboard import rank_of
from tunelab.results.trial_record import RECORD
from tunelab.search.budget import Budget
from tunelab.search.pruning import Pruning
from tunelab.search.space import suggest
from tunelab.training.cores import rejudge
from tunelab.training.metrics import compute_metrics

log = logging.getLogger("tunelab")


@dataclass
class Objective:
    """Callable Optuna objective over a prepared dataset."""

    cfg: RunConfig
    prepared: Prepared
    artifacts: TrialArtifacts
    # told each trial's start and epochs (the live view, a worker's lines)
    observer: Observer = field(default_factory=Observer)
    # the time budget: a trial that would run past its search deadline is pruned
    budget: Budget | None = None
    # the study's trials as the trial loop last read them (rank_of counts the complete ones)
    known: list[FrozenTrial] = field(default_factory=list)
    splits: Splits = field(init=False)
    _by_data: dict[str, Prepared] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.splits = cv_splits(self.cfg, self.prepared)

    def __call__(self, trial: optuna.Trial) -> float:
        try:
            return self._run(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            reason = failure_reason(exc)
            trial.set_user_attr("fail_reason", reason)
            log.error("trial %d failed: %s", trial.number, reason, exc_info=not _expected(exc))
            raise

    def _run(self, trial: optuna.Trial) -> float:
        rejudge()  # other work is judged again for every trial
        params = suggest(trial, self.cfg.search.space, self.cfg)
        self.observer.trial_started(trial.number, params)
        cfg = apply_params(self.cfg, params)
        pruner = self.cfg.search.pruner
        per_fold = self.cfg.cv.prune_on == "fold" or pruner == "wilcoxon"
        deadline = self.budget.search_deadline(self.known) if self.budget else None
        pruning = Pruning(
            trial,
            metric=self.prepared.metric,
            prune=not per_fold and pruner != "none",
            deadline=deadline,
        )
        watch, number, folds = Observers(self.observer, pruning), trial.number, len(self.splits)
        cv = cross_validate(
            cfg,
            self._prepared_for(cfg),
            self.splits,
            on_epoch=lambda fold, record: watch.trial_epoch(number, fold, folds, record),
            after_fold=(
                (lambda fold, score: pruning.trial_fold(number, fold, score))
                if per_fold and pruner != "none"
                else None
            ),
        )
        cv_record = {
            "fold_scores": cv.scores,
            "std": cv.std,
            "best_epochs": cv.epochs,
            "oof_metrics": oof_metrics(self.prepared, cv),
            "artifacts": self._store(trial, cv),
        }
        trial.set_user_attr(RECORD, cv_record)
        return cv.mean

    def _prepared_for(self, cfg: RunConfig) -> Prepared:
        """The data as this trial encodes it: images decoded at a searched
        ``data.image_size`` are loaded once per size (the same rows, so the same splits)."""
        if cfg.data == self.cfg.data or not cfg.data.source.startswith("images:"):
            return self.prepared  # max_length applies when the text is tokenized per fit
        key = cfg.data.model_dump_json()
        if key not in self._by_data:
            self._by_data[key] = prepare(cfg)
        return self._by_data[key]

    def _store(self, trial: optuna.Trial, cv: CrossValidation) -> dict[str, str]:
        # fold models that would not rank in the top k are never written (they would be
        # deleted at once)
        # the trials known when this one started: a trial another process finished since
        # can only lower its rank, and the top-k callback then removes its models
        keep = rank_of(self.known, cv.mean, trial.study.direction) < models_kept(self.cfg)
        return self.artifacts.save(
            trial, oof=cv.oof, histories=cv.histories, predictors=cv.predictors if keep else None
        )


def models_kept(cfg: RunConfig) -> int:
    """How many of the best trials keep their fold models: ``search.keep_top_k``, and every
    candidate of an ensemble built from fold models."""
    uses_folds = cfg.ensemble_members() == "folds"
    return max(cfg.search.keep_top_k, cfg.ensemble.size if uses_folds else 0)


def oof_metrics(prepared: Prepared, cv: CrossValidation) -> dict[str, float]:
    """Every metric on the trial's out-of-fold predictions (the rows its folds validated):
    log loss breaks ties between trials of equal accuracy."""
    rows = np.flatnonzero(np.isfinite(cv.oof).all(axis=1))
    if len(rows) == 0:
        return {}
    task = prepared.target.task
    predicted = cv.oof[rows, 0] if task == "regression" else cv.oof[rows]
    values = compute_metrics(task, prepared.target.values[rows], predicted)
    return {k: v for k, v in values.items() if np.isfinite(v)}


def _expected(exc: BaseException) -> bool:
    """A user's mistake or a known failure: its message is the whole story."""
    return isinstance(exc, TunelabError | torch.cuda.OutOfMemoryError)


def failure_reason(exc: BaseException) -> str:
    """One line saying why a trial failed (a user error's message, or the exception type)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return "out of memory: lower train.batch_size or the model size"
    if isinstance(exc, TunelabError):
        return f"{type(exc).__name__}: {exc}".replace("\n", " ")
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    place = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
    return f"{type(exc).__name__}: {exc}{place}".replace("\n", " ")
