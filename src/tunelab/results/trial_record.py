"""What a study keeps with each finished trial, in one user attribute (one storage write a
trial instead of one per field; Optuna has no batch write).

The record of a trial holds ``fold_scores`` (one score per fold), ``std`` (their spread,
None for one fold), ``best_epochs`` (the epoch each fold kept), ``oof_metrics`` (every metric
on its out-of-fold predictions) and ``artifacts`` (the ids of its files in the artifact
store). optuna-dashboard shows it under the trial's user attributes as ``cv``.
"""

from __future__ import annotations

from typing import Any

from optuna.trial import FrozenTrial

RECORD = "cv"


def record(trial: FrozenTrial) -> dict[str, Any]:
    """The trial's record (empty for a trial that did not finish its cross-validation)."""
    value = trial.user_attrs.get(RECORD)
    return value if isinstance(value, dict) else {}


# a trial that took an earlier trial's result (the same effective settings): its number
REUSED_ATTR = "reused_from"


def reused_from(trial: FrozenTrial) -> int | None:
    """The trial whose result this one took instead of training (``search.reuse``), or None."""
    value = trial.user_attrs.get(REUSED_ATTR)
    return value if isinstance(value, int) else None
