"""Learning-rate schedules as pure functions of the optimizer step (as in nanoGPT's get_lr).

Each schedule is the function ``NAME_lr`` (``train.schedule``; the names are declared in
``tunelab.registry.ScheduleName``), called with the step (0-based), the number of steps
(at least 1), the steps per epoch (at least 1) and the train section.
"""

from __future__ import annotations

import math

from tunelab.config import TrainConfig
from tunelab.registry import SCHEDULES


def lr_at(step: int, *, total_steps: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """The learning rate for optimizer step ``step`` (0-based) of ``total_steps``.

    - constant: ``cfg.lr`` (after an optional linear warm-up).
    - cosine: linear warm-up over ``warmup_fraction`` of the steps, then cosine to 0.
    - onecycle: as ``torch.optim.lr_scheduler.OneCycleLR``: cosine from lr/25 up to lr over
      ``warmup_fraction`` (0.3 when 0) of the steps, then cosine down to lr/1e4.
    - step: multiply by ``step_gamma`` every ``step_every_epochs`` epochs (after an optional
      linear warm-up).
    """
    schedule = SCHEDULES.get(cfg.schedule, field="train.schedule")
    return schedule(step, max(total_steps, 1), max(steps_per_epoch, 1), cfg)


def constant_lr(step: int, total: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    warm = _warmup(step, total, cfg)
    return cfg.lr_value if warm is None else warm


def cosine_lr(step: int, total: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    warm = _warmup(step, total, cfg)
    if warm is not None:
        return warm
    warmup = int(cfg.warmup_fraction * total)
    return _cosine(cfg.lr_value, 0.0, (step - warmup) / max(total - warmup, 1))


def onecycle_lr(step: int, total: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    # the same phase boundaries as torch's OneCycleLR, so results carry over
    lr = cfg.lr_value
    peak = max(float(cfg.warmup_fraction or 0.3) * total - 1, 1.0)
    start, end = lr / 25.0, lr / 25.0 / 1e4
    if step <= peak:
        return _cosine(start, lr, step / peak)
    return _cosine(lr, end, (step - peak) / max(total - 1 - peak, 1.0))


def step_lr(step: int, total: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    warm = _warmup(step, total, cfg)
    if warm is not None:
        return warm
    epoch = step // steps_per_epoch
    return float(cfg.lr_value * cfg.step_gamma ** (epoch // cfg.step_every_epochs))


def _warmup(step: int, total: int, cfg: TrainConfig) -> float | None:
    """The linear warm-up's rate at ``step``; None once the warm-up is over."""
    warmup = int(cfg.warmup_fraction * total)
    return cfg.lr_value * (step + 1) / warmup if step < warmup else None


def _cosine(start: float, end: float, progress: float) -> float:
    progress = min(max(progress, 0.0), 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))
