"""Models that read a frozen backbone's features from a table instead of running it.

A tunelab model is ``head(embed(*inputs))``: ``embed`` is the backbone and its pooling (the
features the head reads), ``head`` the new layers. While the backbone is frozen and in eval
mode, ``embed`` gives the same features every epoch and every trial, so they are computed
once per row (``tunelab.evaluation.features``) and these wrappers train the head on them:

- ``HeadOnFeatures``: ``linear_probe``; the inputs are the features themselves (optionally
  standardized, so feature-space noise is in standardized units).
- ``CachedUntilUnfrozen``: ``freeze_then_unfreeze``; the inputs are the tokens (or images)
  plus each row's number: the head reads the row's cached features while the backbone is
  frozen, and the whole model runs once any backbone layer trains.

Both share the model's own ``backbone`` and ``head`` modules (and so its state-dict names),
so training them trains the model the predictor saves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

Embed = Callable[..., torch.Tensor]


def embedding_of(model: nn.Module) -> Embed | None:
    """The model's ``embed`` (the features its head reads), or None when it has none.

    Only a model that promises ``forward(*x) == head(embed(*x))`` by defining ``embed``
    (tunelab's builtin, text and vision models, or a ``py:`` model that does) can train on
    cached features.
    """
    embed = getattr(model, "embed", None)
    has_parts = isinstance(getattr(model, "backbone", None), nn.Module) and isinstance(
        getattr(model, "head", None), nn.Module
    )
    return embed if callable(embed) and has_parts else None


class HeadOnFeatures(nn.Module):
    """``head(features * std + mean)``: the head of a model on (standardized) features.

    Args:
        head: the model's head (shared, not copied).
        mean: per-feature mean the inputs were standardized with, or None (not standardized).
        std: per-feature standard deviation, or None.
    """

    def __init__(
        self, head: nn.Module, mean: torch.Tensor | None = None, std: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        # The backbone ran already: the strategies see a model whose backbone has no weights.
        self.backbone = nn.Identity()
        self.head = head
        self.scale: tuple[torch.Tensor, torch.Tensor] | None = None
        if mean is not None and std is not None:
            self.scale = (mean, std)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.scale is not None:
            mean, std = self.scale
            features = torch.addcmul(mean.to(features.device), features, std.to(features.device))
        return self.head(features)  # type: ignore[no-any-return]


class CachedUntilUnfrozen(nn.Module):
    """``model(*inputs)``, except that while the whole backbone is frozen the head reads each
    row's cached features: called as ``wrapper(*inputs, rows)``.

    Args:
        model: a model with ``backbone``, ``head`` and ``embed`` (see ``embedding_of``).
        table: the cached features of every row of the dataset, indexed by row number.
    """

    table: torch.Tensor

    def __init__(self, model: nn.Module, table: torch.Tensor) -> None:
        super().__init__()
        backbone, head = model.backbone, model.head
        assert isinstance(backbone, nn.Module) and isinstance(head, nn.Module)
        self.backbone: nn.Module = backbone
        self.head: nn.Module = head
        # a plain list keeps the model out of the submodules: one set of state-dict names
        self._model = [model]
        # a buffer moves with the model to its device; not persistent: no state-dict entry
        self.register_buffer("table", table, persistent=False)

    def forward(self, *features: torch.Tensor) -> Any:
        *inputs, rows = features
        if self._frozen():
            return self.head(self.table.index_select(0, rows))
        return self._model[0](*inputs)

    def _frozen(self) -> bool:
        return not any(p.requires_grad for p in self.backbone.parameters())
