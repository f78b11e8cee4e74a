"""The leaderboard: every trial of a study, best first, with its fold spread; and the
ranking of complete trials every stage uses (top-k checkpoints, ensembles)."""

from __future__ import annotations

from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from tunelab.results.trial_record import record


def ranked(study: optuna.Study) -> list[FrozenTrial]:
    """The complete trials, best first.

    Equal values (many trials tie on the accuracy of a small validation set) are ordered
    by their out-of-fold log loss, a proper score: of two equally accurate trials the one
    whose probabilities are better calibrated ranks first. Remaining ties keep trial order.
    """
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0

    def key(trial: FrozenTrial) -> tuple[float, float]:
        tiebreak = record(trial).get("oof_metrics", {}).get("log_loss", float("inf"))
        return sign * round(trial.value or 0.0, 12), tiebreak

    return sorted(complete, key=key)


def rank_of(
    trials: list[FrozenTrial], value: float, direction: optuna.study.StudyDirection
) -> int:
    """How many of the complete ``trials`` beat ``value`` (0: it would be the best; ties
    count as not beating it, so a tied trial keeps its fold models)."""
    maximize = direction == optuna.study.StudyDirection.MAXIMIZE
    return sum(
        (t.value or 0.0) > value if maximize else (t.value or 0.0) < value
        for t in trials
        if t.state == TrialState.COMPLETE
    )


def leaderboard(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, mean score, std over folds, params, fail reason."""
    rows: list[dict[str, Any]] = []
    best_first = ranked(study)
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
        row.update({f"params.{k}": v for k, v in trial.params.items()})
        row["fail_reason"] = trial.user_attrs.get("fail_reason")
        rows.append(row)
    return pd.DataFrame(rows)
