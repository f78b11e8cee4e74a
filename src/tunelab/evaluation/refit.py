"""Refit a chosen recipe on every non-test row, optionally as a bag of models.

A refit has no validation rows, so it trains for as many epochs as the recipe's folds kept
(their median) instead of early stopping. With ``ensemble.bagging`` it trains several models
(other seeds, and bootstrap resamples of the rows) and predicts with their mean.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tunelab.config import RunConfig, apply_params
from tunelab.evaluation.fitting import Fitted, fit_on_rows
from tunelab.evaluation.prepare import Prepared
from tunelab.results.ensemble import EnsemblePredictor
from tunelab.results.predictor import AnyPredictor
from tunelab.training.loop import TIME_BUDGET, EpochCallback, stop_before


@dataclass
class Refit:
    """The refit predictor (one model, or a bag) and its first model's fit.

    Attributes:
        epochs: the epochs planned for each model.
        notes: what the deadline cut short (epochs, bag members), for the summary.
    """

    predictor: AnyPredictor
    first: Fitted
    epochs: int
    seconds: float
    notes: list[str] = field(default_factory=list)


def non_test_rows(prepared: Prepared) -> np.ndarray:
    return np.sort(np.concatenate([prepared.split.train, prepared.split.validation]))


def refit(
    cfg: RunConfig,
    prepared: Prepared,
    *,
    fold_epochs: list[int] | None = None,
    deadline: float | None = None,
    callbacks: Sequence[EpochCallback] = (),
) -> Refit:
    """Train ``cfg`` on all non-test rows for the median of ``fold_epochs`` epochs (all of
    ``train.epochs`` when not given), as ``cfg.ensemble.bagging`` says.

    Args:
        deadline: the Unix time the refit must end by (the time budget): a model stops
            after the epoch whose successor would end later, keeping its weights, and no
            further bag member starts after it (at least one model always trains).
        callbacks: called with every epoch's record (a live view).
    """
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
    callbacks = [*callbacks, *([stop_before(deadline)] if deadline is not None else [])]
    for index in range(bagging.seeds):
        if fits and deadline is not None and time.time() >= deadline:
            break
        seeded = fixed if index == 0 else apply_params(fixed, {"seed": cfg.seed + index})
        chosen = rows
        if bagging.bootstrap:
            rng = np.random.default_rng(cfg.seed + index)
            chosen = np.sort(rng.choice(rows, size=len(rows), replace=True))
        fits.append(fit_on_rows(seeded, prepared, chosen, None, callbacks=callbacks))
    notes = _cut_short(fits, fixed.train.epochs, bagging.seeds)
    predictor: AnyPredictor = fits[0].predictor
    if len(fits) > 1:
        predictor = EnsemblePredictor(
            members=[f.predictor for f in fits],
            weights=[1.0 / len(fits)] * len(fits),
            method="bootstrap bag" if bagging.bootstrap else "seed bag",
            info=dict(fits[0].predictor.info),
        )
    return Refit(predictor, fits[0], fixed.train.epochs, time.perf_counter() - started, notes)


def _cut_short(fits: list[Fitted], epochs: int, seeds: int) -> list[str]:
    """What the deadline cut: a model's epochs (it keeps its last epoch's weights: there
    are no validation rows to pick another), bag members never started."""
    notes = [
        f"the refit{f' (bag member {i + 1})' if seeds > 1 else ''} stopped after epoch "
        f"{len(fit.result.history)} of {epochs}: the time budget ends"
        for i, fit in enumerate(fits)
        if fit.result.stop_reason == TIME_BUDGET
    ]
    if len(fits) < seeds:
        notes.append(f"the time budget ends: {len(fits)} of {seeds} bagged models trained")
    return notes
