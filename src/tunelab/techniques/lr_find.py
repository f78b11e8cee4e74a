"""lr-find's sweep as a technique on the one loop (fastai's ``lr_find``, Lightning's LR
finder callback).

The loop trains as usual; this plug-in sets the learning rate of every optimizer step
(growing exponentially from ``start`` to ``end`` over ``steps`` steps), smooths the training
loss (an exponential moving average, debiased), and ends training once the loss has diverged
(four times its lowest smoothed value, or not finite) or all steps ran.

It has no config section and no off state: ``tunelab lr-find`` and ``train.lr: auto``
(``tunelab.evaluation.lr_find``) add it to one fit, so it is not in the registry of the
techniques a recipe switches on.

Example::

    finder = LrFinder(start=1e-7, end=10.0, steps=100)
    fit(model, train, None, ..., techniques=[*techniques, finder])
    finder.lrs, finder.losses, finder.stopped
"""

from __future__ import annotations

import math
from typing import Any

from tunelab.training.hooks import FitState, Technique

SMOOTHING = 0.98
DIVERGED = 4.0


class LrFinder(Technique):
    """Sweeps the learning rate and records the smoothed training loss of each step.

    Attributes:
        lrs: the learning rate of each step whose loss was finite.
        losses: the smoothed training loss after each of those steps.
        stopped: ``diverged`` (the loss ran away), ``end`` (all steps ran), or None (the
            sweep has not ended).
    """

    name = "lr_find"

    def __init__(self, *, start: float, end: float, steps: int) -> None:
        self.start, self.end, self.steps = start, end, steps
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.stopped: str | None = None
        self._taken = 0
        self._average = 0.0
        self._best = math.inf

    def rate(self, step: int) -> float:
        """The learning rate of optimizer step ``step`` (0-based)."""
        return float(self.start * (self.end / self.start) ** (step / max(self.steps - 1, 1)))

    def setup(self, fit: FitState) -> None:
        fit.schedule = self.rate

    def after_step(self, fit: FitState) -> None:
        assert fit.loss is not None
        value = float(fit.loss)
        lr = self.rate(self._taken)
        self._taken += 1
        if not math.isfinite(value):
            self._end(fit, "diverged")
            return
        self._average = SMOOTHING * self._average + (1 - SMOOTHING) * value
        smoothed = self._average / (1 - SMOOTHING**self._taken)
        self.lrs.append(lr)
        self.losses.append(smoothed)
        self._best = min(self._best, smoothed)
        if self._taken >= self.steps:
            self._end(fit, "end")
        elif smoothed > DIVERGED * self._best:
            self._end(fit, "diverged")

    def _end(self, fit: FitState, how: str) -> None:
        self.stopped = how
        fit.stop = f"lr_find_{how}"

    def describe(self) -> dict[str, Any]:
        return {"steps": len(self.lrs), "stopped": self.stopped}
