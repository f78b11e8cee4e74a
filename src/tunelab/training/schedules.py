"""Learning-rate schedules as pure functions of the optimizer step (as in nanoGPT's get_lr)."""

from __future__ import annotations

import math

from tunelab.config import TrainConfig


def lr_at(step: int, *, total_steps: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """The learning rate for optimizer step ``step`` (0-based) of ``total_steps``.

    - constant: ``cfg.lr`` (after an optional linear warm-up).
    - cosine: linear warm-up over ``warmup_fraction`` of the steps, then cosine to 0.
    - onecycle: as ``torch.optim.lr_scheduler.OneCycleLR``: cosine from lr/25 up to lr over
      ``warmup_fraction`` (0.3 when 0) of the steps, then cosine down to lr/1e4.
    - step: multiply by ``step_gamma`` every ``step_every_epochs`` epochs.
    """
    lr, total = cfg.lr_value, max(total_steps, 1)
    warmup = int(cfg.warmup_fraction * total)
    if cfg.schedule == "onecycle":
        # the same phase boundaries as torch's OneCycleLR, so results carry over
        peak = max(float(cfg.warmup_fraction or 0.3) * total - 1, 1.0)
        start, end = lr / 25.0, lr / 25.0 / 1e4
        if step <= peak:
            return _cosine(start, lr, step / peak)
        return _cosine(lr, end, (step - peak) / max(total - 1 - peak, 1.0))
    if step < warmup:
        return lr * (step + 1) / warmup
    if cfg.schedule == "constant":
        return lr
    if cfg.schedule == "cosine":
        progress = (step - warmup) / max(total - warmup, 1)
        return _cosine(lr, 0.0, progress)
    epoch = step // max(steps_per_epoch, 1)
    return float(lr * cfg.step_gamma ** (epoch // cfg.step_every_epochs))


def _cosine(start: float, end: float, progress: float) -> float:
    progress = min(max(progress, 0.0), 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))
