"""The learning-rate finder (fastai's ``lr_find``): a short exponential sweep.

A fresh model (with the config's techniques set up: frozen layers, weight decay, ...)
trains on the training rows for ``steps`` batches while the learning rate grows
exponentially from ``start`` to ``end``; the loss is smoothed (exponential moving average,
debiased) and the sweep stops once it has diverged (four times its lowest value, or not
finite). The suggestion is fastai's classic rule: a tenth of the rate at the lowest
smoothed loss, where the loss still falls steeply and training is stable.

``train.lr: auto`` runs the sweep before the first fit that needs it and trains with the
suggestion (once per config in a process; the run's notes say which rate was used).

Example::

    sweep = lr_sweep(cfg, prepared, prepared.split.train)
    sweep.suggestion, sweep.text_plot()
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunelab.config import RunConfig
from tunelab.errors import DataError
from tunelab.evaluation.features import FeatureStore, data_fingerprint, digest
from tunelab.evaluation.network import plan_network, set_up_fit
from tunelab.evaluation.plan import FitPlan, seed_everything
from tunelab.evaluation.prepare import Prepared
from tunelab.training.batching import Batches
from tunelab.training.hooks import Batch, FitState, overriding
from tunelab.training.loop import resolve_device
from tunelab.training.optim import add_trainable, make_optimizer

START_LR = 1e-7
END_LR = 10.0
STEPS = 100
SMOOTHING = 0.98
DIVERGED = 4.0
_found: dict[str, float] = {}


@dataclass
class LrSweep:
    """One sweep: the rates tried, the smoothed losses, and the suggestion.

    Attributes:
        lrs: the learning rate of each step.
        losses: the smoothed (debiased moving-average) training loss after each step.
        suggestion: a tenth of the rate at the lowest smoothed loss.
        lowest: the rate at the lowest smoothed loss.
        stopped: ``diverged`` (the loss ran away) or ``end`` (all steps ran).
    """

    lrs: list[float]
    losses: list[float]
    suggestion: float
    lowest: float
    stopped: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "suggestion": self.suggestion,
            "lowest": self.lowest,
            "stopped": self.stopped,
            "lrs": self.lrs,
            "losses": self.losses,
        }

    def text_plot(self, width: int = 64, height: int = 14) -> str:
        """Loss against log learning rate as characters (``|`` marks the suggestion)."""
        xs, ys = np.log10(self.lrs), np.asarray(self.losses)
        low, high = float(ys.min()), float(np.percentile(ys, 95))
        high = high if high > low else low + 1.0
        grid = [[" "] * width for _ in range(height)]
        for x, y in zip(xs, ys, strict=True):
            col = round((x - xs[0]) / max(xs[-1] - xs[0], 1e-12) * (width - 1))
            row = round((min(y, high) - low) / (high - low) * (height - 1))
            grid[height - 1 - row][col] = "*"
        mark = np.log10(self.suggestion)
        col = round((mark - xs[0]) / max(xs[-1] - xs[0], 1e-12) * (width - 1))
        if 0 <= col < width:
            for line in grid:
                line[col] = "|" if line[col] == " " else line[col]
        lines = [f"{high:>9.3g} ┤" + "".join(grid[0])]
        lines += ["          │" + "".join(line) for line in grid[1:-1]]
        lines.append(f"{low:>9.3g} ┤" + "".join(grid[-1]))
        lines.append(
            f"          {self.lrs[0]:<12.1e}{'lr (log scale)':^{width - 24}}{self.lrs[-1]:>12.1e}"
        )
        return "\n".join(lines)


def lr_sweep(
    cfg: RunConfig,
    prepared: Prepared,
    train_rows: np.ndarray,
    *,
    start: float = START_LR,
    end: float = END_LR,
    steps: int = STEPS,
    trust_code: bool = False,
) -> LrSweep:
    """Sweep the learning rate exponentially over ``steps`` training batches.

    Raises:
        DataError: the loss was never finite (the data or the model is broken).
    """
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"lr": start})})
    seed_everything(cfg.seed)
    plan = FitPlan(cfg=cfg, prepared=prepared, train_rows=train_rows)
    setup = set_up_fit(plan_network(plan, trust_code=trust_code))
    device = resolve_device(cfg.train.device)
    model = setup.inputs.model.to(device)
    state = FitState(
        model=model,
        train=Batches(setup.train, batch_size=cfg.train.batch_size, device=device),
        device=device,
        loss_fn=setup.loss_fn,
        metric="train_loss",
        has_validation=False,
        epochs=1,
    )
    for technique in setup.techniques:
        technique.setup(state)
    optimizer = make_optimizer(
        model, cfg.train, weight_decay=state.weight_decay, lr_scales=state.lr_scales
    )
    state.optimizer = optimizer
    state.add_trainable = lambda params, scale: add_trainable(
        optimizer, model, params, weight_decay=state.weight_decay, lr_scale=scale
    )
    lrs, losses = _sweep(state, setup.techniques, start=start, end=end, steps=steps, seed=cfg.seed)
    if not losses:
        raise DataError("lr-find: the training loss was not finite at the lowest rate")
    lowest = lrs[int(np.argmin(losses))]
    stopped = "diverged" if len(losses) < steps else "end"
    return LrSweep(lrs, losses, suggestion=lowest / 10, lowest=lowest, stopped=stopped)


def _sweep(
    state: FitState,
    techniques: list[Any],
    *,
    start: float,
    end: float,
    steps: int,
    seed: int,
) -> tuple[list[float], list[float]]:
    model, optimizer = state.model, state.optimizer
    assert optimizer is not None
    generator = torch.Generator().manual_seed(seed)
    batch_hooks = overriding(techniques, "on_batch")
    loss_terms = overriding(techniques, "loss_term")
    lrs: list[float] = []
    losses: list[float] = []
    average, best, step = 0.0, math.inf, 0
    while step < steps:
        state.epoch = 0
        model.train()
        for technique in techniques:
            technique.on_epoch_start(state)
        for features, target in state.train.iterate(
            shuffle=True, generator=generator, drop_single=True
        ):
            lr = start * (end / start) ** (step / max(steps - 1, 1))
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            batch = Batch(features, target)
            for technique in batch_hooks:
                batch = technique.on_batch(batch, state)
            outputs = model(*batch.features)
            loss = (
                batch.loss(outputs, state.loss_fn)
                if batch.loss is not None
                else state.loss_fn(outputs, batch.target)
            )
            for technique in loss_terms:
                term = technique.loss_term(outputs, batch, state)
                if term is not None:
                    loss = loss + term
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            if state.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), state.grad_clip)
            optimizer.step()
            value = float(loss.detach())
            step += 1
            if not math.isfinite(value):
                return lrs, losses
            average = SMOOTHING * average + (1 - SMOOTHING) * value
            smoothed = average / (1 - SMOOTHING**step)
            lrs.append(lr)
            losses.append(smoothed)
            best = min(best, smoothed)
            if smoothed > DIVERGED * best or step >= steps:
                return lrs, losses
    return lrs, losses


def resolve_lr(
    cfg: RunConfig, prepared: Prepared, train_rows: np.ndarray, *, trust_code: bool = False
) -> tuple[RunConfig, list[str]]:
    """``cfg`` with ``train.lr: auto`` replaced by the sweep's suggestion, and a note.

    The sweep runs once per config (and dataset) in a process, on the training rows of the
    first fit that needs it; in a run it is kept with the cached features, so the trials
    and worker processes of a study share it.
    """
    if cfg.train.lr != "auto":
        return cfg, []
    key = "lr-" + digest(cfg.model_dump_json(), data_fingerprint(prepared.raw))
    store = FeatureStore(prepared.cache_dir)
    kept = store.load(key)
    if key in _found:
        lr, how = _found[key], "found earlier"
    elif kept is not None:
        lr, how = float(kept["suggestion"][0]), "found earlier"
    else:
        sweep = lr_sweep(cfg, prepared, train_rows, trust_code=trust_code)
        lr, how = sweep.suggestion, f"lowest loss at {sweep.lowest:.2g}"
        store.save(key, {"suggestion": np.asarray([lr]), "lowest": np.asarray([sweep.lowest])})
    _found[key] = lr
    resolved = cfg.model_copy(update={"train": cfg.train.model_copy(update={"lr": lr})})
    return resolved, [f"train.lr auto: lr-find suggested {lr:.3g} ({how}); trained with it"]


def write_plot(sweep: LrSweep, path: Path) -> None:
    """A PNG of loss against learning rate (log scale) with the suggestion marked, drawn
    with Pillow (no plotting library needed)."""
    from PIL import Image, ImageDraw

    width, height, margin = 720, 420, 60
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    xs, ys = np.log10(sweep.lrs), np.asarray(sweep.losses)
    low, high = float(ys.min()), float(np.percentile(ys, 95))
    high = high if high > low else low + 1.0
    span = max(float(xs[-1] - xs[0]), 1e-12)

    def point(x: float, y: float) -> tuple[float, float]:
        px = margin + (x - xs[0]) / span * (width - 2 * margin)
        py = height - margin - (min(y, high) - low) / (high - low) * (height - 2 * margin)
        return px, py

    draw.rectangle([margin, margin, width - margin, height - margin], outline="black")
    draw.line([point(x, y) for x, y in zip(xs, ys, strict=True)], fill="navy", width=2)
    sx, _ = point(float(np.log10(sweep.suggestion)), low)
    draw.line([(sx, margin), (sx, height - margin)], fill="red", width=1)
    draw.text((sx + 4, margin + 4), f"suggested {sweep.suggestion:.2g}", fill="red")
    for exponent in range(math.ceil(xs[0]), math.floor(xs[-1]) + 1):
        tx, _ = point(float(exponent), low)
        draw.line([(tx, height - margin), (tx, height - margin + 5)], fill="black")
        draw.text((tx - 12, height - margin + 8), f"1e{exponent}", fill="black")
    draw.text((margin, 20), "lr-find: smoothed training loss vs learning rate", fill="black")
    draw.text((4, margin - 12), f"{high:.3g}", fill="black")
    draw.text((4, height - margin - 6), f"{low:.3g}", fill="black")
    image.save(path)


def write_sweep(sweep: LrSweep, path: Path) -> None:
    path.write_text(json.dumps(sweep.to_dict(), indent=2) + "\n")
