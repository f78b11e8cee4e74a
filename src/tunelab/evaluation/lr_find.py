"""The learning-rate finder (fastai's ``lr_find``): a short exponential sweep.

A fresh model (with the config's techniques set up: frozen layers, weight decay, ...)
trains in the one training loop on the training rows for ``steps`` batches while the
learning rate grows exponentially from ``start`` to ``end``; the loss is smoothed
(exponential moving average, debiased) and the sweep stops once it has diverged (four times
its lowest value, or not finite); the ``LrFinder`` technique (``tunelab.techniques.lr_find``)
drives the rate and the stop. The suggestion is fastai's classic rule: a tenth of the rate at
the lowest smoothed loss, where the loss still falls steeply and training is stable.

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

from tunelab.config import RunConfig, apply_params
from tunelab.errors import DataError
from tunelab.evaluation.features import FeatureStore, data_fingerprint, digest
from tunelab.evaluation.network import plan_network, set_up_fit
from tunelab.evaluation.plan import FitPlan, seed_everything
from tunelab.evaluation.prepare import Prepared
from tunelab.techniques.lr_find import LrFinder
from tunelab.training.loop import fit

START_LR = 1e-7
END_LR = 10.0
STEPS = 100
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
    span: tuple[float, float] = (START_LR, END_LR),
    steps: int = STEPS,
    trust_code: bool = False,
) -> LrSweep:
    """Sweep the learning rate exponentially over ``steps`` training batches, from the
    first rate of ``span`` to its last: the one loop trains a fresh model with the config's
    techniques and the ``LrFinder`` technique, which sets each step's rate and stops the
    loop.

    Raises:
        DataError: the loss was never finite (the data or the model is broken).
    """
    start, end = span
    # one optimizer step per batch in full precision (as the sweep always ran), as many
    # epochs as the steps may need, and nothing but the finder ends training early; a
    # freeze_then_unfreeze model sweeps its first phase (the head on the frozen backbone,
    # as fastai's lr_find on a frozen learner): the sweep's passes over the rows are not
    # the epochs the recipe unfreezes at
    cfg = apply_params(
        cfg,
        {
            "train.lr": start,
            "train.epochs": steps,
            "train.grad_accumulation": 1,
            "train.precision": "fp32",
            "early_stopping.enabled": False,
            "finetuning.unfreeze_epoch": steps + 1,
        },
    )
    seed_everything(cfg.seed)
    plan = FitPlan(cfg=cfg, prepared=prepared, train_rows=train_rows)
    setup = set_up_fit(plan_network(plan, trust_code=trust_code))
    finder = LrFinder(start=start, end=end, steps=steps)
    fit(
        setup.inputs.model,
        setup.train,
        None,
        train_cfg=cfg.train,
        loss_fn=setup.loss_fn,
        seed=cfg.seed,
        stream=setup.stream,
        techniques=[*setup.techniques, finder],
    )
    lrs, losses = finder.lrs, finder.losses
    if not losses:
        raise DataError("lr-find: the training loss was not finite at the lowest rate")
    lowest = lrs[int(np.argmin(losses))]
    stopped = "diverged" if finder.stopped == "diverged" else "end"
    return LrSweep(lrs, losses, suggestion=lowest / 10, lowest=lowest, stopped=stopped)


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
