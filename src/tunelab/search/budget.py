"""One time budget for the whole command: every second of it, from the process's start.

``budget: 480`` means ``tunelab run`` should be done in eight minutes: start-up (imports,
loading the data, opening the study), search, refit of the best, the ensemble, the test
evaluation and the report. After each trial the search estimates what the rest will cost
from the trials it has timed (a refit trains about one fold's epochs on all the non-test
rows; an ensemble of refit members costs one refit per member) and starts no trial that
could not finish before the time that leaves. A trial still running at its deadline is
stopped at an epoch boundary (pruned), and so is the refit and each refit ensemble member
(keeping the weights they have), so nothing overruns by more than one epoch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from statistics import median
from typing import TYPE_CHECKING

from optuna.trial import FrozenTrial, TrialState

from tunelab.config import RunConfig

if TYPE_CHECKING:
    from tunelab.evaluation.prepare import Prepared

# seconds for loading fold models, predicting on the test rows and writing the files and
# the report after the refit
FIXED_TAIL = 3.0
# seconds for the interpreter to exit: unloading torch and the other libraries took 1 to
# 5 s on a loaded 2-core machine, and the budget counts until the command ends
EXIT_TAIL = 3.0
# the user attribute of a trial the budget stopped (where it stopped)
STOPPED_ATTR = "stopped_by_budget"


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
        ends = [self.timeout_end] if self.timeout_end is not None else []
        search_end = self.search_deadline(trials)
        if search_end is not None:
            ends.append(search_end - _trial_seconds(trials))
        return min(ends) if ends else None

    def search_deadline(self, trials: list[FrozenTrial]) -> float | None:
        """The time a running trial must end by, so that the refits after the search still
        fit in the budget (None without a budget)."""
        if self.end is None:
            return None
        refit = _trial_seconds(trials) / max(self.folds, 1) * self.rows_ratio
        return self.end - FIXED_TAIL - EXIT_TAIL - self.refits_after * refit

    @property
    def final_deadline(self) -> float | None:
        """The time the refit and the ensemble's refits must end by: what is left is for
        the test evaluation and the report."""
        return None if self.end is None else self.end - FIXED_TAIL - EXIT_TAIL

    def out_of_time(self) -> bool:
        deadline = self.final_deadline
        return deadline is not None and time.time() >= deadline

    def exhausted(self, trials: list[FrozenTrial]) -> bool:
        stop = self.stop_time(trials)
        return stop is not None and time.time() >= stop


def _trial_seconds(trials: list[FrozenTrial]) -> float:
    """The median duration of the study's complete trials (0 before the first)."""
    durations = [
        t.duration.total_seconds()
        for t in trials
        if t.state == TrialState.COMPLETE and t.duration is not None
    ]
    return median(durations) if durations else 0.0


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


def budget_for(
    cfg: RunConfig, prepared: Prepared, *, end: float | None, timeout_end: float | None
) -> Budget:
    """The budget of a study on ``prepared``: the run's ``end`` (``budget``) and the
    search's (``search.timeout``), each a Unix time or None."""
    rows = len(prepared.split.train) + len(prepared.split.validation)
    return run_budget(
        cfg,
        end=end,
        timeout_end=timeout_end,
        fold_fraction=fold_fraction(cfg, len(prepared.split.train), rows),
    )
