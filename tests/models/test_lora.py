"""finetuning.strategy lora: peft adapters trained, merged, saved without peft, reloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import make_config
from tunelab.errors import ConfigError
from tunelab.evaluation.fitting import fit_on_rows
from tunelab.evaluation.prepare import prepare
from tunelab.results.predictor import load_predictor

pytest.importorskip("peft")


def lora_config(model: Path, **finetuning: object) -> object:
    return make_config(
        data={"source": "csv:examples/data/reviews.csv", "target": "label",
              "text_column": "text", "max_length": 16},
        model={"source": f"hf:{model}"},
        finetuning={"strategy": "lora", "lora_rank": 4, "lora_alpha": 8,
                    "lora_target_modules": ["query", "value"], **finetuning},
        train={"epochs": 2, "lr": 0.01},
    )  # fmt: skip


def test_lora_trains_merges_and_predicts_identically_after_reload(
    tmp_path: Path, tiny_berts: tuple[Path, Path]
) -> None:
    cfg = lora_config(tiny_berts[0])
    prepared = prepare(cfg)  # type: ignore[arg-type]
    split = prepared.split
    fitted = fit_on_rows(cfg, prepared, split.train, split.validation)  # type: ignore[arg-type]
    events = fitted.result.history[0]["events"]
    assert any("lora rank 4, alpha 8 on query, value" in e for e in events)
    fitted.predictor.save(tmp_path / "final")

    state = load_file(str(tmp_path / "final" / "model.safetensors"))
    assert not [name for name in state if "lora" in name]  # merged: the plain architecture
    pretrained = load_file(str(tiny_berts[0] / "model.safetensors"))
    query = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(state[f"backbone.{query}"], pretrained[query])  # the update is in
    key = "encoder.layer.0.attention.self.key.weight"
    assert torch.equal(state[f"backbone.{key}"], pretrained[key])  # not adapted: unchanged

    texts = ["I love it, works great", "Broke after a day, awful"]
    reloaded = load_predictor(tmp_path / "final")
    np.testing.assert_array_equal(
        reloaded.predict_proba(texts), fitted.predictor.predict_proba(texts)
    )


def test_lora_names_the_layers_when_the_targets_match_none(tiny_berts: tuple[Path, Path]) -> None:
    cfg = lora_config(tiny_berts[0], lora_target_modules=["no_such_layer"])
    prepared = prepare(cfg)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"lora_target_modules.*query.*value"):
        fit_on_rows(cfg, prepared, prepared.split.train, None)  # type: ignore[arg-type]
