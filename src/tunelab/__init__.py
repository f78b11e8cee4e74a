"""tunelab: fine-tune a model on your dataset and show, with evidence, which techniques helped."""

from __future__ import annotations

__version__ = "0.1.0"
