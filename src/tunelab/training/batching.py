"""Batches from tensors: slicing for in-memory data, per-batch transfer for large data.

Small datasets live on the device whole and a batch is an index-select of a shuffled
permutation: no per-sample Dataset/DataLoader overhead. Datasets above
``data.stream_above_mb`` stay in host memory (pinned on CUDA) and stream to the device
one batch at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass
class TensorData:
    """Encoded features (the model is called as ``model(*features)``) and target."""

    features: tuple[torch.Tensor, ...]
    target: torch.Tensor

    def __len__(self) -> int:
        return int(self.target.shape[0])

    @property
    def nbytes(self) -> int:
        tensors = (*self.features, self.target)
        return sum(t.element_size() * t.nelement() for t in tensors)


class Batches:
    """Iterate over ``data`` in batches on ``device``.

    Args:
        data: the tensors.
        batch_size: rows per batch.
        device: where batches are consumed.
        stream: keep data in host memory and move each batch (large datasets).
    """

    def __init__(
        self, data: TensorData, *, batch_size: int, device: torch.device, stream: bool = False
    ) -> None:
        self.batch_size = batch_size
        self.device = device
        self.stream = stream
        self.features = tuple(self._place(t) for t in data.features)
        self.target = self._place(data.target)
        self.size = len(data)

    def _place(self, tensor: torch.Tensor) -> torch.Tensor:
        if not self.stream:
            return tensor.to(self.device)
        # streamed data stays in host memory; pinned so that copies to the GPU overlap
        return tensor.pin_memory() if self.device.type == "cuda" else tensor

    def __len__(self) -> int:
        return -(-self.size // self.batch_size)

    def __iter__(self) -> Iterator[tuple[tuple[torch.Tensor, ...], torch.Tensor]]:
        return self.iterate(shuffle=False)

    def iterate(
        self, *, shuffle: bool, generator: torch.Generator | None = None, drop_single: bool = False
    ) -> Iterator[tuple[tuple[torch.Tensor, ...], torch.Tensor]]:
        """Yield ``(features, target)`` batches; ``drop_single`` skips a last batch of one
        row (batch norm cannot train on it)."""
        if shuffle:
            order = torch.randperm(self.size, generator=generator)
            if not self.stream:
                order = order.to(self.device)
        for start in range(0, self.size, self.batch_size):
            stop = min(start + self.batch_size, self.size)
            if drop_single and stop - start == 1 and self.size > 1:
                break
            if shuffle:
                index = order[start:stop]
                features = tuple(t.index_select(0, index) for t in self.features)
                target = self.target.index_select(0, index)
            else:
                features = tuple(t[start:stop] for t in self.features)
                target = self.target[start:stop]
            if self.stream:
                features = tuple(t.to(self.device, non_blocking=True) for t in features)
                target = target.to(self.device, non_blocking=True)
            yield features, target
