"""Early stopping: stop when the monitored value stops improving, and say why.

Like Lightning's callback, the comparison is a table lookup and every stop carries a reason.
The state is plain data so it can be saved and resumed.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Literal

import torch

from tunelab.config import EarlyStoppingConfig, RunConfig
from tunelab.techniques.base import TECHNIQUES, DataFacts, FoldOutcome, Needs, TechniqueSpec
from tunelab.training.hooks import FitState, Held, Technique
from tunelab.training.metrics import GREATER_IS_BETTER


class StopReason(StrEnum):
    PATIENCE = "patience_exhausted"
    NON_FINITE = "non_finite"
    MAX_EPOCHS = "max_epochs"


_IMPROVES: dict[str, Callable[[float, float], bool]] = {"min": operator.lt, "max": operator.gt}


@dataclass
class EarlyStopping:
    """Tracks the best value of one monitored quantity.

    Args:
        mode: "max" when larger is better, else "min".
        patience: epochs without improvement before stopping.
        min_delta: the smallest change that counts as an improvement.
        warmup_epochs: epochs at the start in which stopping never triggers.
        enabled: when False, ``update`` only tracks the best epoch and never stops.
    """

    mode: Literal["min", "max"]
    patience: int = 5
    min_delta: float = 0.0
    warmup_epochs: int = 0
    enabled: bool = True
    best: float | None = None
    best_epoch: int = -1
    wait: int = 0

    @classmethod
    def from_config(cls, cfg: EarlyStoppingConfig, *, mode: Literal["min", "max"]) -> EarlyStopping:
        return cls(
            mode=mode,
            patience=cfg.patience,
            min_delta=cfg.min_delta,
            warmup_epochs=cfg.warmup_epochs,
            enabled=cfg.enabled,
        )

    def update(self, epoch: int, value: float) -> tuple[bool, StopReason | None, bool]:
        """Record ``value`` for ``epoch``; returns ``(stop, reason, improved)``."""
        if not math.isfinite(value):
            return True, StopReason.NON_FINITE, False
        delta = -self.min_delta if self.mode == "min" else self.min_delta
        improved = self.best is None or _IMPROVES[self.mode](value, self.best + delta)
        if improved:
            self.best, self.best_epoch, self.wait = value, epoch, 0
        else:
            self.wait += 1
        if self.enabled and epoch + 1 > self.warmup_epochs and self.wait >= self.patience:
            return True, StopReason.PATIENCE, improved
        return False, None, improved

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


class EarlyStoppingTechnique(Technique):
    """Stops when the monitored value stops improving and (``restore_best``) ends training
    on the best epoch's weights. Without validation rows it monitors the training loss."""

    name = "early_stopping"

    def __init__(self, cfg: EarlyStoppingConfig) -> None:
        self.cfg = cfg
        self.tracker = EarlyStopping(mode="min")
        self.monitor = "train_loss"
        self._best: dict[str, torch.Tensor] | None = None
        self._best_outputs: Any = None

    def setup(self, fit: FitState) -> None:
        if fit.has_validation:
            self.monitor = fit.metric if self.cfg.monitor == "metric" else self.cfg.monitor
        mode: Literal["min", "max"] = "max" if GREATER_IS_BETTER.get(self.monitor) else "min"
        self.tracker = EarlyStopping.from_config(self.cfg, mode=mode)
        fit.monitor = self.monitor

    def on_epoch_end(self, record: dict[str, Any], fit: FitState) -> str | None:
        value = float(record.get(self.monitor, float("nan")))
        stop, reason, improved = self.tracker.update(fit.epoch, value)
        if improved and self.cfg.restore_best:
            state = fit.model.state_dict()
            self._best = {k: v.detach().clone() for k, v in state.items()}
            self._best_outputs = fit.outputs
        return reason.value if stop and reason is not None else None

    def on_fit_end(self, fit: FitState) -> None:
        if self._best is None:
            return
        fit.model.load_state_dict(self._best)
        fit.held = Held(epoch=self.tracker.best_epoch, outputs=self._best_outputs)

    def describe(self) -> dict[str, Any]:
        return {**self.cfg.model_dump(), "monitored": self.monitor}


def _build(cfg: RunConfig, facts: DataFacts) -> EarlyStoppingTechnique | None:
    on = cfg.early_stopping.enabled or cfg.early_stopping.restore_best
    return EarlyStoppingTechnique(cfg.early_stopping) if on else None


def epochs_to_stop(cfg: EarlyStoppingConfig) -> int:
    """The fewest epochs in which stopping can save one: the first epoch sets the best,
    ``patience`` epochs without improvement (and ``warmup_epochs``) must pass, and a stop
    after the last epoch saves nothing."""
    return max(cfg.patience, cfg.warmup_epochs) + 2


def _cannot_stop(cfg: RunConfig) -> str | None:
    es, epochs = cfg.early_stopping, cfg.train.epochs
    if not es.enabled or epochs >= epochs_to_stop(es):
        return None
    warmup = f", warmup_epochs {es.warmup_epochs}" if es.warmup_epochs else ""
    return (
        f"early stopping cannot stop within {epochs} epochs (patience {es.patience}{warmup}: "
        f"{epochs_to_stop(es)} epochs or more let it)"
    )


def _idle(cfg: RunConfig) -> str | None:
    reason = _cannot_stop(cfg)
    if reason is None or cfg.early_stopping.restore_best:
        return None
    return f"{reason}, and restore_best is false"


def _limited(cfg: RunConfig) -> str | None:
    reason = _cannot_stop(cfg)
    if reason is None or not cfg.early_stopping.restore_best:
        return None
    return f"{reason}; its rung measures restore_best alone"


def _idle_after(cfg: RunConfig, outcomes: list[FoldOutcome]) -> str | None:
    stopped = any(o.stop_reason == StopReason.PATIENCE for o in outcomes)
    if not outcomes or stopped or any(o.kept_epochs != o.epochs for o in outcomes):
        return None
    es = cfg.early_stopping
    never = (
        f"early stopping never triggered: {cfg.train.epochs} epochs, patience {es.patience}"
        if es.enabled
        else "early stopping is off"
    )
    kept = ", and every fold's best epoch was its last (restore_best kept it)"
    return never + (kept if es.restore_best else "")


TECHNIQUES.register("early_stopping")(
    TechniqueSpec(
        name="early_stopping",
        order=50,
        off={"early_stopping.enabled": False, "early_stopping.restore_best": False},
        build=_build,
        # boosting reads enabled, patience and min_delta: the ladder measures it for trees
        needs=Needs(idle=_idle, idle_after=_idle_after, limited=_limited, trees_take=True),
    )
)
