"""``calibration: auto | temperature | none``: fit the final predictor's temperature on
predictions it did not train on, and measure what it changed.

The held-out predictions are out of fold (k-fold: every non-test row once) or the
validation rows (``evaluation/held_out.py``); in a study, the best trial's (or the kept
ensemble's members', combined by their weights: ``ensembles/held_out.py``). ``temperature``
always keeps the fitted value; ``auto`` keeps it only when it lowers that held-out log loss,
so calibration never makes the probabilities worse where it was measured. ``metrics.json``
gets the numbers before and after, out of fold and on the test rows, with the reliability
curve the report draws.

Example::

    summary = calibrate("auto", predictor, oof_probabilities, codes, fitted_on="...")
    predictor.temperature  # set when kept
"""

from __future__ import annotations

from typing import Any

import numpy as np

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


def with_test_rows(
    extra: dict[str, Any], truth: np.ndarray, predicted: np.ndarray
) -> dict[str, Any]:
    """``extra`` (what ``metrics.json`` adds) with its ``calibration`` measured on the test
    rows too (``with_test``); unchanged without one, or for a regression (nothing fitted)."""
    if "calibration" not in extra:
        return extra
    return {**extra, "calibration": with_test(extra["calibration"], truth, predicted)}


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
