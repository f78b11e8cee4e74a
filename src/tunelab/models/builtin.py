"""``builtin:NAME``: small architectures for tables, signals and images.

All take ``model.width`` and ``model.depth``, have batch norm switched by
``batch_norm.enabled``, and split into a ``backbone`` (features) and a ``head`` (see
``heads.Head``), so transfer-learning strategies can freeze or re-learn them separately.
Every block has a dropout layer (rate 0 unless ``regularization.backbone_dropout`` sets it),
so the backbone's dropout can be searched like the head's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tunelab.config import ModelConfig
from tunelab.errors import ConfigError
from tunelab.models.base import BuiltModel, ModelRequest
from tunelab.models.heads import Head


class Classifier(nn.Module):
    """``head(backbone(x))``: the shape every tunelab model has."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The features the head reads (what a frozen backbone's cache holds)."""
        return self.backbone(x)  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))  # type: ignore[no-any-return]


def _norm(kind: str, channels: int, enabled: bool) -> nn.Module:
    if not enabled:
        return nn.Identity()
    return {"1d": nn.BatchNorm1d, "2d": nn.BatchNorm2d}[kind](channels)


def _head(features: int, request: ModelRequest) -> Head:
    return Head(
        features,
        request.num_outputs,
        dropout=request.dropout,
        batch_norm=request.head_batch_norm,
    )


def mlp(opts: dict[str, Any], request: ModelRequest) -> Classifier:
    """Flatten, then ``depth`` blocks of Linear -> BatchNorm -> ReLU -> Dropout."""
    width, bn = opts["width"], request.batch_norm
    features = math.prod(request.input_shape)
    layers: list[nn.Module] = [nn.Flatten()]
    for _ in range(opts["depth"]):
        block = [nn.Linear(features, width), _norm("1d", width, bn), nn.ReLU(), nn.Dropout(0.0)]
        layers.append(nn.Sequential(*block))
        features = width
    return Classifier(nn.Sequential(*layers), _head(features, request))


def _conv_net(dim: str, opts: dict[str, Any], request: ModelRequest) -> Classifier:
    conv = {"1d": nn.Conv1d, "2d": nn.Conv2d}[dim]
    pool = {"1d": nn.AdaptiveAvgPool1d, "2d": nn.AdaptiveAvgPool2d}[dim]
    max_pool = {"1d": nn.MaxPool1d, "2d": nn.MaxPool2d}[dim]
    drop = {"1d": nn.Dropout1d, "2d": nn.Dropout2d}[dim]
    channels, width, bn = request.input_shape[0], opts["width"], request.batch_norm
    layers: list[nn.Module] = []
    for i in range(opts["depth"]):
        out = width * 2 ** min(i, 3)
        block = [conv(channels, out, 3, padding=1, bias=not bn), _norm(dim, out, bn), nn.ReLU()]
        if i < opts["depth"] - 1 and min(request.input_shape[1:]) >= 2 ** (i + 2):
            block.append(max_pool(2))
        block.append(drop(0.0))
        layers.append(nn.Sequential(*block))
        channels = out
    layers += [pool(1), nn.Flatten()]
    return Classifier(nn.Sequential(*layers), _head(channels, request))


def cnn1d(opts: dict[str, Any], request: ModelRequest) -> Classifier:
    """Conv blocks over (channels, length) signals, global average pooling, the head."""
    _need_rank(request, 2, "cnn1d", "signals (N, C, L)")
    return _conv_net("1d", opts, request)


def cnn2d(opts: dict[str, Any], request: ModelRequest) -> Classifier:
    """Conv blocks over (channels, height, width) images, global average pooling, the head."""
    _need_rank(request, 3, "cnn2d", "images (N, C, H, W)")
    return _conv_net("2d", opts, request)


class BasicBlock(nn.Module):
    """The two-conv residual block of ResNet-18/34 (with a dropout between the convs)."""

    def __init__(self, cin: int, cout: int, stride: int, bn: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=not bn)
        self.bn1 = _norm("2d", cout, bn)
        self.dropout = nn.Dropout2d(0.0)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=not bn)
        self.bn2 = _norm("2d", cout, bn)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=not bn), _norm("2d", cout, bn)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(torch.relu(self.bn1(self.conv1(x))))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def resnet(opts: dict[str, Any], request: ModelRequest) -> Classifier:
    """A small ResNet: a stem, ``depth`` stages of one BasicBlock (stride 2 after the first)."""
    _need_rank(request, 3, "resnet", "images (N, C, H, W)")
    width, bn = opts["width"], request.batch_norm
    stem = nn.Sequential(
        nn.Conv2d(request.input_shape[0], width, 3, 1, 1, bias=not bn),
        _norm("2d", width, bn),
        nn.ReLU(),
    )
    layers: list[nn.Module] = [stem]
    channels, size = width, min(request.input_shape[1:])
    for i in range(opts["depth"]):
        stride = 2 if i > 0 and size >= 4 else 1
        size //= stride
        out = width * 2 ** min(i, 3)
        layers.append(BasicBlock(channels, out, stride, bn))
        channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Classifier(nn.Sequential(*layers), _head(channels, request))


ARCHITECTURES: dict[str, Callable[[dict[str, Any], ModelRequest], Classifier]] = {
    "mlp": mlp,
    "cnn1d": cnn1d,
    "cnn2d": cnn2d,
    "resnet": resnet,
}


def _need_rank(request: ModelRequest, rank: int, name: str, what: str) -> None:
    if len(request.input_shape) != rank:
        raise ConfigError(
            f"model.source: builtin:{name} takes {what}, but the data gives examples of shape "
            f"{request.input_shape}; use builtin:mlp for tables or pick the matching model"
        )


def builtin_options(cfg: ModelConfig) -> dict[str, Any]:
    return {"width": cfg.width, "depth": cfg.depth}


def make_builtin(name: str, opts: dict[str, Any], request: ModelRequest) -> BuiltModel:
    if name not in ARCHITECTURES:
        raise ConfigError(
            f"model.source: unknown builtin architecture {name!r}; "
            f"valid: {', '.join(sorted(ARCHITECTURES))}"
        )
    module = ARCHITECTURES[name](opts, request)
    spec = {
        "kind": "builtin",
        "name": name,
        "options": opts,
        "input_shape": list(request.input_shape),
        "num_outputs": request.num_outputs,
        "batch_norm": request.batch_norm,
        "head": request.head_spec(),
    }
    return BuiltModel(module=module, spec=spec)


def request_from_spec(spec: dict[str, Any]) -> ModelRequest:
    """The ModelRequest a saved spec was built from (for rebuilding at predict time)."""
    head = spec.get("head", {})
    return ModelRequest(
        input_shape=tuple(spec["input_shape"]),
        num_outputs=spec["num_outputs"],
        modality="",
        dropout=head.get("dropout", 0.0),
        batch_norm=spec.get("batch_norm", True),
        head_batch_norm=head.get("batch_norm", False),
    )


def load_builtin(name: str, cfg: ModelConfig, request: ModelRequest) -> BuiltModel:
    return make_builtin(name, builtin_options(cfg), request)


def rebuild_builtin(spec: dict[str, Any], directory: Path, *, trust_code: bool) -> BuiltModel:
    return make_builtin(spec["name"], spec["options"], request_from_spec(spec))
