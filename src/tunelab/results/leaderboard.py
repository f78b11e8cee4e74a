"""The leaderboard: every trial of a study, best first, with its fold spread; and the
ranking of complete trials every stage uses (live progress, top-k checkpoints, the refit,
ensembles, the report)."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from tunelab.results.trial_record import record, reused_from

# the scores that break a tie on the trial's value, in this order: a proper score of the
# out-of-fold predictions (log loss for classification, rmse for regression)
PROPER_SCORES = ("log_loss", "rmse")
# values equal to this many decimals tie (fold means of the same accuracies can differ in
# the last bits of a float)
DIGITS = 12


def ranked(study: optuna.Study, *, copies: bool = False) -> list[FrozenTrial]:
    """The complete trials, best first: the one ranking that live progress, the leaderboard,
    the refit, the ensemble's best single trial and the report all use.

    Trials are ordered by their value (the user's metric). Equal values (many trials tie on
    the accuracy of a small validation set) are ordered by the out-of-fold proper score (log
    loss, or rmse for regression: of two equally accurate trials the one whose probabilities
    are better calibrated ranks first), then by the fold spread (the steadier first), and
    only then by trial number.

    A trial that took an earlier trial's result (``reused_from``) is a copy of it, left out
    unless ``copies``: it would take a second place in an ensemble for the same model.
    """
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not copies:
        complete = [trial for trial in complete if reused_from(trial) is None]
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
    return sorted(complete, key=lambda trial: _key(trial, sign))


def _key(trial: FrozenTrial, sign: float) -> tuple[float, float, float, int]:
    proper = proper_score(trial)
    spread = record(trial).get("std")
    return (
        sign * round(trial.value or 0.0, DIGITS),
        proper[1] if proper is not None else math.inf,
        spread if isinstance(spread, float | int) and math.isfinite(spread) else math.inf,
        trial.number,
    )


def proper_score(trial: FrozenTrial) -> tuple[str, float] | None:
    """The trial's out-of-fold proper score as (name, value), or None without one."""
    scores = record(trial).get("oof_metrics", {})
    for name in PROPER_SCORES:
        if _finite(scores.get(name)):
            return name, float(scores[name])
    return None


def tie_break(study: optuna.Study) -> str | None:
    """Why the best trial is not the first of the trials that share its value, or None when
    trial order alone would have chosen it (said once, in ``metrics.json`` and the summary).

    Example: ``"trials 0 and 7 tie on accuracy 0.9500; trial 7 ranks first by out-of-fold
    log_loss 0.2100 against 0.3400 for trial 0"``.
    """
    order = ranked(study)
    if not order:
        return None
    best = order[0]
    tied = [t for t in order if round(t.value or 0.0, DIGITS) == round(best.value or 0.0, DIGITS)]
    first = min(tied, key=lambda t: t.number)
    if first.number == best.number:
        return None
    metric = study.user_attrs.get("metric", "value")
    numbers = sorted(t.number for t in tied)
    shown = ", ".join(map(str, numbers[:-1])) + f" and {numbers[-1]}"
    return (
        f"trials {shown} tie on {metric} {best.value:.4f}; trial {best.number} ranks first by "
        f"{_separated_by(best, first)}"
    )


def _separated_by(best: FrozenTrial, other: FrozenTrial) -> str:
    ours, theirs = proper_score(best), proper_score(other)
    if ours is not None and (theirs is None or ours[1] != theirs[1]):
        return (
            f"out-of-fold {ours[0]} {ours[1]:.4f} against {_shown(theirs and theirs[1])} "
            f"for trial {other.number}"
        )
    return (
        f"its fold spread, std {_shown(record(best).get('std'))} against "
        f"{_shown(record(other).get('std'))} for trial {other.number}"
    )


def _shown(value: Any) -> str:
    return f"{value:.4f}" if _finite(value) else "none"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def rank_of(trials: list[FrozenTrial], value: float, direction: optuna.study.StudyDirection) -> int:
    """How many of the complete ``trials`` beat ``value`` (0: it would be the best; ties
    count as not beating it, so a tied trial keeps its fold models)."""
    maximize = direction == optuna.study.StudyDirection.MAXIMIZE
    return sum(
        (t.value or 0.0) > value if maximize else (t.value or 0.0) < value
        for t in trials
        if t.state == TrialState.COMPLETE
    )


def leaderboard(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, mean score, std over folds, params (empty where a
    field does not apply to the trial's model), the trial whose result it reused, fail
    reason."""
    rows: list[dict[str, Any]] = []
    best_first = ranked(study, copies=True)
    others = [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.COMPLETE]
    for trial in best_first + sorted(others, key=lambda t: t.number):
        duration = trial.duration.total_seconds() if trial.duration else None
        row: dict[str, Any] = {
            "trial": trial.number,
            "state": trial.state.name.lower(),
            "value": trial.value,
            "std": record(trial).get("std"),
            "folds": len(record(trial).get("fold_scores", [])) or None,
            "oof_log_loss": record(trial).get("oof_metrics", {}).get("log_loss"),
            "seconds": duration,
        }
        # a field not sampled for a trial (it does not apply to its model) stays empty
        row.update({f"params.{k}": v for k, v in trial.params.items()})
        row["reused_from"] = reused_from(trial)
        row["fail_reason"] = trial.user_attrs.get("fail_reason")
        rows.append(row)
    return pd.DataFrame(rows)
