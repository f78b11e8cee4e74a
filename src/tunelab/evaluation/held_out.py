"""What ``tunelab train``'s predictor predicts on rows it did not train on, for its
calibration (``evaluation/calibration.py``); a study's final predictor has its own
(``ensembles/held_out.py``)."""

from __future__ import annotations

import numpy as np

from tunelab.data import take
from tunelab.errors import NonFiniteOutputs
from tunelab.evaluation.holdout import inputs_frame
from tunelab.evaluation.prepare import Prepared
from tunelab.results.predictor import AnyPredictor


def held_out_of_fit(
    prepared: Prepared, predictor: AnyPredictor, oof: np.ndarray | None
) -> tuple[np.ndarray | None, np.ndarray, str]:
    """(probabilities, class codes, what they are) for ``tunelab train``'s predictor: the
    k-fold estimate's out-of-fold predictions, else its own on the validation rows."""
    codes = prepared.target.values
    if oof is not None:
        return oof, codes, "the k-fold estimate's out-of-fold predictions"
    rows = prepared.split.validation
    if predictor.task == "regression" or len(rows) == 0:
        return None, codes[rows], "no validation rows"
    frame = inputs_frame(take(prepared.raw.inputs, rows), predictor)
    try:
        return predictor.predict_proba(frame), codes[rows], "the validation rows"
    except NonFiniteOutputs:  # diverged: the test evaluation says so, naming the cause
        return None, codes[rows], "the validation rows' outputs are not finite"
