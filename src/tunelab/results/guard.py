"""The prediction guard: a NaN or infinite output is never turned into a label or a value.

Every predictor kind passes its outputs through ``check_outputs`` before they become
probabilities, labels or regression values; the error names the first rows and the likely
cause, which the predictor works out only when it is needed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tunelab.data.checks import shown_rows
from tunelab.errors import NonFiniteOutputs


def check_outputs(
    outputs: np.ndarray, *, cause: Callable[[], str], what: str = "the predictor's outputs"
) -> np.ndarray:
    """``outputs`` (one row per input row), refused when any value is NaN or infinite.

    Raises:
        NonFiniteOutputs: naming the rows and ``cause()``.
    """
    values = np.asarray(outputs)
    finite = np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if finite.all():
        return outputs
    rows = np.flatnonzero(~finite)
    raise NonFiniteOutputs(
        f"{what} are NaN or infinite on {len(rows)} of {len(values)} rows (rows "
        f"{shown_rows(rows)}): {cause()}. No prediction is made from them"
    )
