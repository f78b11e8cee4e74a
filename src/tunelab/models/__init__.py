"""Model sources by prefix: builtin:, py:, file:, hf:, st:, timm:, torchvision:."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunelab.config import ModelConfig
from tunelab.models import builtin, local, text, vision
from tunelab.models.base import MODEL_REBUILDERS, MODEL_SOURCES, BuiltModel, ModelRequest

__all__ = ["BuiltModel", "ModelRequest", "build_model", "rebuild_model"]
_ = (builtin, local, text, vision)  # importing them registers their sources


def build_model(cfg: ModelConfig, request: ModelRequest) -> BuiltModel:
    """Build a fresh model (with pretrained weights where the source has them)."""
    prefix, _, value = cfg.source.partition(":")
    return MODEL_SOURCES.get(prefix, field="model.source")(value, cfg, request)


def rebuild_model(spec: dict[str, Any], directory: Path) -> BuiltModel:
    """Rebuild a saved model's architecture (the caller loads the trained weights)."""
    return MODEL_REBUILDERS.get(spec["kind"], field="predictor.json model.kind")(spec, directory)
