"""``calibration: auto | temperature | none``: fit the final predictor's temperature on
predictions it did not train on, and measure what it changed.

The held-out predictions are out of fold (k-fold: every non-test row once) or the
validation rows; in a study, the best trial's (or the kept ensemble's members', combined by
their weights). ``temperature`` always keeps the fitted value; ``auto`` keeps it only when it
lowers that held-out log loss, so calibration never makes the probabilities worse where it
was measured. ``metrics.json`` gets the numbers before and after, out of fold and on the
test rows, with the reliability curve the report draws.

Example::

    summary = calibrate("auto", predictor, oof_probabilities, codes, fitted_on="...")
    predictor.temperature  # set when kept
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tunelab.data import take
from tunelab.errors import NonFiniteOutputs
from tunelab.evaluation.holdout import inputs_frame
from tunelab.evaluation.prepare import Prepared
from tunelab.results.calibration import fit_temperature, temper
from tunelab.results.predictor import AnyPredictor
from tunelab.training.metrics import CALIBRATION_BINS, compute_metrics

MIN_ROWS = 10  # fewer held-out rows cannot tell one temperature from another


def calibrate(
    setting: str,
    predictor: AnyPredictor,
    probabilities: np.ndarray | None,
    codes: np.ndarray | None,
    *,
    fitted_on: str,
) -> dict[str, Any]:
    """Fit and (per ``setting``) set ``predictor.temperature``; the summary for
    ``metrics.json``. ``probabilities`` (N, K) may hold NaN rows (not held out): skipped."""
    summary: dict[str, Any] = {"setting": setting, "temperature": 1.0, "kept": False}
    if predictor.task == "regression":
        return {**summary, "reason": "regression: there are no probabilities to calibrate"}
    if setting == "none":
        return {**summary, "reason": "calibration is none"}
    if probabilities is None or codes is None:
        return {**summary, "reason": f"no held-out predictions ({fitted_on})"}
    rows = np.isfinite(probabilities).all(axis=1)
    held, truth = probabilities[rows], np.asarray(codes)[rows]
    if len(truth) < MIN_ROWS:
        return {**summary, "reason": f"{len(truth)} held-out rows are too few to fit on"}
    fitted = fit_temperature(held, truth)
    before = _scores(truth, held)
    after = _scores(truth, temper(held, fitted))
    better = after["log_loss"] < before["log_loss"]
    kept = setting == "temperature" or better
    if kept:
        predictor.temperature = fitted
    reason = (
        f"temperature {fitted:.3g} fitted on {fitted_on} ({len(truth)} rows): held-out log "
        f"loss {before['log_loss']:.4f} -> {after['log_loss']:.4f}"
        + ("" if kept else "; not kept (auto keeps it only when it lowers the log loss)")
    )
    return {
        **summary,
        "temperature": fitted if kept else 1.0,
        "fitted": fitted,
        "kept": kept,
        "reason": reason,
        "fitted_on": fitted_on,
        "rows": len(truth),
        "held_out": {"before": before, "after": after},
    }


def with_test(summary: dict[str, Any], truth: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """``summary`` with the test rows' log loss, ECE and reliability curve before and after
    (``predicted``: the final predictor's test probabilities, calibrated when kept)."""
    if "fitted" not in summary:
        return summary
    temperature = float(summary["temperature"])
    before = temper(predicted, 1.0 / temperature) if temperature != 1.0 else predicted
    after = predicted if temperature != 1.0 else temper(predicted, float(summary["fitted"]))
    return {
        **summary,
        "test": {"before": _scores(truth, before), "after": _scores(truth, after)},
        "reliability": {"before": reliability(truth, before), "after": reliability(truth, after)},
    }


def _scores(truth: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    task = "binary" if probabilities.shape[1] == 2 else "multiclass"
    found = compute_metrics(task, truth, probabilities)
    return {"log_loss": float(found["log_loss"]), "ece": float(found["ece"])}


def reliability(truth: np.ndarray, probabilities: np.ndarray) -> dict[str, list[float]]:
    """The top class's mean confidence and accuracy per confidence bin (bins with rows)."""
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == truth).astype(np.float64)
    bins = np.minimum((confidence * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
    counts = np.bincount(bins, minlength=CALIBRATION_BINS)
    used = counts > 0
    mean_confidence = np.bincount(bins, weights=confidence, minlength=CALIBRATION_BINS)
    accuracy = np.bincount(bins, weights=correct, minlength=CALIBRATION_BINS)
    return {
        "confidence": (mean_confidence[used] / counts[used]).round(6).tolist(),
        "accuracy": (accuracy[used] / counts[used]).round(6).tolist(),
        "rows": counts[used].astype(float).tolist(),
    }


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
