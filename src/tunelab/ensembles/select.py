"""How members are combined, decided on out-of-fold predictions only (never the test rows).

Every method is the function named after it (``ensemble.method``; the names are declared in
``tunelab.registry.EnsembleMethodName``). It takes the candidates' out-of-fold predictions
on the same rows (``(members, rows, outputs)``: class probabilities, or values for
regression) and the ``Options``, and returns weights (or a stacker) with the score its
combination reaches on those rows.

- ``mean``: equal weights.
- ``weighted``: weights on the simplex that minimize the loss (log loss or squared error).
- ``greedy``: Caruana et al. (2004): start from the best member (the ensemble stage starts
  from the leaderboard's best trial), then add, with replacement, whichever member improves
  the ensemble most; keep the best round. Never worse on these rows than the member it
  starts from.
- ``stacking``: a logistic (or ridge) regression on the members' outputs side by side;
  its own score is estimated by 5-fold cross-validation over these rows, so the stacker is
  not judged on rows it was fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tunelab.results.ensemble import LinearStacker, combine
from tunelab.training.metrics import GREATER_IS_BETTER, compute_metrics

STACKING_FOLDS = 5


@dataclass(frozen=True)
class Options:
    """What the methods take besides the predictions; each reads only its own.

    Attributes:
        rounds: greedy: selection rounds.
        start: greedy: the member it starts from; default the best on the metric. The
            ensemble stage starts from the leaderboard's best trial, the one it must beat.
        seed: stacking: the seed of its cross-validation folds.
    """

    rounds: int = 25
    start: int | None = None
    seed: int = 0


DEFAULT = Options()


@dataclass(frozen=True)
class Choice:
    """A combination of the candidates and its out-of-fold score.

    Attributes:
        weights: one per candidate (zeros for those left out).
        score: the metric of the combination on the out-of-fold rows.
        predictions: the combination's predictions on those rows (rows x outputs; for
            stacking its cross-validated estimate).
        stacker: the fitted meta-learner (stacking), else None.
    """

    weights: np.ndarray
    score: float
    predictions: np.ndarray
    stacker: LinearStacker | None = None


def score(task: str, truth: np.ndarray, predicted: np.ndarray, metric: str) -> float:
    values = predicted[:, 0] if task == "regression" else predicted
    return compute_metrics(task, truth, values)[metric]


# an improvement smaller than this (relative) is rounding, not a better combination
TOLERANCE = 1e-9


def better(a: float, b: float, metric: str) -> bool:
    """Whether score ``a`` beats ``b`` by more than rounding."""
    margin = TOLERANCE * max(1.0, abs(b))
    return a > b + margin if GREATER_IS_BETTER.get(metric, False) else a < b - margin


def member_scores(task: str, truth: np.ndarray, oof: np.ndarray, metric: str) -> list[float]:
    return [score(task, truth, member, metric) for member in oof]


def mean(
    task: str, truth: np.ndarray, oof: np.ndarray, metric: str, options: Options = DEFAULT
) -> Choice:
    return _blend(task, truth, oof, metric, np.full(len(oof), 1.0 / len(oof)))


def _blend(
    task: str, truth: np.ndarray, oof: np.ndarray, metric: str, weights: np.ndarray
) -> Choice:
    predictions = combine(oof, weights, None)
    return Choice(weights, score(task, truth, predictions, metric), predictions)


def greedy(
    task: str, truth: np.ndarray, oof: np.ndarray, metric: str, options: Options = DEFAULT
) -> Choice:
    """Caruana's ensemble selection with replacement, ``options.rounds`` rounds from
    ``options.start``; the best round is kept."""
    singles = member_scores(task, truth, oof, metric)
    start = options.start
    first = start if start is not None else _best_index(singles, metric)
    counts = np.zeros(len(oof))
    counts[first] = 1
    total = oof[first].copy()
    best = _blend(task, truth, oof, metric, counts / counts.sum())
    for _ in range(options.rounds):
        n = counts.sum()
        trials = [score(task, truth, (total + member) / (n + 1), metric) for member in oof]
        pick = _best_index(trials, metric)
        counts[pick] += 1
        total += oof[pick]
        if better(trials[pick], best.score, metric):
            best = _blend(task, truth, oof, metric, counts / counts.sum())
    return best


def _best_index(scores: list[float], metric: str) -> int:
    return int(np.argmax(scores) if GREATER_IS_BETTER.get(metric) else np.argmin(scores))


def weighted(
    task: str, truth: np.ndarray, oof: np.ndarray, metric: str, options: Options = DEFAULT
) -> Choice:
    """Simplex weights minimizing log loss (classification) or squared error (regression),
    fitted with L-BFGS on a softmax parametrization."""
    from scipy.optimize import minimize

    codes = truth.astype(np.int64) if task != "regression" else None

    def loss(logits: np.ndarray) -> float:
        w = np.exp(logits - logits.max())
        blended = combine(oof, w / w.sum(), None)
        if codes is None:
            return float(np.mean((blended[:, 0] - truth) ** 2))
        picked = np.clip(blended[np.arange(len(codes)), codes], 1e-15, 1.0)
        return float(-np.mean(np.log(picked)))

    found = minimize(loss, np.zeros(len(oof)), method="L-BFGS-B")
    w = np.exp(found.x - found.x.max())
    return _blend(task, truth, oof, metric, w / w.sum())


def stacking(
    task: str, truth: np.ndarray, oof: np.ndarray, metric: str, options: Options = DEFAULT
) -> Choice:
    """A linear meta-learner on the members' outputs; scored by cross-validation."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

    features = np.concatenate(list(oof), axis=1)
    if task == "regression":
        ridge = Ridge(alpha=1.0)
        folds = KFold(STACKING_FOLDS, shuffle=True, random_state=options.seed)
        estimate = cross_val_predict(ridge, features, truth, cv=folds)[:, None]
        stacker = LinearStacker.from_sklearn(ridge.fit(features, truth), "ridge")
    else:
        logistic = LogisticRegression(C=1.0, max_iter=2000)
        smallest = int(np.bincount(truth.astype(np.int64)).min())
        splits = max(2, min(STACKING_FOLDS, smallest))
        folds = StratifiedKFold(splits, shuffle=True, random_state=options.seed)
        estimate = cross_val_predict(logistic, features, truth, cv=folds, method="predict_proba")
        stacker = LinearStacker.from_sklearn(logistic.fit(features, truth), "logistic")
    weights = np.full(len(oof), 1.0 / len(oof))
    return Choice(weights, score(task, truth, estimate, metric), estimate, stacker)
