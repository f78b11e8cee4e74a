"""The loss of each task (validation uses these; training adds the techniques on top)."""

from __future__ import annotations

import torch
from torch import nn


class RegressionLoss(nn.Module):
    """Mean squared error on the first output column (targets are standardized)."""

    def forward(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(outputs.reshape(len(outputs), -1)[:, 0], target)


def loss_function(task: str, *, label_smoothing: float = 0.0) -> nn.Module:
    if task == "regression":
        return RegressionLoss()
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)
