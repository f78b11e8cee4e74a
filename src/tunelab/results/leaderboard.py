"""The leaderboard: every trial of a study, best first, with its fold spread."""

from __future__ import annotations

from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState


def leaderboard(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, mean score, std over folds, params, fail reason."""
    rows: list[dict[str, Any]] = []
    for trial in study.get_trials(deepcopy=False):
        duration = trial.duration.total_seconds() if trial.duration else None
        row: dict[str, Any] = {
            "trial": trial.number,
            "state": trial.state.name.lower(),
            "value": trial.value,
            "std": trial.user_attrs.get("std"),
            "folds": len(trial.user_attrs.get("fold_scores", [])) or None,
            "seconds": duration,
        }
        row.update({f"params.{k}": v for k, v in trial.params.items()})
        row["fail_reason"] = trial.user_attrs.get("fail_reason")
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    ascending = study.direction == optuna.study.StudyDirection.MINIMIZE
    done = frame["state"] == TrialState.COMPLETE.name.lower()
    best = frame[done].sort_values("value", ascending=ascending)
    return pd.concat([best, frame[~done].sort_values("trial")], ignore_index=True)
