"""Model sources by prefix: builtin:, py:, file:, hf:, st:, timm:, torchvision:."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunelab.config import ModelConfig
from tunelab.models import builtin, local, text, vision
from tunelab.models.base import MODEL_REBUILDERS, MODEL_SOURCES, BuiltModel, ModelRequest
from tunelab.models.classical import rebuild_head

__all__ = ["BuiltModel", "ModelRequest", "build_model", "rebuild_model"]
_ = (builtin, local, text, vision)  # importing them registers their sources


def build_model(cfg: ModelConfig, request: ModelRequest) -> BuiltModel:
    """Build a fresh model (with pretrained weights where the source has them)."""
    prefix, _, value = cfg.source.partition(":")
    return MODEL_SOURCES.get(prefix, field="model.source")(value, cfg, request)


def rebuild_model(spec: dict[str, Any], directory: Path, *, trust_code: bool = False) -> BuiltModel:
    """Rebuild a saved model's architecture (the caller loads the trained weights).

    Args:
        spec: the ``model`` entry of ``predictor.json``.
        directory: the predictor directory (a text model's ``backbone/`` and ``tokenizer/``).
        trust_code: import and call a ``py:`` architecture the spec names (``--trust-code``);
            without it such a spec is refused and nothing is imported.
    """
    rebuild = MODEL_REBUILDERS.get(str(spec.get("kind")), field="predictor.json model.kind")
    built = rebuild(spec, directory, trust_code=trust_code)
    rebuild_head(built.module, spec)  # a scikit-learn head saved as tensors (model.head hgb)
    return built
