"""Observers made of one plain function, for tests that watch one event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from tunelab.observer import Observer


class OnEpoch(Observer):
    """Calls ``then(record)`` after each epoch of the one fit."""

    def __init__(self, then: Callable[[dict[str, Any]], None]) -> None:
        self.then = then

    def epoch(self, record: dict[str, Any]) -> None:
        self.then(record)


class OnTrialEnded(Observer):
    """Calls ``then(study, trial)`` as each trial ends."""

    def __init__(self, then: Callable[[optuna.Study, FrozenTrial], None]) -> None:
        self.then = then

    def trial_ended(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.then(study, trial)
