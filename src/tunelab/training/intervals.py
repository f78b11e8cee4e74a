"""Confidence intervals of a test metric that respect its range.

A percentile bootstrap of accuracy collapses when every test row is right: every resample
scores 1.0, so 36 of 36 correct reads ``[1.0000, 1.0000]``, as if 36 rows proved the model
perfect. Accuracy is a binomial proportion, so it gets Wilson's score interval (36 of 36:
[0.904, 1.000]), which stays inside [0, 1] and never collapses. Balanced accuracy is the
mean of the per-class proportions: it gets the equal-tailed interval of the mean of their
Beta posteriors (Brodersen et al., 2010, "The balanced accuracy and its posterior
distribution"). Every other metric keeps the percentile bootstrap, whose resamples are
values of the metric and so never leave its range.

Example::

    interval = score_interval("multiclass", truth, proba, "accuracy", level=0.95, seed=0)
    interval.low, interval.high, interval.method  # 0.904, 1.0, "Wilson score interval ..."
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from tunelab.training.metrics import bootstrap_interval

# the range of each metric's values: intervals are clipped to it
METRIC_RANGE: dict[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0),
    "balanced_accuracy": (0.0, 1.0),
    "f1_macro": (0.0, 1.0),
    "roc_auc": (0.0, 1.0),
    "ece": (0.0, 1.0),
    "brier": (0.0, 2.0),  # the sum over classes of squared gaps: 2 at worst
    "log_loss": (0.0, math.inf),
    "rmse": (0.0, math.inf),
    "mae": (0.0, math.inf),
    "r2": (-math.inf, 1.0),
}
BOOTSTRAP_RESAMPLES = 1000
POSTERIOR_DRAWS = 20_000


@dataclass(frozen=True)
class Interval:
    """An interval of a metric at ``level``, and how it was computed (for the reader)."""

    low: float
    high: float
    method: str


def metric_range(metric: str) -> tuple[float, float]:
    """The values ``metric`` can take; unbounded for a name it does not know."""
    return METRIC_RANGE.get(metric, (-math.inf, math.inf))


def wilson(successes: int, trials: int, *, level: float) -> tuple[float, float]:
    """Wilson's score interval of a binomial proportion (inside [0, 1] by construction)."""
    if trials <= 0:
        return float("nan"), float("nan")
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    p = successes / trials
    centre = p + z * z / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    scale = 1 + z * z / trials
    # at 0 or all successes a bound is exactly 0 or 1 (the formula gives it up to rounding)
    low = 0.0 if successes == 0 else max(0.0, (centre - spread) / scale)
    high = 1.0 if successes == trials else min(1.0, (centre + spread) / scale)
    return low, high


def balanced_accuracy_posterior(
    y_true: np.ndarray, predicted_class: np.ndarray, *, level: float, seed: int
) -> tuple[float, float]:
    """The equal-tailed interval of the mean of the classes' Beta(k + 1, n - k + 1)
    posteriors of recall (k of n rows of the class right), by seeded draws."""
    rng = np.random.default_rng(seed)
    draws = np.zeros(POSTERIOR_DRAWS)
    classes = np.unique(y_true)
    for label in classes:
        rows = y_true == label
        right = int(np.sum(predicted_class[rows] == label))
        draws += rng.beta(right + 1, int(rows.sum()) - right + 1, POSTERIOR_DRAWS)
    draws /= len(classes)
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return float(low), float(high)


def score_interval(
    task: str, y_true: np.ndarray, predicted: np.ndarray, metric: str, *, level: float, seed: int
) -> Interval:
    """The ``level`` interval of ``metric`` on the test rows (see the module docstring).

    Args:
        predicted: class probabilities (N, K), or values (N,) for regression.
    """
    rows = len(y_true)
    if task != "regression" and metric == "accuracy":
        right = int(np.sum(np.asarray(predicted).argmax(1) == y_true))
        low, high = wilson(right, rows, level=level)
        return Interval(low, high, f"Wilson score interval ({right} of {rows} rows right)")
    if task != "regression" and metric == "balanced_accuracy":
        low, high = balanced_accuracy_posterior(
            np.asarray(y_true), np.asarray(predicted).argmax(1), level=level, seed=seed
        )
        return Interval(low, high, "Beta posteriors of the per-class recalls (Brodersen 2010)")
    low, high = bootstrap_interval(
        task, y_true, predicted, metric, resamples=BOOTSTRAP_RESAMPLES, level=level, seed=seed
    )
    method = f"percentile bootstrap over the {rows} test rows ({BOOTSTRAP_RESAMPLES} resamples)"
    return Interval(low, high, method)


def clip(low: float, high: float, metric: str) -> tuple[float, float]:
    """``low, high`` inside the range of ``metric``'s values."""
    floor, ceiling = metric_range(metric)
    return min(max(low, floor), ceiling), max(min(high, ceiling), floor)


def clip_difference(low: float, high: float, metric: str) -> tuple[float, float]:
    """A difference of two values of ``metric`` inside what the range allows (±1 for
    accuracy)."""
    floor, ceiling = metric_range(metric)
    width = ceiling - floor
    return max(low, -width), min(high, width)
