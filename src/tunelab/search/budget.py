"""One time budget for the whole run: the search stops early enough for what follows it.

``budget: 480`` means the run should be done in eight minutes: search, refit of the best,
and the ensemble. After each trial the search estimates what the rest will cost from the
trials it has timed (a refit trains about one fold's epochs on all the non-test rows; an
ensemble of refit members costs one refit per member) and starts no trial that could not
finish before the time that leaves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from statistics import median

from optuna.trial import FrozenTrial, TrialState

from tunelab.config import RunConfig

# seconds for loading fold models, predicting and writing files after the search
FIXED_TAIL = 3.0


@dataclass(frozen=True)
class Budget:
    """When the search must stop.

    Attributes:
        end: the Unix time the whole run should be done by (None: no budget).
        timeout_end: ``search.timeout``'s end (None: none).
        refits_after: how many refit-sized fits follow the search (the best, its bag,
            refit ensemble members).
        rows_ratio: non-test rows / one fold's training rows (a refit's size against a
            fold's).
        folds: folds per trial.
    """

    end: float | None
    timeout_end: float | None
    refits_after: float
    rows_ratio: float
    folds: int

    def stop_time(self, trials: list[FrozenTrial]) -> float | None:
        """The time after which no new trial should start (None: never for the budget),
        given the study's trials."""
        durations = [
            t.duration.total_seconds()
            for t in trials
            if t.state == TrialState.COMPLETE and t.duration is not None
        ]
        ends = [self.timeout_end] if self.timeout_end is not None else []
        if self.end is not None:
            trial = median(durations) if durations else 0.0
            refit = trial / max(self.folds, 1) * self.rows_ratio
            ends.append(self.end - FIXED_TAIL - self.refits_after * refit - trial)
        return min(ends) if ends else None

    def exhausted(self, trials: list[FrozenTrial]) -> bool:
        stop = self.stop_time(trials)
        return stop is not None and time.time() >= stop


def run_budget(
    cfg: RunConfig, *, end: float | None, timeout_end: float | None, fold_fraction: float
) -> Budget:
    """The budget of ``cfg``: the run's end (``budget``), the search's (``search.timeout``).

    Args:
        fold_fraction: the share of the non-test rows one fold trains on.
    """
    ensemble = cfg.ensemble
    refits = float(ensemble.bagging.seeds)
    if cfg.ensemble_members() == "refit":
        refits += ensemble.size * ensemble.bagging.seeds
    return Budget(
        end=end,
        timeout_end=timeout_end,
        refits_after=refits,
        rows_ratio=1.0 / max(fold_fraction, 1e-6),
        folds=cfg.cv.folds * cfg.cv.repeats if cfg.cv.strategy == "kfold" else 1,
    )


def fold_fraction(cfg: RunConfig, train_rows: int, non_test_rows: int) -> float:
    """The share of the non-test rows one fold trains on."""
    if cfg.cv.strategy == "kfold":
        return (cfg.cv.folds - 1) / cfg.cv.folds
    return train_rows / max(non_test_rows, 1)
