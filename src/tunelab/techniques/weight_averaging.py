"""Weight averaging: the model ends on an average of its weights instead of the last ones.

- ``swa`` (stochastic weight averaging, Izmailov et al., 2018): the mean of the weights at the
  end of every epoch from ``start_epoch`` on.
- ``ema``: an exponential moving average, updated after every optimizer step from
  ``start_epoch`` on: ``avg = decay * avg + (1 - decay) * weights``.

Both are ``torch.optim.swa_utils.AveragedModel``. An average of weights is not an average of
the batch-norm statistics they need, so at the end the averaged weights are copied into the
model and its trainable BN layers' running statistics are re-estimated on the training rows
(what ``swa_utils.update_bn`` does, with dropout off). The fit's score is then that of the
averaged weights: the loop validates them once more.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from tunelab.config import RunConfig, WeightAveragingConfig
from tunelab.techniques.base import TECHNIQUES, DataFacts, Needs, TechniqueSpec
from tunelab.techniques.batchnorm import BN_TYPES, reestimate
from tunelab.training.hooks import FitState, Technique


class WeightAveraging(Technique):
    """Keeps the running average (SWA per epoch, EMA per step) and swaps it in at the end."""

    name = "weight_averaging"

    def __init__(self, cfg: WeightAveragingConfig) -> None:
        self.cfg = cfg
        self.start_epoch = 0
        self.updates = 0
        self._average: AveragedModel | None = None

    def setup(self, fit: FitState) -> None:
        self.start_epoch = start_epoch(self.cfg, fit.epochs)

    def after_step(self, fit: FitState) -> None:
        if self.cfg.method == "ema" and fit.epoch >= self.start_epoch:
            self._update(fit.model)

    def on_epoch_end(self, record: dict[str, Any], fit: FitState) -> str | None:
        if self.cfg.method == "swa" and fit.epoch >= self.start_epoch:
            self._update(fit.model)
        return None

    def _update(self, model: nn.Module) -> None:
        if self._average is None:
            ema = self.cfg.method == "ema"
            self._average = AveragedModel(
                model,
                multi_avg_fn=get_ema_multi_avg_fn(self.cfg.decay)  # type: ignore[no-untyped-call]
                if ema
                else None,
                use_buffers=False,
            )
        self._average.update_parameters(model)
        self.updates += 1

    def on_fit_end(self, fit: FitState) -> None:
        if self._average is None:
            fit.note(
                f"weight_averaging: training ended before start_epoch {self.start_epoch}; "
                "the weights are not averaged"
            )
            return
        with torch.no_grad():
            for mine, averaged in zip(
                fit.model.parameters(), self._average.module.parameters(), strict=True
            ):
                mine.copy_(averaged)
        layers = [m for m in fit.model.modules() if isinstance(m, BN_TYPES) and _trains(m)]
        rows = reestimate(fit.model, layers, fit.train) if layers else 0
        fit.weights_changed = True
        unit = "epochs" if self.cfg.method == "swa" else "steps"
        refreshed = f"; BN statistics of {len(layers)} layers re-estimated on {rows} rows"
        fit.note(
            f"weight_averaging: {self.cfg.method} over {self.updates} {unit} from epoch "
            f"{self.start_epoch}" + (refreshed if layers else "")
        )

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.cfg.method,
            "start_epoch": self.start_epoch,
            "decay": self.cfg.decay if self.cfg.method == "ema" else None,
            "updates": self.updates,
        }


def start_epoch(cfg: WeightAveragingConfig, epochs: int) -> int:
    """The first epoch averaged: ``start_epoch``, by default the last quarter of training."""
    return cfg.start_epoch if cfg.start_epoch is not None else (3 * epochs) // 4


def _idle(cfg: RunConfig) -> str | None:
    wa, epochs = cfg.weight_averaging, cfg.train.epochs
    if wa.method == "none" or start_epoch(wa, epochs) < epochs:
        return None
    return (
        f"weight averaging starts at epoch {start_epoch(wa, epochs)}, after the {epochs} "
        "epochs trained: nothing is averaged"
    )


def _limited(cfg: RunConfig) -> str | None:
    wa, epochs = cfg.weight_averaging, cfg.train.epochs
    first = start_epoch(wa, epochs)
    if wa.method != "swa" or epochs - first != 1:
        return None
    return (
        f"swa averages one epoch's weights in {epochs} epochs (from start_epoch {first}): its "
        f"rung measures the re-estimated BN statistics alone; {first + 2} epochs or more "
        "average two"
    )


def _trains(layer: nn.Module) -> bool:
    """A BN layer whose weights were trained (not one a strategy or ``batch_norm.backbone``
    kept frozen: its statistics belong to its pretrained weights)."""
    params = list(layer.parameters(recurse=False))
    return not params or any(p.requires_grad for p in params)


def _build(cfg: RunConfig, facts: DataFacts) -> WeightAveraging | None:
    if cfg.weight_averaging.method == "none":
        return None
    return WeightAveraging(cfg.weight_averaging)


TECHNIQUES.register("weight_averaging")(
    TechniqueSpec(
        name="weight_averaging",
        order=60,
        off={"weight_averaging.method": "none"},
        build=_build,
        needs=Needs(idle=_idle, limited=_limited),
    )
)
