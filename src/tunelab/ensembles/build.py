"""The ensemble stage of ``tunelab run``: candidates from the study, a decision on their
out-of-fold predictions, and the ensemble predictor when it is kept.

Everything here reads what the search stored (each trial's out-of-fold predictions and, for
the top trials, its fold models); the test rows are not touched until the final predictor
is evaluated once, by the caller.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from tunelab.config import RunConfig, apply_params, recipe
from tunelab.ensembles import keep, select
from tunelab.evaluation.prepare import Prepared
from tunelab.evaluation.refit import refit
from tunelab.registry import ENSEMBLE_METHODS
from tunelab.results.artifacts import TrialArtifacts
from tunelab.results.ensemble import EnsemblePredictor
from tunelab.results.leaderboard import ranked
from tunelab.results.predictor import AnyPredictor
from tunelab.results.trial_record import record

log = logging.getLogger("tunelab")


@dataclass
class Candidates:
    """The best trials and their out-of-fold predictions on the rows all of them predicted.

    Attributes:
        trials: best first.
        oof: (trials, rows, outputs).
        rows: the dataset rows of ``oof``'s second axis.
        truth: the target of those rows.
    """

    trials: list[FrozenTrial]
    oof: np.ndarray
    rows: np.ndarray
    truth: np.ndarray


@dataclass
class Decision:
    """What the ensemble stage decided, and why (``ensemble.json`` and ``metrics.json``)."""

    kept: bool
    reason: str
    method: str
    metric: str
    trials: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    params: list[dict[str, Any]] = field(default_factory=list)
    score: float | None = None
    best_single_score: float | None = None
    best_single_trial: int | None = None
    rows: int = 0
    choice: select.Choice | None = field(default=None, repr=False)
    verdict: keep.Verdict | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kept": self.kept,
            "reason": self.reason,
            "method": self.method,
            "metric": self.metric,
            "out_of_fold_rows": self.rows,
            "members": [
                {"trial": t, "weight": w, "params": p}
                for t, w, p in zip(self.trials, self.weights, self.params, strict=True)
            ],
            "out_of_fold": {"ensemble": self.score, "best_single": self.best_single_score},
            "best_single_trial": self.best_single_trial,
            "comparisons": self.verdict.to_dict() if self.verdict else None,
            "stacker": _stacker(self.choice),
        }


def _stacker(choice: select.Choice | None) -> dict[str, Any] | None:
    return choice.stacker.to_dict() if choice and choice.stacker else None


def ensemble_metric(cfg: RunConfig, prepared: Prepared) -> str:
    """What selection and weights optimize: log loss (a proper score) for classification by
    default, the selection metric for regression."""
    if cfg.ensemble.metric != "auto":
        return cfg.ensemble.metric
    return prepared.metric if prepared.target.task == "regression" else "log_loss"


def gather(
    study: optuna.Study, artifacts: TrialArtifacts, prepared: Prepared, size: int
) -> Candidates | None:
    """The ``size`` best trials with their out-of-fold predictions (None under two)."""
    trials, predictions = [], []
    for trial in ranked(study)[:size]:
        try:
            predictions.append(artifacts.oof(trial))
            trials.append(trial)
        except (OSError, KeyError, ValueError, optuna.artifacts.exceptions.ArtifactNotFound):
            log.warning("trial %d: no out-of-fold predictions; not a candidate", trial.number)
    if len(trials) < 2:
        return None
    oof = np.stack(predictions)
    rows = np.flatnonzero(np.isfinite(oof).all(axis=(0, 2)))
    return Candidates(trials, oof[:, rows], rows, prepared.target.values[rows])


def decide(
    cfg: RunConfig, prepared: Prepared, study: optuna.Study, artifacts: TrialArtifacts
) -> Decision:
    """Choose members and weights on out-of-fold predictions; keep the ensemble when it
    passes ``ensemble.keep``'s rule against the leaderboard's best single trial (see
    ``ensembles.keep``), or when ``ensemble.keep`` forces it."""
    method, metric, task = cfg.ensemble.method, ensemble_metric(cfg, prepared), prepared.target.task
    if method == "none":
        return Decision(False, "ensemble.method is none", method, metric)
    found = gather(study, artifacts, prepared, cfg.ensemble.size)
    if found is None:
        return Decision(False, "fewer than two complete trials to combine", method, metric)
    if len(found.rows) < 10:
        return Decision(False, "too few out-of-fold rows to choose weights on", method, metric)
    best = ranked(study)[0]
    if found.trials[0].number != best.number:
        return Decision(
            False,
            f"the best single trial (trial {best.number}) has no out-of-fold predictions to "
            "compare an ensemble with",
            method,
            metric,
        )
    try:
        choice = _choose(cfg, task, found, metric)
    except ValueError as exc:  # e.g. stacking with a class absent from these rows
        return Decision(False, f"{method} could not be fitted: {exc}", method, metric)
    verdict = keep.compare(
        task, found.truth, found.oof[0], choice.predictions, metric=prepared.metric
    )
    kept = cfg.ensemble.keep == "ensemble" or (cfg.ensemble.keep == "auto" and verdict.keep)
    reason = verdict.explain(method, best.number)
    if cfg.ensemble.keep != "auto":
        reason += f"; ensemble.keep is {cfg.ensemble.keep}"
    return Decision(
        kept=kept,
        reason=reason,
        method=method,
        metric=metric,
        trials=[t.number for t in found.trials],
        weights=[float(w) for w in choice.weights],
        params=[recipe(cfg, t.params) for t in found.trials],
        score=choice.score,
        best_single_score=select.score(task, found.truth, found.oof[0], metric),
        best_single_trial=best.number,
        rows=len(found.rows),
        choice=choice,
        verdict=verdict,
    )


def _choose(cfg: RunConfig, task: str, found: Candidates, metric: str) -> select.Choice:
    method = ENSEMBLE_METHODS.get(cfg.ensemble.method, field="ensemble.method")
    # greedy starts from the leaderboard's best trial: the one the ensemble has to beat
    options = select.Options(rounds=cfg.ensemble.rounds, start=0, seed=cfg.seed)
    choice: select.Choice = method(task, found.truth, found.oof, metric, options)
    return choice


class OutOfTime(Exception):
    """The time budget ended before every member of the ensemble was refit."""


def build(
    cfg: RunConfig,
    prepared: Prepared,
    study: optuna.Study,
    artifacts: TrialArtifacts,
    decision: Decision,
    *,
    deadline: float | None = None,
) -> EnsemblePredictor:
    """The ensemble predictor of a kept decision: one member per chosen trial (with a
    stacker, every candidate), each its fold models' mean or a refit on all rows.

    Args:
        deadline: the Unix time refit members must end by (the time budget): a refit
            stops at an epoch boundary, and none starts after it.

    Raises:
        OutOfTime: a refit member would start after ``deadline``.
    """
    assert decision.choice is not None
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    stacked = decision.choice.stacker is not None
    chosen = [
        (by_number[number], weight)
        for number, weight in zip(decision.trials, decision.weights, strict=True)
        if stacked or weight > 0
    ]
    members = [_member(cfg, prepared, trial, artifacts, deadline) for trial, _ in chosen]
    weights = [w for _, w in chosen]
    total = sum(weights)
    return EnsemblePredictor(
        members=members,
        weights=[w / total for w in weights],
        stacker=decision.choice.stacker,
        method=decision.method,
        info={"notes": [decision.reason], "trials": [t.number for t, _ in chosen]},
    )


def _member(
    cfg: RunConfig,
    prepared: Prepared,
    trial: FrozenTrial,
    artifacts: TrialArtifacts,
    deadline: float | None,
) -> AnyPredictor:
    if cfg.ensemble_members() == "folds" and artifacts.has_predictors(trial):
        folds = artifacts.predictors(trial)
        if len(folds) == 1:
            return folds[0]
        return EnsemblePredictor(
            members=folds, weights=[1.0 / len(folds)] * len(folds), method="folds"
        )
    if deadline is not None and time.time() >= deadline:
        raise OutOfTime(f"the time budget ended before trial {trial.number} could be refit")
    tuned = apply_params(cfg, recipe(cfg, trial.params))
    log.info("ensemble: refitting trial %d on all non-test rows", trial.number)
    epochs = record(trial).get("best_epochs")
    return refit(tuned, prepared, fold_epochs=epochs, deadline=deadline).predictor
