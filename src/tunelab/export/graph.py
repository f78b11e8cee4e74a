"""The exported graph: the fitted preprocessing, the trained network and its outputs in one
``nn.Module``, so the exported file takes raw inputs.

A table's graph takes ``numeric`` (float32, one column per numeric column, NaN where
missing: imputed with the training median inside) and ``categorical`` (int64 category codes,
one column per categorical column: one-hot inside, -1 encodes as all zeros like an unseen
category). Images and signals take ``inputs`` (float32, the training shape) and are
standardized per channel inside. Outputs: class probabilities (N, K) or values (N,) in the
target's units.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tunelab.data.encoding import ArrayEncoder
from tunelab.data.tabular import TabularEncoder
from tunelab.results.predictor import Predictor


@dataclass
class Graph:
    """What to export: the module, its named inputs and an example of each."""

    module: nn.Module
    input_names: list[str]
    output_name: str
    examples: tuple[torch.Tensor, ...]


class _Outputs(nn.Module):
    """Raw network outputs -> probabilities, or values in the target's units."""

    def __init__(
        self, task: str, target_scale: tuple[float, float] | None, temperature: float = 1.0
    ) -> None:
        super().__init__()
        self.classify = task != "regression"
        self.temperature = float(temperature)  # calibration: softmax(logits / T)
        mean, std = target_scale or (0.0, 1.0)
        self.mean, self.std = float(mean), float(std)

    def forward(self, outputs: torch.Tensor) -> torch.Tensor:
        outputs = outputs.float()
        if self.classify:
            return torch.softmax(outputs / self.temperature, dim=1)
        return outputs.reshape(outputs.shape[0], -1)[:, 0] * self.std + self.mean


class _TableGraph(nn.Module):
    median: torch.Tensor
    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, encoder: TabularEncoder, network: nn.Module, outputs: _Outputs) -> None:
        super().__init__()
        numeric = encoder.numeric
        self.register_buffer("median", torch.tensor([c.median for c in numeric]).float())
        self.register_buffer("mean", torch.tensor([c.mean for c in numeric]).float())
        self.register_buffer("scale", torch.tensor([c.scale for c in numeric]).float())
        self.has_numeric = bool(numeric)
        self.sizes = [len(c.categories) for c in encoder.categorical]
        self.network = network
        self.outputs = outputs

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        blocks: list[torch.Tensor] = []
        if self.has_numeric:
            numbers = inputs[0]
            filled = torch.where(torch.isnan(numbers), self.median, numbers)
            blocks.append((filled - self.mean) / self.scale)
        if self.sizes:
            codes = inputs[-1]
            for i, size in enumerate(self.sizes):
                positions = torch.arange(size, dtype=codes.dtype, device=codes.device)
                blocks.append((codes[:, i : i + 1] == positions).float())
        result: torch.Tensor = self.outputs(self.network(torch.cat(blocks, dim=1)))
        return result


class _ArrayGraph(nn.Module):
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, encoder: ArrayEncoder, network: nn.Module, outputs: _Outputs) -> None:
        super().__init__()
        extra = (1,) * (len(encoder.shape) - 1)
        self.register_buffer("mean", torch.tensor(encoder.mean).float().reshape(1, -1, *extra))
        self.register_buffer("std", torch.tensor(encoder.std).float().reshape(1, -1, *extra))
        self.network = network
        self.outputs = outputs

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.outputs(self.network((inputs - self.mean) / self.std))
        return result


def build_graph(predictor: Predictor) -> Graph:
    """The graph of a table, image or signal model (the caller refuses other encoders)."""
    network = predictor.model.cpu().eval()
    outputs = _Outputs(predictor.task, predictor.target_scale, predictor.temperature)
    output_name = "prediction" if predictor.task == "regression" else "probabilities"
    encoder = predictor.encoder
    if isinstance(encoder, TabularEncoder):
        names: list[str] = []
        examples: list[torch.Tensor] = []
        if encoder.numeric:
            names.append("numeric")
            examples.append(torch.zeros(2, len(encoder.numeric)))
        if encoder.categorical:
            names.append("categorical")
            examples.append(torch.zeros(2, len(encoder.categorical), dtype=torch.int64))
        module: nn.Module = _TableGraph(encoder, network, outputs)
        return Graph(module.eval(), names, output_name, tuple(examples))
    assert isinstance(encoder, ArrayEncoder)
    module = _ArrayGraph(encoder, network, outputs)
    example = torch.zeros(2, *encoder.shape)
    return Graph(module.eval(), ["inputs"], output_name, (example,))
