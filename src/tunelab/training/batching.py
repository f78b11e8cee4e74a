"""Batches from tensors: slicing for in-memory data, per-batch transfer for large data.

Small datasets live on the device whole and a batch is an index-select of a shuffled
permutation: no per-sample Dataset/DataLoader overhead. Datasets above
``data.stream_above_mb`` stay in host memory (pinned on CUDA) and stream to the device
one batch at a time.

Padded token sequences (``TensorData.lengths`` set) are cut to the longest sequence of each
batch, so short texts do not pay for ``data.max_length``; with ``buckets`` the shuffled
batches are drawn from texts of similar length (a shuffled pool of 50 batches is sorted by
length and cut into batches, and the batches are shuffled), so little padding is left.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

# shuffled rows sorted by length together, per bucketed pool (in batches)
POOL_BATCHES = 50


@dataclass
class TensorData:
    """Encoded features (the model is called as ``model(*features)``) and target.

    Attributes:
        lengths: for right-padded token sequences, the real length of each row: every
            feature of two or more dimensions is cut to the longest row of a batch.
        buckets: batch rows of similar ``lengths`` together when shuffling.
    """

    features: tuple[torch.Tensor, ...]
    target: torch.Tensor
    lengths: torch.Tensor | None = None
    buckets: bool = False

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
        # kept on the CPU: a batch's width is read before its rows are selected
        self.lengths = None if data.lengths is None else data.lengths.cpu()
        self.buckets = data.buckets and self.lengths is not None

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
            if self.buckets:
                assert self.lengths is not None
                order_cpu = bucketed_order(self.lengths, self.batch_size, generator)
            else:
                order_cpu = torch.randperm(self.size, generator=generator)
            order = order_cpu if self.stream else order_cpu.to(self.device)
        for start in range(0, self.size, self.batch_size):
            stop = min(start + self.batch_size, self.size)
            if drop_single and stop - start == 1 and self.size > 1:
                break
            tensors = self.features
            if self.lengths is not None:
                rows = order_cpu[start:stop] if shuffle else slice(start, stop)
                tensors = _cut(tensors, int(self.lengths[rows].max()))
            if shuffle:
                index = order[start:stop]
                features = tuple(t.index_select(0, index) for t in tensors)
                target = self.target.index_select(0, index)
            else:
                features = tuple(t[start:stop] for t in tensors)
                target = self.target[start:stop]
            if self.stream:
                features = tuple(t.to(self.device, non_blocking=True) for t in features)
                target = target.to(self.device, non_blocking=True)
            yield features, target


def _cut(tensors: tuple[torch.Tensor, ...], width: int) -> tuple[torch.Tensor, ...]:
    """Token sequences (two or more dimensions) cut to ``width`` positions."""
    return tuple(t[:, :width] if t.ndim >= 2 else t for t in tensors)


def bucketed_order(
    lengths: torch.Tensor, batch_size: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A shuffled order of the rows in which each run of ``batch_size`` rows has similar
    lengths: pools of ``POOL_BATCHES`` batches of a random permutation are sorted by length
    and cut into batches, and the full batches are shuffled (the one short batch, if any,
    stays last, where ``iterate`` expects it)."""
    size = len(lengths)
    order = torch.randperm(size, generator=generator)
    pool = batch_size * POOL_BATCHES
    batches: list[torch.Tensor] = []
    for start in range(0, size, pool):
        rows = order[start : start + pool]
        rows = rows[torch.argsort(lengths[rows], descending=True, stable=True)]
        batches.extend(torch.split(rows, batch_size))
    last = batches.pop() if batches and len(batches[-1]) < batch_size else None
    shuffled = [batches[i] for i in torch.randperm(len(batches), generator=generator)]
    if last is not None:
        shuffled.append(last)
    return torch.cat(shuffled) if shuffled else order


def inference_batches(
    features: tuple[torch.Tensor, ...], lengths: torch.Tensor | None, batch_size: int
) -> Iterator[tuple[torch.Tensor, tuple[torch.Tensor, ...]]]:
    """``(rows, batch)`` pairs over every row, for inference: token sequences (``lengths``
    given) longest first, each batch cut to its own longest row, so that sorted texts pad
    little; other inputs in order. The caller puts each batch's outputs back at ``rows``."""
    size = int(features[0].shape[0])
    order = (
        torch.argsort(lengths, descending=True, stable=True)
        if lengths is not None
        else torch.arange(size)
    )
    for start in range(0, size, batch_size):
        rows = order[start : start + batch_size]
        if lengths is None:
            yield rows, tuple(t[start : start + batch_size] for t in features)
            continue
        width = max(int(lengths[rows].max()), 1)
        yield rows, _cut(tuple(t.index_select(0, rows) for t in features), width)
