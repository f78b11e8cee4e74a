"""The one evaluation on the held-out test rows, and the files it leaves in the run.

The test rows are set aside before anything is fitted and are scored here once, by the
final predictor: ``metrics.json`` gets the test metrics with an interval of the selection
metric that respects its range (``training.intervals``),
``test_inputs.csv`` the raw rows (as ``tunelab predict`` takes them) and
``test_predictions.csv`` what the predictor made of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tunelab.data import take
from tunelab.errors import NonFiniteOutputs, TrialFailed
from tunelab.evaluation.fitting import Fitted
from tunelab.evaluation.prepare import Prepared
from tunelab.results.predictions import predictions_frame
from tunelab.results.predictor import AnyPredictor
from tunelab.results.rundir import RunDir, write_json
from tunelab.training.intervals import score_interval
from tunelab.training.metrics import compute_metrics


def evaluate_and_write(
    run: RunDir,
    prepared: Prepared,
    fitted: Fitted,
    *,
    seed: int,
    extra: dict[str, Any] | None = None,
    final: AnyPredictor | None = None,
) -> dict[str, Any]:
    """Save the predictor, evaluate it once on the test rows, write the run's files.

    Writes ``history.json``, ``final/``, ``test_inputs.csv``, ``test_predictions.csv`` and
    ``metrics.json`` (with ``extra`` merged in) and returns the metrics.

    Args:
        fitted: the fit whose history and validation scores the metrics report.
        final: the predictor to save and evaluate when it is not ``fitted``'s own (an
            ensemble, a bag); default ``fitted.predictor``.
    """
    split, target = prepared.split, prepared.target
    result = fitted.result
    predictor = final or fitted.predictor
    write_json(run.history, result.history)
    predictor.save(run.final)

    frame = inputs_frame(take(prepared.raw.inputs, split.test), predictor)
    frame.to_csv(run.test_inputs, index=False)
    try:  # the predictor refuses NaN or infinite outputs: here that means training diverged
        predictions = predictions_frame(predictor, frame)
        predicted = test_outputs(predictor, frame)
    except NonFiniteOutputs:
        raise diverged(result.stop_reason) from None
    truth = target.values[split.test]
    labels = truth if target.classes is None else np.asarray(target.classes, dtype=object)[truth]
    predictions.insert(0, "target", labels)
    predictions.to_csv(run.test_predictions, index=False)

    metrics = {
        "task": target.task,
        "metric": prepared.metric,
        "validation": result.final,
        "test": compute_metrics(target.task, truth, predicted),
        "test_interval": _interval(prepared, truth, predicted, seed=seed),
        "rows": {
            "train": len(split.train),
            "validation": len(split.validation),
            "test": len(split.test),
        },
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "stop_reason": result.stop_reason,
        "monitor": result.monitor,
        "seconds": fitted.seconds,
        "notes": predictor.info.get("notes", []),
        "techniques": fitted.predictor.info.get("techniques", {}),
        **(extra or {}),
    }
    write_json(run.metrics, metrics)
    return metrics


def _interval(
    prepared: Prepared, truth: np.ndarray, predicted: np.ndarray, *, seed: int
) -> dict[str, Any]:
    """The 95% interval of the selection metric on the test rows (``metrics.json``)."""
    metric = prepared.metric
    interval = score_interval(prepared.target.task, truth, predicted, metric, level=0.95, seed=seed)
    return {
        "metric": metric,
        "level": 0.95,
        "low": interval.low,
        "high": interval.high,
        "method": interval.method,
    }


def test_outputs(predictor: AnyPredictor, inputs: Any) -> np.ndarray:
    """Probabilities (N, K), or values (N,) for regression."""
    if predictor.task == "regression":
        return np.asarray(predictor.predict(inputs), np.float64)
    return predictor.predict_proba(inputs)


def inputs_frame(inputs: Any, predictor: AnyPredictor) -> pd.DataFrame:
    """Raw inputs as the table ``tunelab predict --input`` takes."""
    if isinstance(inputs, pd.DataFrame):
        return inputs
    if predictor.modality == "text":
        return pd.DataFrame({predictor.input_columns[0]: list(inputs)})
    flat = np.asarray(inputs).reshape(len(inputs), -1)
    return pd.DataFrame(flat, columns=predictor.input_columns)


def diverged(stop_reason: str) -> TrialFailed:
    """The failure of a predictor whose test outputs hold NaN or infinities: training
    diverged, and no metric of such outputs means anything."""
    return TrialFailed(
        f"the trained model predicts NaN or infinite values on the test rows (training "
        f"stopped: {stop_reason}): it diverged. Lower train.lr, add "
        "regularization.grad_clip, or lower regularization.weight_decay, regularization.l1 "
        "and augmentation.noise",
        reason="non_finite",
    )
