"""Metrics by name, computed with scikit-learn on predicted probabilities or values."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn import metrics as skm

from tunelab.config import CLASSIFICATION_METRICS, REGRESSION_METRICS
from tunelab.errors import ConfigError

# metric -> True when larger is better (the early-stopping and selection direction)
GREATER_IS_BETTER = {
    "accuracy": True,
    "balanced_accuracy": True,
    "f1_macro": True,
    "roc_auc": True,
    "log_loss": False,
    "rmse": False,
    "mae": False,
    "r2": True,
    "val_loss": False,
}


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


def _roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    if proba.shape[1] == 2:
        return float(skm.roc_auc_score(y, proba[:, 1]))
    if len(np.unique(y)) < proba.shape[1]:
        # one-vs-rest AUC is undefined for a class absent from y (tiny validation parts)
        return float("nan")
    return float(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))


_CLASSIFICATION: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda y, p: float(skm.accuracy_score(y, p.argmax(1))),
    "balanced_accuracy": lambda y, p: float(skm.balanced_accuracy_score(y, p.argmax(1))),
    "f1_macro": lambda y, p: float(skm.f1_score(y, p.argmax(1), average="macro")),
    "log_loss": lambda y, p: float(skm.log_loss(y, p, labels=np.arange(p.shape[1]))),
    "roc_auc": _roc_auc,
}
_REGRESSION: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "rmse": lambda y, p: float(np.sqrt(skm.mean_squared_error(y, p))),
    "mae": lambda y, p: float(skm.mean_absolute_error(y, p)),
    "r2": lambda y, p: float(skm.r2_score(y, p)),
}


def compute_metrics(task: str, y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """All metrics of ``task``.

    Args:
        task: binary, multiclass or regression.
        y_true: class codes or target values.
        predicted: class probabilities (N, K) or predicted values (N,).
    """
    table = _REGRESSION if task == "regression" else _CLASSIFICATION
    return {name: fn(y_true, predicted) for name, fn in table.items()}


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
    table = _REGRESSION if task == "regression" else _CLASSIFICATION
    fn, rng, n = table[metric], np.random.default_rng(seed), len(y_true)
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
