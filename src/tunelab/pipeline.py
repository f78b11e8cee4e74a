"""``tunelab train``: fine-tune once with the config's own values, evaluate once on the test
rows, and write the run directory.

With ``cv.strategy: kfold`` the recipe is first cross-validated on the non-test rows: the
fold scores (mean and spread) and the out-of-fold predictions are written too, an honest
estimate that does not touch the test rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tunelab.config import RunConfig
from tunelab.evaluation.crossval import CrossValidation, cross_validate
from tunelab.evaluation.fitting import Fitted, fit_on_rows
from tunelab.evaluation.holdout import evaluate_and_write
from tunelab.evaluation.prepare import Prepared, prepare
from tunelab.report import write_report
from tunelab.results.rundir import RunDir, open_run_dir, write_json
from tunelab.results.stages import LateStages, StageFailure
from tunelab.tracking import Tracking, final_record
from tunelab.training.loop import EpochCallback

FoldEpochHook = Callable[[int, dict[str, Any]], None]


@dataclass
class TrainSummary:
    """What ``train`` wrote; ``failed_stages``: tracking or the report, after the results."""

    run_dir: Path
    metrics: dict[str, Any]
    fitted: Fitted
    failed_stages: list[StageFailure] = field(default_factory=list)


def train(
    cfg: RunConfig,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    callbacks: Sequence[EpochCallback] = (),
    on_fold_epoch: FoldEpochHook | None = None,
    prepared: Prepared | None = None,
    trust_code: bool = False,
) -> TrainSummary:
    """Fine-tune once on the train rows, evaluate once on the test rows, write the run.

    Writes ``config.yaml``, ``history.json``, ``metrics.json``, ``test_inputs.csv``,
    ``test_predictions.csv``, ``final/`` (the predictor) and ``report.html``; with
    ``cv.strategy: kfold`` also ``folds.json`` and ``oof.npz``. The trackers of
    ``cfg.tracking`` get the fit's curves and test scores.

    Args:
        callbacks: called after every epoch of the final fit.
        on_fold_epoch: called with (fold, record) after every epoch of the k-fold estimate.
        trust_code: a ``py:`` architecture named inside a ``file:`` checkpoint may run.
    """
    run = open_run_dir(cfg, out, overwrite=overwrite)
    prepared = replace(prepared or prepare(cfg), cache_dir=run.features)
    tracking = Tracking.open(cfg, run, metric=prepared.metric)  # fails before training
    extra: dict[str, Any] = {}
    if cfg.cv.strategy == "kfold":
        cv = cross_validate(cfg, prepared, on_epoch=on_fold_epoch, trust_code=trust_code)
        extra["cross_validation"] = write_cross_validation(run, cv)
    split = prepared.split
    fitted = fit_on_rows(
        cfg, prepared, split.train, split.validation, callbacks=callbacks, trust_code=trust_code
    )
    metrics = evaluate_and_write(run, prepared, fitted, seed=cfg.seed, extra=extra)
    stages = LateStages(run)  # a failure here costs nothing that finished
    stages.attempt(
        "tracking", lambda: tracking.final(final_record(metrics, history=fitted.result.history))
    )
    stages.conclude(lambda: write_report(run.path))
    return TrainSummary(run.path, metrics, fitted, failed_stages=stages.failures)


def write_cross_validation(run: RunDir, cv: CrossValidation) -> dict[str, Any]:
    """``folds.json`` (scores, epochs, rows of each fold) and ``oof.npz``; returns the
    summary that ``metrics.json`` carries."""
    summary = {
        "metric": cv.metric,
        "folds": len(cv.scores),
        "mean": cv.mean,
        "std": cv.std,
        "scores": cv.scores,
        "epochs": cv.epochs,
        "seconds": cv.seconds,
    }
    write_json(
        run.folds,
        {**summary, "validation_rows": [val.tolist() for _, val in cv.splits]},
    )
    np.savez_compressed(run.oof, predictions=cv.oof, scores=np.asarray(cv.scores))
    return summary
