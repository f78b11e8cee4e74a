"""``tunelab train``: fine-tune once with the config's own values, evaluate once on the test
rows, and write the run directory.

With ``cv.strategy: kfold`` the recipe is first cross-validated on the non-test rows: the
fold scores (mean and spread) and the out-of-fold predictions are written too, an honest
estimate that does not touch the test rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tunelab.config import RunConfig
from tunelab.evaluation.crossval import CrossValidation, cross_validate
from tunelab.evaluation.fitting import Fitted, fit_on_rows
from tunelab.evaluation.holdout import evaluate_and_write
from tunelab.evaluation.prepare import Prepared, prepare
from tunelab.observer import Observer
from tunelab.report import write_report
from tunelab.resolved import write_resolved
from tunelab.results.rundir import RunDir, open_run_dir, release_run_dir, write_json
from tunelab.results.stages import LateStages, StageFailure
from tunelab.tracking import Tracking, refuse_unreachable
from tunelab.training.log import log, log_epochs, log_fold_epochs


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
    observer: Observer | None = None,
    prepared: Prepared | None = None,
    trust_code: bool = False,
) -> TrainSummary:
    """Fine-tune once on the train rows, evaluate once on the test rows, write the run.

    Writes ``config.yaml``, ``history.json``, ``metrics.json``, ``test_inputs.csv``,
    ``test_predictions.csv``, ``final/`` (the predictor) and ``report.html``; with
    ``cv.strategy: kfold`` also ``folds.json`` and ``oof.npz``. The trackers of
    ``cfg.tracking`` get the fit's curves and test scores. Data ``prepared`` with no test
    rows (the scikit-learn estimators, scored outside) is fitted and written without a
    test evaluation, trackers or report.

    Args:
        observer: told every epoch of the final fit (``epoch``) and of the k-fold
            estimate (``fold_epoch``).
        prepared: the loaded data of ``cfg``; loaded here when None.
        trust_code: a ``py:`` architecture named inside a ``file:`` checkpoint may run.
    """
    refuse_unreachable(cfg)  # before the run directory: a mistyped address leaves none
    run = open_run_dir(cfg, out, overwrite=overwrite)
    try:
        prepared = replace(prepared or prepare(cfg), cache_dir=run.features)
        return _train_into(run, cfg, prepared, observer or Observer(), trust_code=trust_code)
    finally:
        release_run_dir(run)


def _train_into(
    run: RunDir, cfg: RunConfig, prepared: Prepared, observer: Observer, *, trust_code: bool
) -> TrainSummary:
    log.info("tunelab train: %s into %s", cfg.name, run.path)
    write_resolved(run.config, cfg, prepared.raw)  # notes on values the data make unused
    log.info("%s", describe_data(prepared))
    if len(prepared.split.test) == 0:  # nothing to evaluate on: a scikit-learn estimator's
        fitted, extra = fit_recipe(run, cfg, prepared, observer, trust_code=trust_code)
        return TrainSummary(run.path, write_unscored(run, prepared, fitted, extra), fitted)
    metric = prepared.metric
    tracking = Tracking.open(cfg, run, metric=metric)  # fails before training
    fitted, extra = fit_recipe(run, cfg, prepared, observer, trust_code=trust_code)
    metrics = evaluate_and_write(run, prepared, fitted, seed=cfg.seed, extra=extra)
    stages = LateStages(run)  # a failure here costs nothing that finished
    stages.attempt("tracking", lambda: tracking.final(metrics, history=fitted.result.history))
    stages.conclude(lambda: write_report(run.path))
    interval = metrics["test_interval"]
    score, low, high = metrics["test"][metric], interval["low"], interval["high"]
    log.info("test %s %.4f [%.4f, %.4f] (%s)", metric, score, low, high, interval["method"])
    return TrainSummary(run.path, metrics, fitted, failed_stages=stages.failures)


def fit_recipe(
    run: RunDir, cfg: RunConfig, prepared: Prepared, observer: Observer, *, trust_code: bool
) -> tuple[Fitted, dict[str, Any]]:
    """With ``cv.strategy: kfold``, the k-fold estimate first (written to ``folds.json``
    and ``oof.npz``); then the one fit on the train rows. Returns the fit and what
    ``metrics.json`` adds (``cross_validation``)."""
    split, metric, epochs = prepared.split, prepared.metric, cfg.train.epochs
    extra: dict[str, Any] = {}
    if cfg.cv.strategy == "kfold":
        folds = cfg.cv.folds * cfg.cv.repeats
        hook = log_fold_epochs(folds=folds, epochs=epochs, metric=metric, then=observer.fold_epoch)
        cv = cross_validate(cfg, prepared, on_epoch=hook, trust_code=trust_code)
        extra["cross_validation"] = write_cross_validation(run, cv)
    logged = [observer.epoch, log_epochs(epochs=epochs, metric=metric)]
    fitted = fit_on_rows(
        cfg, prepared, split.train, split.validation, callbacks=logged, trust_code=trust_code
    )
    return fitted, extra


def write_unscored(
    run: RunDir, prepared: Prepared, fitted: Fitted, extra: dict[str, Any]
) -> dict[str, Any]:
    """``history.json``, ``final/`` and ``metrics.json`` (validation scores only) of a fit
    with no test rows."""
    write_json(run.history, fitted.result.history)
    fitted.predictor.save(run.final)
    metrics = {
        "task": prepared.target.task,
        "metric": prepared.metric,
        "validation": fitted.result.final,
        **extra,
    }
    write_json(run.metrics, metrics)
    return metrics


def describe_data(prepared: Prepared) -> str:
    """``sklearn:digits: image, multiclass; 1149 train / 288 validation / 360 test rows``"""
    rows = prepared.split
    return (
        f"{prepared.raw.origin}: {prepared.raw.modality}, {prepared.target.task}; "
        f"{len(rows.train)} train / {len(rows.validation)} validation / {len(rows.test)} test rows"
    )


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
