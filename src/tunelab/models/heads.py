"""The new head every tunelab model ends with: [BatchNorm1d] -> Dropout -> Linear."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn


class Head(nn.Sequential):
    """Maps backbone features (N, F) to outputs (N, K).

    Attributes:
        norm: BatchNorm1d when ``batch_norm`` (batch_norm.head in the config), else Identity.
        dropout: the head dropout (regularization.dropout).
        linear: the output layer.
    """

    norm: nn.Module
    dropout: nn.Dropout
    linear: nn.Linear

    def __init__(
        self, in_features: int, num_outputs: int, *, dropout: float = 0.0, batch_norm: bool = False
    ) -> None:
        super().__init__(
            OrderedDict(
                norm=nn.BatchNorm1d(in_features) if batch_norm else nn.Identity(),
                dropout=nn.Dropout(dropout),
                linear=nn.Linear(in_features, num_outputs),
            )
        )
