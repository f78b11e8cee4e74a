"""Shared helpers: small configs that train in a second or two on CPU."""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch

from tunelab.config import RunConfig, config_from_dict

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(1)


def make_config(**sections: Any) -> RunConfig:
    """A RunConfig from dict sections, with a small fast default model and schedule."""
    raw: dict[str, Any] = {
        "name": "test",
        "data": {"source": "sklearn:iris"},
        "model": {"source": "builtin:mlp", "width": 16, "depth": 1},
        "train": {"epochs": 3, "batch_size": 32, "threads": 1, "device": "cpu"},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return config_from_dict(raw)


@pytest.fixture
def config_factory() -> Any:
    return make_config
