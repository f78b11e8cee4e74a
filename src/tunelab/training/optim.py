"""Optimizers by name, with weight decay kept off biases and normalization weights.

Each optimizer is the function named after it (``train.optimizer``; the names are
declared in ``tunelab.registry.OptimizerName``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from tunelab.config import TrainConfig
from tunelab.registry import OPTIMIZERS

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def _no_decay_ids(model: nn.Module) -> set[int]:
    ids: set[int] = set()
    for module in model.modules():
        if isinstance(module, _NORM_TYPES) or "norm" in type(module).__name__.lower():
            ids.update(id(p) for p in module.parameters(recurse=False))
    for name, param in model.named_parameters():
        if name.endswith("bias") or param.ndim < 2:
            ids.add(id(param))
    return ids


def parameter_groups(
    model: nn.Module,
    weight_decay: float,
    *,
    lr_scales: dict[int, float] | None = None,
    params: Iterable[nn.Parameter] | None = None,
) -> list[dict[str, Any]]:
    """Split trainable parameters into groups by (decayed or not, learning-rate scale).

    Biases and normalization weights are never decayed: shrinking them toward zero does not
    regularize, it only distorts the normalization. Frozen parameters get no group at all
    (so they get no optimizer state).

    Args:
        model: the model (to find which parameters are biases and norm weights).
        weight_decay: for the decayed groups.
        lr_scales: learning-rate multiplier per ``id(param)``; 1.0 when absent.
        params: only these parameters (default: all trainable ones).
    """
    no_decay = _no_decay_ids(model)
    scales = lr_scales or {}
    chosen = list(params) if params is not None else list(model.parameters())
    buckets: dict[tuple[bool, float], list[nn.Parameter]] = {}
    for param in chosen:
        if not param.requires_grad:
            continue
        # with no decay there is one group per scale: every group costs per-step setup
        decayed = weight_decay > 0 and id(param) not in no_decay
        key = (decayed, scales.get(id(param), 1.0))
        buckets.setdefault(key, []).append(param)
    return [
        {
            "params": group,
            "weight_decay": weight_decay if decayed else 0.0,
            "lr_scale": scale,
            "name": f"{'decay' if decayed else 'no_decay'}@{scale:g}",
        }
        for (decayed, scale), group in sorted(buckets.items(), key=lambda kv: (-kv[0][1], kv[0][0]))
    ]


# foreach=True: the multi-tensor step (PyTorch's default on CUDA only) is also faster on CPU
# and gives the same parameters.
def sgd(groups: list[dict[str, Any]], cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        groups,
        lr=cfg.lr_value,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
        foreach=True,
    )


def adam(groups: list[dict[str, Any]], cfg: TrainConfig) -> torch.optim.Optimizer:
    # Each group carries its own weight_decay: for Adam and SGD it is the coupled L2 term
    # (the gradient of a 0.5*wd*||w||^2 loss penalty); for AdamW it is decoupled.
    return torch.optim.Adam(groups, lr=cfg.lr_value, foreach=True)


def adamw(groups: list[dict[str, Any]], cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=cfg.lr_value, foreach=True)


def rmsprop(groups: list[dict[str, Any]], cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(groups, lr=cfg.lr_value, momentum=cfg.momentum, foreach=True)


def make_optimizer(
    model: nn.Module,
    cfg: TrainConfig,
    *,
    weight_decay: float = 0.0,
    lr_scales: dict[int, float] | None = None,
) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg.optimizer`` over the model's trainable parameters."""
    groups = parameter_groups(model, weight_decay, lr_scales=lr_scales)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    optimizer: torch.optim.Optimizer = OPTIMIZERS.get(cfg.optimizer, field="train.optimizer")(
        groups, cfg
    )
    return optimizer


def add_trainable(
    optimizer: torch.optim.Optimizer,
    model: nn.Module,
    params: list[nn.Parameter],
    *,
    weight_decay: float,
    lr_scale: float,
) -> None:
    """Add newly unfrozen ``params`` to ``optimizer`` (decayed and not, at ``lr_scale``)."""
    base_lr = optimizer.defaults["lr"]
    for group in parameter_groups(model, weight_decay, lr_scales=None, params=params):
        group["lr_scale"] = lr_scale
        group["lr"] = base_lr * lr_scale
        optimizer.add_param_group(group)
