"""Batch normalization: momentum, and what pretrained backbones' BN layers do.

- ``trainable``: BN layers train as usual (affine weights learned, statistics updated).
- ``frozen``: BN layers stay in eval mode (their running statistics never change) and their
  affine weights get no gradient: the backbone normalizes as it did when pretrained.
- ``reestimate``: before training, the running statistics are recomputed on the training rows
  (a cumulative average over one pass, as in AdaBN), then frozen as above.

BN layers in builtin models and the head are switched on or off at build time
(``batch_norm.enabled``, ``batch_norm.head``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tunelab.config import BatchNormConfig, RunConfig
from tunelab.techniques.base import TECHNIQUES, DataFacts, Needs, TechniqueSpec
from tunelab.training.batching import Batches
from tunelab.training.hooks import FitState, Technique

BN_TYPES = (nn.modules.batchnorm._BatchNorm,)


def backbone_bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    backbone = getattr(model, "backbone", model)
    return [m for m in backbone.modules() if isinstance(m, BN_TYPES)]


def set_momentum(model: nn.Module, momentum: float) -> int:
    layers = [m for m in model.modules() if isinstance(m, BN_TYPES)]
    for layer in layers:
        layer.momentum = momentum
    return len(layers)


def freeze(layers: list[nn.modules.batchnorm._BatchNorm]) -> None:
    """Eval mode and no gradients for ``layers`` (call again after every ``model.train()``)."""
    for layer in layers:
        layer.eval()
        for param in layer.parameters(recurse=False):
            param.requires_grad_(False)


@torch.no_grad()
def reestimate(
    model: nn.Module, layers: list[nn.modules.batchnorm._BatchNorm], batches: Batches
) -> int:
    """Recompute the running statistics of ``layers`` over one pass of ``batches``.

    Only the BN layers are in train mode during the pass (dropout stays off), and their
    momentum is None (a cumulative average), so every row counts equally.

    Returns:
        The number of rows seen.
    """
    was_training = model.training
    model.eval()
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
        layer.train()
    rows = 0
    for features, _target in batches:
        model(*features)
        rows += int(features[0].shape[0])
    for layer, momentum in zip(layers, saved, strict=True):
        layer.momentum = momentum
    model.train(was_training)
    return rows


class BatchNorm(Technique):
    """BN momentum, and a pretrained backbone's BN layers frozen or re-estimated (BN in
    builtin models and the head is switched when the model is built)."""

    name = "batch_norm"

    def __init__(self, cfg: BatchNormConfig) -> None:
        self.cfg = cfg
        self._frozen: list[nn.modules.batchnorm._BatchNorm] = []

    def setup(self, fit: FitState) -> None:
        model, cfg = fit.model, self.cfg
        if cfg.momentum is not None:
            count = set_momentum(model, cfg.momentum)
            fit.note(f"batch_norm: momentum {cfg.momentum} on {count} layers")
        if cfg.backbone == "trainable" or not hasattr(model, "backbone"):
            return
        layers = backbone_bn_layers(model)
        if cfg.backbone == "reestimate" and layers:
            rows = reestimate(model, layers, fit.train)
            fit.note(
                f"batch_norm: re-estimated {len(layers)} backbone BN layers on {rows} training rows"
            )
        self._frozen = layers
        freeze(layers)
        fit.note(f"batch_norm: {len(layers)} backbone BN layers frozen")

    def on_epoch_start(self, fit: FitState) -> None:
        if self._frozen:
            freeze(self._frozen)  # model.train() switched them back to train mode

    def describe(self) -> dict[str, Any]:
        return self.cfg.model_dump()


def _build(cfg: RunConfig, facts: DataFacts) -> BatchNorm | None:
    on = cfg.batch_norm.enabled or cfg.batch_norm.head or cfg.batch_norm.backbone != "trainable"
    return BatchNorm(cfg.batch_norm) if on or cfg.batch_norm.momentum is not None else None


def _changes_backbone(cfg: RunConfig, model: nn.Module, head_only: bool) -> str | None:
    if cfg.batch_norm.backbone == "reestimate" and backbone_bn_layers(model):
        return "batch_norm.backbone reestimate changes the backbone on the training rows"
    return None


def _no_layers(cfg: RunConfig, model: nn.Module | None) -> str | None:
    if cfg.batch_norm.head or model is None:
        return None
    if any(isinstance(module, BN_TYPES) for module in model.modules()):
        return None
    return "the model has no batch-norm layers and batch_norm.head is false"


TECHNIQUES.register("batch_norm")(
    TechniqueSpec(
        name="batch_norm",
        order=20,
        off={"batch_norm.enabled": False, "batch_norm.head": False},
        build=_build,
        needs=Needs(
            changes_inputs=_changes_backbone,
            model_request=lambda cfg: {
                "batch_norm": cfg.batch_norm.enabled,
                "head_batch_norm": cfg.batch_norm.head,
            },
            does_nothing_for=_no_layers,
        ),
    )
)
