"""The ladder's statistics: intervals and paired tests over the fold scores of repeated k-fold.

Scores from the folds of repeated k-fold are not independent: any two folds share most of
their training rows. The plain t-test ignores that, its variance comes out too small, and
it finds effects that are not there. Nadeau & Bengio (2003, "Inference for the
Generalization Error") correct the variance of the mean of J such scores from
``s² / J`` to ``(1/J + n_test/n_train) · s²``; Bouckaert & Frank (2004) found this
corrected resampled t-test the one with the right type-I error on repeated k-fold.

Each step of a ladder is one test, so the p-values of one view are corrected for multiple
testing with Holm's step-down method (it controls the family-wise error rate, like
Bonferroni's, and never rejects less).

Example::

    est = estimate([0.91, 0.93, 0.92], test_train_ratio=0.25, level=0.95)
    cmp = compare(new, old, test_train_ratio=0.25, level=0.95)
    adjusted = holm([cmp.p_value, ...])
    verdict(cmp.difference.mean, adjusted[0], alpha=0.05, greater_is_better=True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

Verdict = Literal["helps", "no evidence", "hurts"]


@dataclass(frozen=True)
class Estimate:
    """A mean with its interval (``level`` two-sided, Student's t with the corrected variance)."""

    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class Comparison:
    """The paired difference ``new - old`` with its interval, and the corrected t-test's
    two-sided p-value against no difference."""

    difference: Estimate
    p_value: float


def size_ratio(splits: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """``n_test / n_train`` of the splits (their mean sizes): 1/(k-1) for k folds."""
    if not splits:
        raise ValueError("no splits: the ratio of validation to training rows needs one")
    train = float(np.mean([len(rows) for rows, _ in splits]))
    test = float(np.mean([len(rows) for _, rows in splits]))
    return test / train


def corrected_variance(values: Sequence[float] | np.ndarray, *, test_train_ratio: float) -> float:
    """Nadeau & Bengio's variance of the mean of ``values``: ``(1/J + ratio) · s²``.

    Raises:
        ValueError: fewer than two values, or a value that is not finite.
    """
    array = _finite(values)
    return (1.0 / len(array) + test_train_ratio) * float(np.var(array, ddof=1))


def estimate(
    values: Sequence[float] | np.ndarray, *, test_train_ratio: float, level: float
) -> Estimate:
    """The mean of fold scores and its ``level`` interval with the corrected variance."""
    array = _finite(values)
    mean = float(array.mean())
    half = _quantile(level, len(array)) * math.sqrt(
        corrected_variance(array, test_train_ratio=test_train_ratio)
    )
    return Estimate(mean=mean, low=mean - half, high=mean + half)


def compare(
    new: Sequence[float], old: Sequence[float], *, test_train_ratio: float, level: float
) -> Comparison:
    """The corrected resampled t-test of ``new - old``, fold by fold (the same splits).

    Raises:
        ValueError: the two have different numbers of folds, or a score is not finite.
    """
    if len(new) != len(old):
        raise ValueError(f"paired scores need the same folds, got {len(new)} and {len(old)} scores")
    differences = _finite(new) - _finite(old)
    difference = estimate(differences, test_train_ratio=test_train_ratio, level=level)
    variance = corrected_variance(differences, test_train_ratio=test_train_ratio)
    if variance == 0.0:
        # every fold moved by the same amount (identical scores: by nothing at all)
        return Comparison(difference, 1.0 if difference.mean == 0.0 else 0.0)
    t = difference.mean / math.sqrt(variance)
    p_value = 2.0 * float(stats.t.sf(abs(t), df=len(differences) - 1))
    return Comparison(difference, min(p_value, 1.0))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given.

    The i-th smallest of m p-values is multiplied by (m - i + 1), and the adjusted values
    are made non-decreasing in that order (capped at 1). Rejecting where the adjusted
    p-value is below alpha controls the chance of any false "helps" or "hurts" at alpha.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def verdict(
    difference: float, p_adjusted: float, *, alpha: float, greater_is_better: bool
) -> Verdict:
    """``helps`` or ``hurts`` when the adjusted p-value is below ``alpha`` (by the direction
    of the difference and of the metric), else ``no evidence``."""
    if not p_adjusted < alpha or difference == 0.0:
        return "no evidence"
    better = difference > 0 if greater_is_better else difference < 0
    return "helps" if better else "hurts"


def repeats_needed(
    differences: Sequence[float] | np.ndarray,
    *,
    folds: int,
    test_train_ratio: float,
    alpha: float,
    most: int = 1000,
) -> int | None:
    """The fewest repeats of ``folds``-fold at which the corrected t-test of these paired
    differences would reach ``alpha``, were the mean and spread to stay as observed (a power
    calculation's assumption); None when no number up to ``most`` would: the corrected
    variance never falls below ``test_train_ratio · s²``, however many repeats.

    Raises:
        ValueError: fewer than two differences, or one that is not finite.
    """
    array = _finite(differences)
    mean, spread = abs(float(array.mean())), float(np.std(array, ddof=1))
    if mean == 0.0 or spread == 0.0:
        return None
    bound = mean / (spread * math.sqrt(test_train_ratio))
    if bound <= float(stats.norm.ppf(1.0 - alpha / 2.0)):
        return None  # even infinitely many repeats stay below the critical value
    for repeats in range(1, most + 1):
        count = folds * repeats
        t = mean / (spread * math.sqrt(1.0 / count + test_train_ratio))
        if t >= float(stats.t.ppf(1.0 - alpha / 2.0, df=count - 1)):
            return repeats
    return None


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or len(array) < 2:
        raise ValueError(f"an interval needs at least two fold scores, got {array.size}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"fold scores must be finite numbers, got {array.tolist()}")
    return array


def _quantile(level: float, count: int) -> float:
    return float(stats.t.ppf(0.5 + level / 2.0, df=count - 1))
