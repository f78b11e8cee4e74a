"""Optimizers by name, with weight decay kept off biases and normalization weights."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from tunelab.config import TrainConfig

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Split trainable parameters into a decayed group and a no-decay group.

    Biases and normalization weights are never decayed: shrinking them toward zero does not
    regularize, it only distorts the normalization. Frozen parameters get no group at all
    (so they get no optimizer state).
    """
    no_decay: set[int] = set()
    for module in model.modules():
        if isinstance(module, _NORM_TYPES) or "norm" in type(module).__name__.lower():
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    decay, plain = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if id(param) in no_decay or name.endswith("bias") or param.ndim < 2:
            plain.append(param)
        else:
            decay.append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": plain, "weight_decay": 0.0, "name": "no_decay"},
    ]
    return [g for g in groups if g["params"]]


def _sgd(groups: Iterable[dict[str, Any]], cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        list(groups), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0
    )


def _adam(groups: Iterable[dict[str, Any]], cfg: TrainConfig) -> torch.optim.Optimizer:
    # Each group carries its own weight_decay: for Adam and SGD it is the coupled L2 term
    # (the gradient of a 0.5*wd*||w||^2 loss penalty); for AdamW it is decoupled.
    return torch.optim.Adam(list(groups), lr=cfg.lr)


def _adamw(groups: Iterable[dict[str, Any]], cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(list(groups), lr=cfg.lr)


def _rmsprop(groups: Iterable[dict[str, Any]], cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(list(groups), lr=cfg.lr, momentum=cfg.momentum)


OPTIMIZERS: dict[str, Callable[[Iterable[dict[str, Any]], TrainConfig], torch.optim.Optimizer]] = {
    "sgd": _sgd,
    "adam": _adam,
    "adamw": _adamw,
    "rmsprop": _rmsprop,
}


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg.optimizer`` over the model's trainable parameters."""
    groups = parameter_groups(model, cfg.weight_decay)
    for group in groups:
        group.setdefault("lr_scale", 1.0)
    return OPTIMIZERS[cfg.optimizer](groups, cfg)
