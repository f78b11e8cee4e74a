"""The final predictor of a study on rows it did not train on, for its calibration: the
best trial's out-of-fold predictions, or the kept ensemble's members' combined by their
weights (as ``EnsemblePredictor`` combines them)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from tunelab.results.artifacts import TrialArtifacts

log = logging.getLogger("tunelab")


def final_out_of_fold(
    study: optuna.Study, artifacts: TrialArtifacts, best: FrozenTrial, ensemble: dict[str, Any]
) -> tuple[np.ndarray | None, str]:
    """(rows x classes with NaN where not held out, or None; what they are, in words)."""
    if not ensemble.get("kept"):
        return _oof(artifacts, best), f"the out-of-fold predictions of trial {best.number}"
    if ensemble.get("method") == "stacking":
        return None, "stacking's meta-learner has no stored out-of-fold predictions"
    members = [(int(m["trial"]), float(m["weight"])) for m in ensemble["members"] if m["weight"]]
    found = [_oof(artifacts, study.trials[number]) for number, _ in members]
    if any(oof is None for oof in found):
        return None, "a member's out-of-fold predictions are missing"
    weights = np.asarray([w for _, w in members]) / sum(w for _, w in members)
    combined = np.tensordot(weights, np.stack([f for f in found if f is not None]), axes=1)
    trials = ", ".join(str(number) for number, _ in members)
    return combined, f"the ensemble's out-of-fold predictions (trials {trials})"


def _oof(artifacts: TrialArtifacts, trial: FrozenTrial) -> np.ndarray | None:
    try:
        return artifacts.oof(trial)
    except (OSError, KeyError, ValueError, optuna.artifacts.exceptions.ArtifactNotFound):
        log.warning("trial %d: no out-of-fold predictions to calibrate on", trial.number)
        return None
