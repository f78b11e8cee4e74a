"""``builtin:NAME``: small architectures for tables, signals and images.

All share the options ``width``, ``depth``, ``dropout`` and ``batch_norm`` and split into a
``backbone`` (features) and a ``head`` (one Linear layer), so transfer-learning strategies
can freeze or re-learn them separately.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from tunelab.config import ModelConfig
from tunelab.errors import ConfigError
from tunelab.models.base import MODEL_REBUILDERS, MODEL_SOURCES, BuiltModel, ModelRequest


class Classifier(nn.Module):
    """``head(backbone(x))``: the shape every tunelab model has."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))  # type: ignore[no-any-return]


def _norm(kind: str, channels: int, enabled: bool) -> nn.Module:
    if not enabled:
        return nn.Identity()
    return {"1d": nn.BatchNorm1d, "2d": nn.BatchNorm2d}[kind](channels)


def mlp(opts: dict[str, Any], request: ModelRequest) -> Classifier:
    """Flatten, then ``depth`` blocks of Linear -> BatchNorm -> ReLU -> Dropout."""
    width, bn, p = opts["width"], opts["batch_norm"], opts["dropout"]
    features = math.prod(request.input_shape)
    layers: list[nn.Module] = [nn.Flatten()]
    for _ in range(opts["depth"]):
        layers += [nn.Linear(features, width), _norm("1d", width, bn), nn.ReLU(), nn.Dropout(p)]
        features = width
    return Classifier(nn.Sequential(*layers), nn.Linear(features, request.num_outputs))


def _conv_net(dim: str, opts: dict[str, Any], request: ModelRequest) -> Classifier:
    conv = {"1d": nn.Conv1d, "2d": nn.Conv2d}[dim]
    pool = {"1d": nn.AdaptiveAvgPool1d, "2d": nn.AdaptiveAvgPool2d}[dim]
    drop = {"1d": nn.Dropout1d, "2d": nn.Dropout2d}[dim]
    channels, width, bn = request.input_shape[0], opts["width"], opts["batch_norm"]
    layers: list[nn.Module] = []
    for i in range(opts["depth"]):
        out = width * 2 ** min(i, 3)
        layers += [conv(channels, out, 3, padding=1, bias=not bn), _norm(dim, out, bn), nn.ReLU()]
        if i < opts["depth"] - 1 and min(request.input_shape[1:]) >= 2 ** (i + 2):
            layers.append({"1d": nn.MaxPool1d, "2d": nn.MaxPool2d}[dim](2))
        layers.append(drop(opts["dropout"] / 2))
        channels = out
    layers += [pool(1), nn.Flatten(), nn.Dropout(opts["dropout"])]
    return Classifier(nn.Sequential(*layers), nn.Linear(channels, request.num_outputs))


def cnn1d(opts: dict[str, Any], request: ModelRequest) -> Classifier:
    """Conv blocks over (channels, length) signals, global average pooling, linear head."""
    _need_rank(request, 2, "cnn1d", "signals (N, C, L)")
    return _conv_net("1d", opts, request)


def cnn2d(opts: dict[str, Any], request: ModelRequest) -> Classifier:
    """Conv blocks over (channels, height, width) images, global average pooling."""
    _need_rank(request, 3, "cnn2d", "images (N, C, H, W)")
    return _conv_net("2d", opts, request)


class BasicBlock(nn.Module):
    """The two-conv residual block of ResNet-18/34."""

    def __init__(self, cin: int, cout: int, stride: int, bn: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=not bn)
        self.bn1 = _norm("2d", cout, bn)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=not bn)
        self.bn2 = _norm("2d", cout, bn)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=not bn), _norm("2d", cout, bn)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def resnet(opts: dict[str, Any], request: ModelRequest) -> Classifier:
    """A small ResNet: a stem, ``depth`` stages of one BasicBlock (stride 2 after the first)."""
    _need_rank(request, 3, "resnet", "images (N, C, H, W)")
    width, bn = opts["width"], opts["batch_norm"]
    layers: list[nn.Module] = [
        nn.Conv2d(request.input_shape[0], width, 3, 1, 1, bias=not bn),
        _norm("2d", width, bn),
        nn.ReLU(),
    ]
    channels, size = width, min(request.input_shape[1:])
    for i in range(opts["depth"]):
        stride = 2 if i > 0 and size >= 4 else 1
        size //= stride
        out = width * 2 ** min(i, 3)
        layers.append(BasicBlock(channels, out, stride, bn))
        channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(opts["dropout"])]
    return Classifier(nn.Sequential(*layers), nn.Linear(channels, request.num_outputs))


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
    return {
        "width": cfg.width,
        "depth": cfg.depth,
        "dropout": cfg.dropout,
        "batch_norm": cfg.batch_norm,
    }


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
    }
    return BuiltModel(module=module, spec=spec)


@MODEL_SOURCES.register("builtin")
def load_builtin(name: str, cfg: ModelConfig, request: ModelRequest) -> BuiltModel:
    return make_builtin(name, builtin_options(cfg), request)


@MODEL_REBUILDERS.register("builtin")
def rebuild_builtin(spec: dict[str, Any], directory: Any) -> BuiltModel:
    request = ModelRequest(tuple(spec["input_shape"]), spec["num_outputs"], "")
    return make_builtin(spec["name"], spec["options"], request)
