"""Metrics by name, on predicted probabilities or values (scikit-learn's definitions).

Each metric is the function named after it; the names (and their order) are declared in
``tunelab.registry``, which the config's checks read without importing this module."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tunelab.errors import ConfigError
from tunelab.registry import (
    CLASSIFICATION_METRICS,
    METRIC_FUNCTIONS,
    METRICS,
    REGRESSION_METRICS,
)


def default_metric(task: str) -> str:
    return "rmse" if task == "regression" else "accuracy"


def metrics_for(task: str) -> tuple[str, ...]:
    return REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS


def check_metric(metric: str, task: str, *, field: str = "train.metric") -> None:
    if metric not in metrics_for(task):
        raise ConfigError(
            f"{field}: {metric!r} does not apply to {task}; valid for {task}: "
            f"{', '.join(metrics_for(task))}"
        )


# The metrics are computed in NumPy: they run on the validation rows after every epoch, where
# scikit-learn's input checks cost more than the metric (about 7 ms an epoch for five metrics
# on digits, against well under 1 ms here). ``tests/training/test_metrics.py`` checks every
# one against scikit-learn's own function, ties and absent classes included.


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing their average rank (as scipy's ``rankdata``)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def _binary_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve, by the Mann-Whitney U statistic (ties count one half)."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")  # undefined with one class (tiny validation parts)
    ranks = _average_ranks(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    if proba.shape[1] == 2:
        return _binary_auc(y == 1, proba[:, 1])
    if len(np.unique(y)) < proba.shape[1]:
        # one-vs-rest AUC is undefined for a class absent from y (tiny validation parts)
        return float("nan")
    # one-vs-rest, macro average
    return float(np.mean([_binary_auc(y == c, proba[:, c]) for c in range(proba.shape[1])]))


def _confusion(y: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    cells = np.bincount(y.astype(np.int64) * classes + predicted, minlength=classes * classes)
    return cells.reshape(classes, classes)  # rows: true class, columns: predicted


def accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    return float(np.mean(proba.argmax(1) == y))


def balanced_accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean recall over the classes present in ``y``."""
    matrix = _confusion(y, proba.argmax(1), proba.shape[1])
    support = matrix.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(matrix)[present] / support[present]))


def f1_macro(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean F1 over the classes present in ``y`` or in the predictions."""
    matrix = _confusion(y, proba.argmax(1), proba.shape[1])
    hits = np.diag(matrix).astype(np.float64)
    true, called = matrix.sum(axis=1), matrix.sum(axis=0)
    seen = (true + called) > 0
    return float(np.mean(2 * hits[seen] / (true[seen] + called[seen])))


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    eps = np.finfo(proba.dtype).eps if np.issubdtype(proba.dtype, np.floating) else 1e-15
    picked = np.clip(proba[np.arange(len(y)), y.astype(np.int64)], eps, 1 - eps)
    return float(-np.mean(np.log(picked)))


def brier(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean squared distance of the probabilities from the one-hot truth (scikit-learn's
    ``brier_score_loss``: halved for two classes, so it is (p_positive - y)^2)."""
    onehot = np.eye(proba.shape[1])[y.astype(np.int64)]
    total = float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    return total / 2 if proba.shape[1] == 2 else total


CALIBRATION_BINS = 15


def ece(y: np.ndarray, proba: np.ndarray) -> float:
    """Expected calibration error of the top class: the mean gap between confidence and
    accuracy over 15 equal-width confidence bins, weighted by the rows in each."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    bins = np.minimum((confidence * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
    counts = np.bincount(bins, minlength=CALIBRATION_BINS)
    gap = np.bincount(bins, weights=confidence - correct, minlength=CALIBRATION_BINS)
    return float(np.sum(np.abs(gap)) / max(len(y), 1)) if counts.any() else float("nan")


def rmse(y: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - predicted) ** 2)))


def mae(y: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.abs(y - predicted)))


def r2(y: np.ndarray, predicted: np.ndarray) -> float:
    residual = float(np.sum((y - predicted) ** 2))
    total = float(np.sum((y - np.mean(y)) ** 2))
    if total == 0.0:  # a constant target: perfect or nothing (scikit-learn's convention)
        return 1.0 if residual == 0.0 else 0.0
    return 1.0 - residual / total


# what early stopping and selection minimize; every other metric is maximized
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece", "rmse", "mae", "val_loss", "train_loss"})
# metric -> True when larger is better (the early-stopping and selection direction)
GREATER_IS_BETTER = {name: name not in LOWER_IS_BETTER for name in (*METRICS, "val_loss")}


def _as_values(y_true: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Regression targets and predictions as float64 vectors ((N, 1) predictions too)."""
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    return y, np.asarray(predicted, dtype=np.float64).reshape(len(y))


def compute_metrics(task: str, y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """All metrics of ``task``.

    Args:
        task: binary, multiclass or regression.
        y_true: class codes or target values.
        predicted: class probabilities (N, K) or predicted values (N,).
    """
    if task == "regression":
        y_true, predicted = _as_values(y_true, predicted)
    return {name: METRIC_FUNCTIONS.get(name)(y_true, predicted) for name in metrics_for(task)}


def _function(task: str, metric: str) -> Callable[[np.ndarray, np.ndarray], float]:
    check_metric(metric, task, field="metric")
    function: Callable[[np.ndarray, np.ndarray], float] = METRIC_FUNCTIONS.get(metric)
    return function


def bootstrap_interval(
    task: str,
    y_true: np.ndarray,
    predicted: np.ndarray,
    metric: str,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``metric`` over the rows."""
    if task == "regression":
        y_true, predicted = _as_values(y_true, predicted)
    fn, rng, n = _function(task, metric), np.random.default_rng(seed), len(y_true)
    values = []
    for _ in range(resamples):
        rows = rng.integers(0, n, n)
        if task != "regression" and len(np.unique(y_true[rows])) < 2:
            continue
        value = fn(y_true[rows], predicted[rows])
        if np.isfinite(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def paired_bootstrap_difference(
    task: str,
    y_true: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    metric: str,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``metric(first) - metric(second)`` on the same rows, with a percentile bootstrap
    interval from resampling the rows once for both (a paired comparison)."""
    if task == "regression":
        y_true, first = _as_values(y_true, first)
        _, second = _as_values(y_true, second)
    fn, rng, n = _function(task, metric), np.random.default_rng(seed), len(y_true)
    observed = fn(y_true, first) - fn(y_true, second)
    values = []
    for _ in range(resamples):
        rows = rng.integers(0, n, n)
        if task != "regression" and len(np.unique(y_true[rows])) < 2:
            continue
        value = fn(y_true[rows], first[rows]) - fn(y_true[rows], second[rows])
        if np.isfinite(value):
            values.append(value)
    if not values:
        return observed, float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(observed), float(low), float(high)
