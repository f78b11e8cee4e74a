"""What a predictor makes of rows, as the table ``tunelab predict`` writes.

Kept apart from the test evaluation (``evaluation.holdout``) so that ``tunelab predict``
imports only the predictor: no scikit-learn, no training code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tunelab.results.predictor import AnyPredictor


def predictions_frame(predictor: AnyPredictor, inputs: Any) -> pd.DataFrame:
    """A table with ``prediction`` and, for classification, one ``proba_<class>`` column each."""
    if predictor.task == "regression":
        return pd.DataFrame({"prediction": predictor.predict(inputs)})
    proba = predictor.predict_proba(inputs)
    assert predictor.classes is not None
    labels = np.asarray(predictor.classes, dtype=object)[proba.argmax(1)]
    frame = pd.DataFrame({"prediction": labels})
    for i, label in enumerate(predictor.classes):
        frame[f"proba_{label}"] = proba[:, i]
    return frame
