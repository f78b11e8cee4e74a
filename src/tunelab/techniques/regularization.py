"""Regularization: head and backbone dropout, L1, L2 (weight decay), label smoothing, clipping.

L2 is applied through the optimizer's parameter groups (see ``training/optim.py``): decoupled
weight decay with AdamW, the gradient of an L2 loss penalty with SGD, Adam and RMSprop;
never on biases and normalization weights. L1 is added to the training loss here, over the
same weights.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tunelab.config import RegularizationConfig, RunConfig
from tunelab.techniques.base import TECHNIQUES, DataFacts, Needs, TechniqueSpec
from tunelab.training.hooks import Batch, FitState, Technique
from tunelab.training.losses import loss_function

OFF = RegularizationConfig(
    enabled=False,
    dropout=0.0,
    backbone_dropout=None,
    weight_decay=0.0,
    l1=0.0,
    label_smoothing=0.0,
    grad_clip=None,
)
_DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
# transformers config fields that hold dropout rates (the modules are set directly as well;
# the config is updated so that the saved backbone config tells the truth).
_HF_DROPOUT_FIELDS = (
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "dropout",
    "attention_dropout",
    "hidden_dropout",
    "activation_dropout",
)


def effective(cfg: RegularizationConfig) -> RegularizationConfig:
    """The settings in force: everything off when ``enabled`` is false."""
    return cfg if cfg.enabled else OFF


def set_backbone_dropout(model: nn.Module, rate: float) -> int:
    """Set every dropout layer of ``model.backbone`` (or of the model) to ``rate``.

    Returns:
        How many dropout layers were changed (0 means the backbone has none).
    """
    backbone = getattr(model, "backbone", model)
    changed = 0
    for module in backbone.modules():
        if isinstance(module, _DROPOUT_TYPES):
            module.p = rate
            changed += 1
    config = getattr(backbone, "config", None)
    for field in _HF_DROPOUT_FIELDS:
        if config is not None and isinstance(getattr(config, field, None), float):
            setattr(config, field, rate)
    return changed


def penalized_weights(model: nn.Module) -> list[nn.Parameter]:
    """The weights L1 applies to: trainable, at least 2-D (no biases or norm scales)."""
    return [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]


def l1_penalty(weights: list[nn.Parameter]) -> torch.Tensor:
    """Sum of absolute values of ``weights``."""
    return torch.stack([w.abs().sum() for w in weights]).sum()


def describe(cfg: RegularizationConfig) -> dict[str, Any]:
    """What is on, for the run's records."""
    cfg = effective(cfg)
    return {
        "dropout": cfg.dropout,
        "backbone_dropout": cfg.backbone_dropout,
        "weight_decay": cfg.weight_decay,
        "l1": cfg.l1,
        "label_smoothing": cfg.label_smoothing,
        "grad_clip": cfg.grad_clip,
    }


class Regularization(Technique):
    """Label smoothing in the training loss, weight decay and clipping for the optimizer,
    the backbone's dropout rate, and an L1 term over the trainable weights."""

    name = "regularization"

    def __init__(self, cfg: RegularizationConfig, *, task: str) -> None:
        self.cfg = cfg
        self.task = task
        self._l1_weights: list[nn.Parameter] = []

    def setup(self, fit: FitState) -> None:
        fit.loss_fn = loss_function(self.task, label_smoothing=self.cfg.label_smoothing)
        fit.weight_decay = self.cfg.weight_decay
        fit.grad_clip = self.cfg.grad_clip
        rate = self.cfg.backbone_dropout
        if rate is not None:
            count = set_backbone_dropout(fit.model, rate)
            fit.note(f"regularization: backbone dropout {rate} on {count} layers")

    def on_epoch_start(self, fit: FitState) -> None:
        if self.cfg.l1 > 0:  # after any unfreezing: the weights that train this epoch
            self._l1_weights = penalized_weights(fit.model)

    def loss_term(self, outputs: torch.Tensor, batch: Batch, fit: FitState) -> torch.Tensor | None:
        if not self._l1_weights:
            return None
        return self.cfg.l1 * l1_penalty(self._l1_weights)

    def describe(self) -> dict[str, Any]:
        return describe(self.cfg)


def _build(cfg: RunConfig, facts: DataFacts) -> Regularization | None:
    if not cfg.regularization.enabled:
        return None
    return Regularization(cfg.regularization, task=facts.task)


def _idle(cfg: RunConfig) -> str | None:
    on = effective(cfg.regularization)
    if not on.enabled or on.model_copy(update={"enabled": False}) != OFF:
        return None
    return "every regularization value is zero (dropout, weight_decay, l1, label_smoothing)"


TECHNIQUES.register("regularization")(
    TechniqueSpec(
        name="regularization",
        order=10,
        off={"regularization.enabled": False},
        build=_build,
        needs=Needs(
            model_request=lambda cfg: {"dropout": effective(cfg.regularization).dropout},
            idle=_idle,
        ),
    )
)
