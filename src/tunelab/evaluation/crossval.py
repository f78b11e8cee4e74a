"""``cross_validate``: the unit of work every stage calls.

A fresh model is fitted per split (scikit-learn's ``cross_validate``, for tunelab's
configs): the score of a fold is the selection metric of the weights the model ends with,
and each validation row's prediction goes into the out-of-fold predictions, which stacking
and the ensembles read and which give an honest estimate without the test rows. No Optuna
here: a search passes hooks that report and prune.

Example::

    splits = cv_splits(cfg, prepared)
    cv = cross_validate(cfg, prepared, splits)
    cv.mean, cv.std, cv.oof
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tunelab.config import RunConfig
from tunelab.data import take
from tunelab.data.splits import kfold_splits
from tunelab.errors import NonFiniteOutputs, TrialFailed
from tunelab.evaluation.fitting import Fitted, fit_on_rows
from tunelab.evaluation.prepare import Prepared
from tunelab.results.predictor import AnyPredictor, Predictor, outputs_to_predictions
from tunelab.training.log import log

Splits = list[tuple[np.ndarray, np.ndarray]]
# (fold, epoch record): called after every epoch; raising stops (a pruned trial)
EpochHook = Callable[[int, dict[str, Any]], None]
# (fold, score): called after every fold; raising stops
FoldHook = Callable[[int, float], None]


@dataclass
class CrossValidation:
    """What ``cross_validate`` measured.

    Attributes:
        metric: the selection metric the scores are in.
        scores: one per fold, of the weights each fold's model ended with.
        epochs: per fold, the epochs trained up to the weights it kept (what a refit on all
            rows trains for).
        histories: per fold, the epoch records.
        stop_reasons: per fold, why training stopped (patience_exhausted, max_epochs).
        oof: out-of-fold predictions, one row per row of the dataset: class probabilities
            (N, K) or values (N, 1); NaN for rows in no validation part (the test rows, and
            the training rows of a holdout); the mean over repeats.
        predictors: the fold models, in fold order.
        splits: the (train, validation) rows of each fold.
        seconds: wall time of all folds.
    """

    metric: str
    scores: list[float] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    histories: list[list[dict[str, Any]]] = field(default_factory=list)
    stop_reasons: list[str] = field(default_factory=list)
    oof: np.ndarray = field(default_factory=lambda: np.zeros((0, 1)), repr=False)
    predictors: list[AnyPredictor] = field(default_factory=list, repr=False)
    splits: Splits = field(default_factory=list, repr=False)
    seconds: float = 0.0

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def std(self) -> float | None:
        """The spread over folds; None for a single holdout score (0.0 would read as
        certain)."""
        return float(np.std(self.scores, ddof=1)) if len(self.scores) > 1 else None


def cv_splits(cfg: RunConfig, prepared: Prepared) -> Splits:
    """The (train, validation) splits of ``cfg.cv``: the holdout's validation rows, or
    k folds (stratified, grouped, repeated) of every non-test row."""
    split = prepared.split
    if cfg.cv.strategy == "holdout":
        return [(split.train, split.validation)]
    rows = np.sort(np.concatenate([split.train, split.validation]))
    target = prepared.target
    labels = target.values[rows] if target.classes is not None and cfg.cv.stratified else None
    groups = prepared.raw.groups[rows] if prepared.raw.groups is not None else None
    return kfold_splits(
        rows, labels, folds=cfg.cv.folds, repeats=cfg.cv.repeats, groups=groups, seed=cfg.seed
    )


def cross_validate(
    cfg: RunConfig,
    prepared: Prepared,
    splits: Splits | None = None,
    *,
    on_epoch: EpochHook | None = None,
    after_fold: FoldHook | None = None,
    trust_code: bool = False,
) -> CrossValidation:
    """Fit a fresh model of ``cfg`` per split and score each on its validation rows.

    Args:
        cfg: the recipe (every fold uses the same seed, so folds differ only by their rows).
        prepared: the loaded data.
        splits: default ``cv_splits(cfg, prepared)``.
        on_epoch: called with (fold, record) after every epoch.
        after_fold: called with (fold, score) after every fold.
        trust_code: a ``py:`` architecture named inside a checkpoint may run.

    Raises:
        TrialFailed: a fold's loss or score is not finite (the message names the fold).
    """
    started = time.perf_counter()
    splits = splits if splits is not None else cv_splits(cfg, prepared)
    target = prepared.target
    width = max(target.num_outputs, 1)
    total = np.zeros((len(target.values), width))
    seen = np.zeros(len(target.values))
    cv = CrossValidation(metric=prepared.metric, splits=splits)
    for fold, (train_rows, val_rows) in enumerate(splits):
        callbacks = [] if on_epoch is None else [_bind(on_epoch, fold)]
        fitted = fit_on_rows(
            cfg, prepared, train_rows, val_rows, callbacks=callbacks, trust_code=trust_code
        )
        score = _fold_score(fitted, fold, prepared.metric)
        cv.scores.append(score)
        cv.epochs.append(_epochs_used(fitted))
        cv.histories.append(fitted.result.history)
        cv.stop_reasons.append(fitted.result.stop_reason)
        cv.predictors.append(fitted.predictor)
        total[val_rows] += _predictions(fitted, prepared, val_rows, fold)
        seen[val_rows] += 1
        log.info(
            "fold %d/%d: %s %.4f (kept %d of %d epochs)",
            fold + 1,
            len(splits),
            prepared.metric,
            score,
            cv.epochs[-1],
            len(fitted.result.history),
        )
        if after_fold is not None:
            after_fold(fold, score)
    with np.errstate(invalid="ignore", divide="ignore"):
        cv.oof = total / seen[:, None]  # NaN where a row was never validated
    cv.seconds = time.perf_counter() - started
    return cv


def _bind(hook: EpochHook, fold: int) -> Callable[[dict[str, Any]], None]:
    return lambda record: hook(fold, record)


def _fold_score(fitted: Fitted, fold: int, metric: str) -> float:
    result = fitted.result
    if result.stop_reason == "non_finite":
        raise TrialFailed(
            f"non-finite loss in fold {fold} at epoch {len(result.history) - 1}; "
            "lower train.lr or add regularization.grad_clip",
            reason="non_finite",
        )
    score = float(result.final.get(metric, np.nan))
    if not np.isfinite(score):
        raise TrialFailed(f"fold {fold}: {metric} is not finite", reason="non_finite")
    return score


def _epochs_used(fitted: Fitted) -> int:
    """Epochs up to the weights the fold kept (all of them for averaged weights)."""
    result = fitted.result
    return result.best_epoch + 1 if result.best_epoch >= 0 else len(result.history)


def _predictions(fitted: Fitted, prepared: Prepared, rows: np.ndarray, fold: int) -> np.ndarray:
    """Predictions on the validation rows: the loop's own outputs for the weights the model
    kept (no second pass), else the predictor's prediction from the raw rows."""
    predictor = fitted.predictor
    outputs = fitted.result.validation_outputs
    if isinstance(predictor, Predictor) and outputs is not None and len(outputs) == len(rows):
        values = outputs_to_predictions(
            outputs, task=predictor.task, target_scale=predictor.target_scale
        )
        return values.reshape(len(rows), -1)
    inputs = take(prepared.raw.inputs, rows)
    try:
        if predictor.task == "regression":
            values = np.asarray(predictor.predict(inputs), np.float64)
        else:
            values = predictor.predict_proba(inputs)
    except NonFiniteOutputs as exc:  # a failed trial, not a stopped study
        raise TrialFailed(f"fold {fold}: {exc}", reason="non_finite") from None
    return values.reshape(len(rows), -1)
