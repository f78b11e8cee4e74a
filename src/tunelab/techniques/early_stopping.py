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

from tunelab.config import EarlyStoppingConfig


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
