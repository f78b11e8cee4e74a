"""Temperature scaling: one number that softens or sharpens a classifier's probabilities.

``p' = softmax(log p / T)``. For a single network this is exactly ``softmax(logits / T)``
(log-softmax differs from the logits by a constant per row); for an ensemble or boosted
trees it applies to the probabilities they combine, once, at the top level. The predicted
class never changes (``T > 0`` keeps each row's order); only how sure the model says it is.

The temperature is fitted (``fit_temperature``) on predictions the model did not train on:
out-of-fold predictions or the validation rows (Guo et al., 2017, "On Calibration of
Modern Neural Networks"). It is stored as ``temperature`` in ``predictor.json`` and checked
on load like every entry (finite, within ``LIMITS``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunelab.errors import FatalError
from tunelab.results.files import DAMAGED

TEMPERATURE = "temperature"
# what fit_temperature can return; a value outside is a damaged predictor.json
LIMITS = (0.01, 100.0)
_TINY = 1e-12


def temper(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities (N, K) at ``temperature``; unchanged (the same array) at 1."""
    if temperature == 1.0:
        return probabilities
    logits = torch.from_numpy(np.log(np.clip(np.asarray(probabilities, np.float64), _TINY, 1)))
    return torch.softmax(logits / temperature, dim=1).numpy()


def fit_temperature(probabilities: np.ndarray, codes: np.ndarray) -> float:
    """The temperature that minimizes the log loss of ``probabilities`` (N, K) against the
    class codes (N,): L-BFGS on ``log T`` (so T stays positive), clipped to ``LIMITS``."""
    logits = torch.from_numpy(np.log(np.clip(np.asarray(probabilities, np.float64), _TINY, 1)))
    target = torch.from_numpy(np.asarray(codes, np.int64))
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = torch.nn.functional.cross_entropy(logits / log_t.exp(), target)
        value.backward()  # type: ignore[no-untyped-call]
        return value

    optimizer.step(loss)  # type: ignore[no-untyped-call]
    fitted = float(log_t.detach().exp())
    if not np.isfinite(fitted):
        return 1.0
    return float(np.clip(fitted, *LIMITS))


def temperature_entry(temperature: float) -> dict[str, Any]:
    """What ``predictor.json`` holds: nothing for an uncalibrated predictor."""
    return {} if temperature == 1.0 else {TEMPERATURE: float(temperature)}


def read_temperature(path: Path, manifest: dict[str, Any]) -> float:
    """The ``temperature`` entry of ``predictor.json``, checked (1.0 when absent).

    Raises:
        FatalError: not a number, outside ``LIMITS``, or on a regression predictor.
    """
    value = manifest.get(TEMPERATURE, 1.0)
    low, high = LIMITS
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not low <= value <= high:  # NaN fails the comparison too
        raise FatalError(
            f"{path}: entry 'temperature' is {value!r:.40}; a temperature is a number from "
            f"{low} to {high}; {DAMAGED}"
        )
    if value != 1.0 and manifest.get("task") == "regression":
        raise FatalError(f"{path}: a regression predictor has no temperature; {DAMAGED}")
    return float(value)
