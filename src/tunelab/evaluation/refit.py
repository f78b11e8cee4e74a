"""Refit a chosen recipe on every non-test row, optionally as a bag of models.

A refit has no validation rows, so it trains for as many epochs as the recipe's folds kept
(their median) instead of early stopping. With ``ensemble.bagging`` it trains several models
(other seeds, and bootstrap resamples of the rows) and predicts with their mean.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from tunelab.config import RunConfig, apply_params
from tunelab.evaluation.fitting import Fitted, fit_on_rows
from tunelab.evaluation.prepare import Prepared
from tunelab.results.ensemble import EnsemblePredictor
from tunelab.results.predictor import AnyPredictor


@dataclass
class Refit:
    """The refit predictor (one model, or a bag) and its first model's fit."""

    predictor: AnyPredictor
    first: Fitted
    epochs: int
    seconds: float


def non_test_rows(prepared: Prepared) -> np.ndarray:
    return np.sort(np.concatenate([prepared.split.train, prepared.split.validation]))


def refit(cfg: RunConfig, prepared: Prepared, *, fold_epochs: list[int] | None = None) -> Refit:
    """Train ``cfg`` on all non-test rows for the median of ``fold_epochs`` epochs (all of
    ``train.epochs`` when not given), as ``cfg.ensemble.bagging`` says."""
    started = time.perf_counter()
    epochs = int(np.median(fold_epochs)) if fold_epochs else cfg.train.epochs
    fixed = apply_params(
        cfg,
        {
            "train.epochs": max(epochs, 1),
            "early_stopping.enabled": False,
            "early_stopping.restore_best": False,
        },
    )
    rows = non_test_rows(prepared)
    bagging = cfg.ensemble.bagging
    fits: list[Fitted] = []
    for index in range(bagging.seeds):
        seeded = fixed if index == 0 else apply_params(fixed, {"seed": cfg.seed + index})
        chosen = rows
        if bagging.bootstrap:
            rng = np.random.default_rng(cfg.seed + index)
            chosen = np.sort(rng.choice(rows, size=len(rows), replace=True))
        fits.append(fit_on_rows(seeded, prepared, chosen, None))
    predictor: AnyPredictor = fits[0].predictor
    if len(fits) > 1:
        predictor = EnsemblePredictor(
            members=[f.predictor for f in fits],
            weights=[1.0 / len(fits)] * len(fits),
            method="bootstrap bag" if bagging.bootstrap else "seed bag",
            info=dict(fits[0].predictor.info),
        )
    return Refit(predictor, fits[0], fixed.train.epochs, time.perf_counter() - started)
