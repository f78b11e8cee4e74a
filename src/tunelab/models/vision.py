"""``timm:NAME`` and ``torchvision:NAME``: pretrained image backbones with a new head.

Both packages are optional (``pip install 'tunelab[vision]'``). The network's own classifier
is removed; what is left is the ``backbone`` (image -> pooled features) and a fresh linear
``head`` sized for the data, so transfer-learning strategies can treat them apart.

Pretrained weights must already be on disk (tunelab works offline): timm reads the Hugging
Face cache, torchvision its torch hub checkpoint folder (``$TORCH_HOME/hub/checkpoints``).

Example::

    model:
      source: timm:resnet18
      pretrained: true
      options: {drop_path_rate: 0.1}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from tunelab.config import ModelConfig
from tunelab.errors import ConfigError
from tunelab.models.base import BuiltModel, ModelRequest
from tunelab.models.heads import Head
from tunelab.optional import optional_import
from tunelab.registry import did_you_mean

# Where torchvision models keep their final classifier, in the order tried.
TORCHVISION_HEADS = ("fc", "classifier", "heads", "head")
# timm.create_model arguments that load weights; a rebuilt model takes its weights from
# model.safetensors only.
TIMM_WEIGHT_OPTIONS = frozenset({"checkpoint_path", "pretrained_cfg", "pretrained_cfg_overlay"})
# Their auxiliary classifiers make forward return a namedtuple in training mode.
TORCHVISION_KWARGS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False},
    "inception_v3": {"aux_logits": False},
}


class VisionClassifier(nn.Module):
    """``head(backbone(x))`` where the backbone returns pooled features."""

    def __init__(
        self, backbone: nn.Module, *, num_features: int, num_outputs: int, dropout: float
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = Head(num_features, num_outputs, dropout=dropout)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features the head reads (what a frozen backbone's cache holds)."""
        return self.backbone(x)  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (or regression outputs) of shape (batch, num_outputs)."""
        return self.head(self.embed(x))  # type: ignore[no-any-return]


def _need_images(prefix: str, request: ModelRequest) -> None:
    if request.modality != "image" or len(request.input_shape) != 3:
        raise ConfigError(
            f"model.source: {prefix}: models take images (N, C, H, W), but the data is "
            f"{request.modality} with examples of shape {request.input_shape}; use an image "
            "data source (images:, npz: with data.modality: image) or a builtin: model"
        )


def _offline_hint(prefix: str, name: str, fix: str) -> str:
    return (
        f"model.source: {prefix}:{name}: the pretrained weights are not on this machine and "
        f"tunelab works offline. {fix}; or set model.pretrained: false to train from scratch"
    )


# --- timm -------------------------------------------------------------------------------


def _timm() -> Any:
    timm = optional_import("timm", package="timm", extra="vision", purpose="timm: models")
    return timm


def make_timm(
    name: str,
    *,
    pretrained: bool,
    options: dict[str, Any],
    num_outputs: int,
    in_chans: int,
    dropout: float,
) -> VisionClassifier:
    """A timm model without its classifier, plus a new linear head."""
    timm = _timm()
    # "hf-hub:" and "local-dir:" names are resolved by create_model itself.
    if ":" not in name and not timm.is_model(name):
        hint = did_you_mean(name, timm.list_models(), n=3)
        raise ConfigError(
            f"model.source: timm:{name} is not a timm model; list them with "
            f"timm.list_models('*pattern*').{hint}"
        )
    try:
        # timm adapts the first conv to in_chans and skips the pretrained classifier when
        # num_classes differs; reset_classifier(0) then drops it for the pooled features.
        model = timm.create_model(
            name, pretrained=pretrained, num_classes=num_outputs, in_chans=in_chans, **options
        )
    except OSError:
        # huggingface_hub's "not in the cache" errors and urllib's download errors are OSErrors.
        raise ConfigError(
            _offline_hint(
                "timm",
                name,
                "Pre-download them into the Hugging Face cache on a machine with network "
                f"(timm.create_model({name!r}, pretrained=True)), or point at a local file with "
                "model.options: {pretrained_cfg_overlay: {file: /path/to/weights.safetensors}}",
            )
        ) from None
    except TypeError as exc:
        raise ConfigError(
            f"model.options: timm:{name} rejected {sorted(options)} ({exc}); pass only "
            "keyword arguments that timm.create_model accepts for this model"
        ) from None
    model.reset_classifier(0)
    # Models with a pre-logits layer (e.g. MobileNetV3) output head_hidden_size features,
    # not num_features; older timm versions have only num_features.
    features = getattr(model, "head_hidden_size", None) or model.num_features
    return VisionClassifier(
        model, num_features=int(features), num_outputs=num_outputs, dropout=dropout
    )


def load_timm(name: str, cfg: ModelConfig, request: ModelRequest) -> BuiltModel:
    """``timm:NAME``: ``timm.create_model(NAME, ...)`` with ``model.options`` as kwargs."""
    _timm()
    _need_images("timm", request)
    spec = {
        "kind": "timm",
        "name": name,
        "options": dict(cfg.options),
        "num_outputs": request.num_outputs,
        "in_chans": request.input_shape[0],
        "dropout": request.dropout,
    }
    module = make_timm(
        name,
        pretrained=cfg.pretrained,
        options=dict(cfg.options),
        num_outputs=request.num_outputs,
        in_chans=request.input_shape[0],
        dropout=request.dropout,
    )
    return BuiltModel(module=module, spec=spec)


def architecture_options(options: dict[str, Any]) -> dict[str, Any]:
    """A saved timm spec's options without those that load weights from a file.

    The trained weights come from ``model.safetensors``; a ``checkpoint_path`` written into
    ``predictor.json`` would make timm read (and possibly unpickle) a file the spec names.
    """
    return {k: v for k, v in options.items() if k not in TIMM_WEIGHT_OPTIONS}


def rebuild_timm(spec: dict[str, Any], directory: Path, *, trust_code: bool) -> BuiltModel:
    """The saved timm architecture, without pretrained weights."""
    module = make_timm(
        spec["name"],
        pretrained=False,
        options=architecture_options(spec["options"]),
        num_outputs=int(spec["num_outputs"]),
        in_chans=int(spec["in_chans"]),
        dropout=float(spec["dropout"]),
    )
    return BuiltModel(module=module, spec=dict(spec))


# --- torchvision ------------------------------------------------------------------------


def _torchvision() -> Any:
    return optional_import(
        "torchvision", package="torchvision", extra="vision", purpose="torchvision: models"
    )


def _cached_weights(name: str, models: Any) -> Any:
    """The DEFAULT weights enum of ``name``, after checking the file is already downloaded.

    torchvision would otherwise start a download; checking first gives an error that names
    the file and the folder it must be in.
    """
    try:
        weights = models.get_model_weights(name).DEFAULT
    except (ValueError, AttributeError):
        raise ConfigError(
            f"model.pretrained: torchvision:{name} has no pretrained weights; set "
            "model.pretrained: false"
        ) from None
    filename = Path(urlparse(weights.url).path).name
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not path.is_file():
        raise ConfigError(
            _offline_hint(
                "torchvision",
                name,
                f"Put {filename} in {path.parent} (run torchvision.models.get_model({name!r}, "
                "weights='DEFAULT') once on a machine with network and copy the file, or set "
                "TORCH_HOME to where it is)",
            )
        )
    return weights


def _split_classifier(name: str, model: nn.Module) -> int:
    """Replace the final Linear layer by Identity in place; return its input features."""
    for attr in TORCHVISION_HEADS:
        holder = getattr(model, attr, None)
        if isinstance(holder, nn.Linear):
            setattr(model, attr, nn.Identity())
            return holder.in_features
        if isinstance(holder, nn.Sequential):
            linears = [i for i, layer in enumerate(holder) if isinstance(layer, nn.Linear)]
            if linears:
                last = holder[linears[-1]]
                assert isinstance(last, nn.Linear)
                holder[linears[-1]] = nn.Identity()
                return last.in_features
    raise ConfigError(
        f"model.source: torchvision:{name} has no final Linear layer in "
        f"{'/'.join(TORCHVISION_HEADS)}, so tunelab cannot replace its classifier; use "
        "a timm: model or a py: function that returns the network you want"
    )


def make_torchvision(
    name: str, *, pretrained: bool, num_outputs: int, in_chans: int, dropout: float
) -> VisionClassifier:
    """A torchvision model with its final Linear layer replaced by a new head."""
    models = _torchvision().models
    if name not in models.list_models():
        hint = did_you_mean(name, models.list_models(), n=3)
        raise ConfigError(
            f"model.source: torchvision:{name} is not a torchvision model; list them with "
            f"torchvision.models.list_models().{hint}"
        )
    if in_chans != 3:
        raise ConfigError(
            f"data.image_mode: torchvision:{name} takes 3-channel images, but the data has "
            f"{in_chans}; set data.image_mode: rgb, or use a timm: model (it adapts in_chans)"
        )
    weights = _cached_weights(name, models) if pretrained else None
    model = models.get_model(name, weights=weights, **TORCHVISION_KWARGS.get(name, {}))
    features = _split_classifier(name, model)
    return VisionClassifier(model, num_features=features, num_outputs=num_outputs, dropout=dropout)


def load_torchvision(name: str, cfg: ModelConfig, request: ModelRequest) -> BuiltModel:
    """``torchvision:NAME``: ``torchvision.models.get_model(NAME)``, DEFAULT weights."""
    _torchvision()
    _need_images("torchvision", request)
    spec = {
        "kind": "torchvision",
        "name": name,
        "num_outputs": request.num_outputs,
        "in_chans": request.input_shape[0],
        "dropout": request.dropout,
    }
    module = make_torchvision(
        name,
        pretrained=cfg.pretrained,
        num_outputs=request.num_outputs,
        in_chans=request.input_shape[0],
        dropout=request.dropout,
    )
    # Vision transformers accept exactly one image size; fail here, not in the first batch.
    size = getattr(module.backbone, "image_size", None)
    if isinstance(size, int) and tuple(request.input_shape[1:]) != (size, size):
        raise ConfigError(
            f"data.image_size: torchvision:{name} takes {size}x{size} images, but the data "
            f"gives {request.input_shape[1]}x{request.input_shape[2]}; set data.image_size: "
            f"[{size}, {size}]"
        )
    return BuiltModel(module=module, spec=spec)


def rebuild_torchvision(spec: dict[str, Any], directory: Path, *, trust_code: bool) -> BuiltModel:
    """The saved torchvision architecture, without pretrained weights."""
    module = make_torchvision(
        spec["name"],
        pretrained=False,
        num_outputs=int(spec["num_outputs"]),
        in_chans=int(spec["in_chans"]),
        dropout=float(spec["dropout"]),
    )
    return BuiltModel(module=module, spec=dict(spec))
