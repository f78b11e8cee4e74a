"""tunelab: fine-tune a model on your dataset and show, with evidence, which techniques helped."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_predictor"]

if TYPE_CHECKING:
    from tunelab.results.predictor import load_predictor


def __getattr__(name: str) -> Any:
    """``tunelab.load_predictor`` without importing torch on ``import tunelab``."""
    if name == "load_predictor":
        from tunelab.results.predictor import load_predictor

        return load_predictor
    raise AttributeError(f"module 'tunelab' has no attribute {name!r}")
