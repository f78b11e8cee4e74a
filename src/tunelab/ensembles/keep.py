"""When ``ensemble.keep: auto`` keeps an ensemble: the rule, and the two comparisons behind it.

The ensemble is compared with the leaderboard's best single trial (``results.leaderboard
.ranked``), on the out-of-fold rows both predicted. It is kept only when

1. it is **not worse on the user's metric** (``train.metric``: what the user asked for), and
2. it is **better on the proper score** (log loss for classification, rmse for regression)
   **by more than the noise**.

The noise is that of a paired comparison on the out-of-fold rows: each row's loss (its log
loss, or squared error) under the best single trial minus under the ensemble; the improvement
is the mean of these differences and its noise their standard error. The improvement must
exceed ``NOISE_MULTIPLE`` standard errors (about a one-sided 2.5% test). Paired rows take out
what the two predictors share (how hard each row is), as the ladder's paired folds do, and it
works for a holdout too, where there is one fold and no fold-to-fold spread to take. The
weights were chosen on these same rows, so the improvement is optimistic; the margin is a
guard against keeping an ensemble for a difference in the last decimals (a greedy ensemble
0.0007 better in log loss on 120 rows, and 10 points worse in test accuracy, was once kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tunelab.ensembles.select import TOLERANCE, better
from tunelab.training.metrics import compute_metrics

NOISE_MULTIPLE = 2.0


def proper_score(task: str) -> str:
    """The proper score the rule asks an ensemble to improve: log loss, or rmse."""
    return "rmse" if task == "regression" else "log_loss"


@dataclass(frozen=True)
class Comparison:
    """One out-of-fold comparison of the ensemble with the best single trial.

    Attributes:
        metric: what is compared.
        ensemble, best_single: its value for each.
        passes: whether this comparison lets the ensemble be kept.
        rule: what ``passes`` required, in words.
        improvement: proper score only: the mean per-row loss the ensemble saves (log loss,
            or squared error), positive when it is better.
        noise: proper score only: the standard error of that mean.
    """

    metric: str
    ensemble: float
    best_single: float
    passes: bool
    rule: str
    improvement: float | None = None
    noise: float | None = None

    def to_dict(self) -> dict[str, Any]:
        found = {
            "metric": self.metric,
            "ensemble": self.ensemble,
            "best_single": self.best_single,
            "passes": self.passes,
            "rule": self.rule,
        }
        if self.improvement is not None:
            found |= {"improvement": self.improvement, "noise": self.noise}
        return found


@dataclass(frozen=True)
class Verdict:
    """Both comparisons; the ensemble is kept under ``keep: auto`` when both pass."""

    metric: Comparison
    proper: Comparison
    rows: int

    @property
    def keep(self) -> bool:
        return self.metric.passes and self.proper.passes

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_metric": self.metric.to_dict(),
            "proper_score": self.proper.to_dict(),
            "rows": self.rows,
        }

    def explain(self, method: str, best_trial: int) -> str:
        """One sentence: what was compared and what it decided."""
        m, p = self.metric, self.proper
        against = f"the best single trial (trial {best_trial})"
        user = f"{m.metric} {m.ensemble:.4f} against {m.best_single:.4f}: " + (
            "not worse" if m.passes else "worse"
        )
        proper = f"{p.metric} {p.ensemble:.4f} against {p.best_single:.4f}: " + (
            f"better by more than the noise (improvement {p.improvement:.4g} > "
            f"{NOISE_MULTIPLE:g} x standard error {p.noise:.4g})"
            if p.passes
            else f"not better by more than the noise (improvement {p.improvement:.4g}, "
            f"{NOISE_MULTIPLE:g} x standard error {NOISE_MULTIPLE * (p.noise or 0.0):.4g})"
        )
        return f"out of fold, {method} ensemble against {against}: {user}; {proper}"


def compare(
    task: str, truth: np.ndarray, single: np.ndarray, ensemble: np.ndarray, *, metric: str
) -> Verdict:
    """The rule on out-of-fold predictions (rows x outputs) of the best single trial and of
    the ensemble, on the same rows; ``metric`` is the user's."""
    scores = {
        name: compute_metrics(task, truth, _values(task, outputs))
        for name, outputs in (("single", single), ("ensemble", ensemble))
    }
    user = Comparison(
        metric,
        scores["ensemble"][metric],
        scores["single"][metric],
        passes=not better(scores["single"][metric], scores["ensemble"][metric], metric),
        rule="not worse than the best single trial",
    )
    proper = proper_score(task)
    saved = _row_losses(task, truth, single) - _row_losses(task, truth, ensemble)
    improvement = float(saved.mean())
    noise = float(saved.std(ddof=1) / np.sqrt(len(saved))) if len(saved) > 1 else 0.0
    margin = TOLERANCE * max(1.0, abs(scores["single"][proper]))
    return Verdict(
        metric=user,
        proper=Comparison(
            proper,
            scores["ensemble"][proper],
            scores["single"][proper],
            passes=improvement > max(NOISE_MULTIPLE * noise, margin),
            rule=f"better by more than {NOISE_MULTIPLE:g} standard errors of the paired "
            f"per-row differences ({'squared error' if task == 'regression' else 'log loss'})",
            improvement=improvement,
            noise=noise,
        ),
        rows=len(truth),
    )


def _values(task: str, outputs: np.ndarray) -> np.ndarray:
    return outputs[:, 0] if task == "regression" else outputs


def _row_losses(task: str, truth: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Each row's loss: squared error, or log loss (clipped as ``compute_metrics`` does)."""
    if task == "regression":
        return np.asarray((truth.astype(np.float64) - outputs[:, 0]) ** 2)
    eps = np.finfo(outputs.dtype).eps if np.issubdtype(outputs.dtype, np.floating) else 1e-15
    picked = outputs[np.arange(len(truth)), truth.astype(np.int64)]
    return np.asarray(-np.log(np.clip(picked, eps, 1 - eps)))
