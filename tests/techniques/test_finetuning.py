from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from tests.conftest import make_config
from tunelab.config import FinetuningConfig
from tunelab.errors import ConfigError
from tunelab.evaluation import fitting
from tunelab.evaluation.fitting import Fitted, fit_on_rows
from tunelab.evaluation.prepare import prepare
from tunelab.models.base import ModelRequest
from tunelab.models.builtin import make_builtin
from tunelab.models.local import SPEC_METADATA_KEY
from tunelab.techniques.finetuning import layer_groups, lr_scales


@pytest.fixture
def pretrained(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """An MLP 'pretrained' elsewhere (random weights, 5 classes), saved as tunelab does."""
    torch.manual_seed(123)
    built = make_builtin("mlp", {"width": 16, "depth": 2}, ModelRequest((30,), 5, "tabular"))
    path = tmp_path / "pretrained.safetensors"
    state = {k: v.contiguous() for k, v in built.module.state_dict().items()}
    save_file(state, str(path), metadata={SPEC_METADATA_KEY: json.dumps(built.spec)})
    return path, {k: v.clone() for k, v in state.items() if k.startswith("backbone.")}


def fit(
    path: Path, finetuning: dict[str, Any], **sections: Any
) -> tuple[Fitted, list[dict[str, torch.Tensor]]]:
    """Train, snapshotting the backbone's state at the end of every epoch."""
    cfg = make_config(
        data={"source": "sklearn:breast_cancer"},
        model={"source": f"file:{path}"},
        finetuning=finetuning,
        early_stopping={"enabled": False, "restore_best": False},
        **({"train": {"epochs": 4, "lr": 0.01}} | sections),
    )
    prepared = prepare(cfg)
    snapshots: list[dict[str, torch.Tensor]] = []
    model_ref: list[nn.Module] = []

    def snapshot(record: dict[str, Any]) -> None:
        state = model_ref[0].state_dict()
        snapshots.append({k: v.clone() for k, v in state.items() if k.startswith("backbone.")})

    original = fitting.fit

    def spy(model: nn.Module, *args: Any, **kwargs: Any) -> Any:
        model_ref.append(model)  # the callback needs the model that is being trained
        return original(model, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fitting, "fit", spy)
        fitted = fit_on_rows(
            cfg, prepared, prepared.split.train, prepared.split.validation, callbacks=[snapshot]
        )
    return fitted, snapshots


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str = "") -> bool:
    keys = [k for k in a if k.startswith(prefix)]
    return bool(keys) and all(torch.equal(a[k], b[k]) for k in keys)


def test_linear_probe_leaves_backbone_bit_identical(pretrained: Any) -> None:
    path, initial = pretrained
    # the backbone runs every epoch here; with cached features it does not run at all
    fitted, snaps = fit(path, {"strategy": "linear_probe", "cache_features": False})
    assert same(snaps[-1], initial)  # weights and BN statistics
    model = fitted.predictor.model
    assert all(p.grad is None and not p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    assert any("backbone frozen" in e for e in fitted.result.history[0]["events"])


def test_freeze_then_unfreeze_trains_the_backbone_from_the_given_epoch(pretrained: Any) -> None:
    path, initial = pretrained
    fitted, snaps = fit(path, {"strategy": "freeze_then_unfreeze", "unfreeze_epoch": 2})
    assert same(snaps[0], initial) and same(snaps[1], initial)
    assert not same(snaps[2], initial, "backbone.1.0.weight")
    assert "unfroze backbone group(s) [0, 1]" in " ".join(fitted.result.history[2]["events"])


def test_gradual_unfreezing_goes_top_down(pretrained: Any) -> None:
    path, initial = pretrained
    _, snaps = fit(path, {"strategy": "freeze_then_unfreeze", "unfreeze_epoch": 1, "gradual": True})
    top, bottom = "backbone.2.0.weight", "backbone.1.0.weight"
    assert snaps[1][bottom].equal(initial[bottom]) and not snaps[1][top].equal(initial[top])
    assert not snaps[2][bottom].equal(initial[bottom])


def test_gradual_unfreezing_trains_unfrozen_layers_in_train_mode(pretrained: Any) -> None:
    """At epoch 1 only the top block is unfrozen: its batch-norm statistics follow the new
    data while the frozen block below keeps the pretrained ones (eval mode)."""
    path, initial = pretrained
    _, snaps = fit(path, {"strategy": "freeze_then_unfreeze", "unfreeze_epoch": 1, "gradual": True})
    top, bottom = "backbone.2.1.running_mean", "backbone.1.1.running_mean"
    assert snaps[0][top].equal(initial[top]) and snaps[0][bottom].equal(initial[bottom])
    assert not snaps[1][top].equal(initial[top]), "the unfrozen block ran in eval mode"
    assert snaps[1][bottom].equal(initial[bottom]), "a frozen block's statistics changed"
    assert not snaps[2][bottom].equal(initial[bottom])


def test_discriminative_learning_rates_in_history(pretrained: Any) -> None:
    path, _ = pretrained
    fitted, _ = fit(
        path,
        {"strategy": "discriminative", "backbone_lr_mult": 0.1},
        train={"epochs": 1, "lr": 0.02, "schedule": "constant"},
    )
    assert fitted.result.history[0]["lr_groups"] == pytest.approx({"x1": 0.02, "x0.1": 0.002})


def tiny_bert() -> nn.Module:
    from transformers import BertConfig, BertModel

    wrapper = nn.Module()
    wrapper.backbone = BertModel(
        BertConfig(
            hidden_size=16,
            num_hidden_layers=3,
            num_attention_heads=2,
            intermediate_size=20,
            vocab_size=50,
        )
    )
    wrapper.head = nn.Linear(16, 2)
    return wrapper


def test_llrd_gives_the_documented_per_layer_rates() -> None:
    model = tiny_bert()
    groups = layer_groups(model)
    assert len(groups) == 5  # embeddings, 3 encoder layers, pooler
    scales = lr_scales(model, FinetuningConfig(strategy="llrd", layer_decay=0.5))
    emb = model.backbone.embeddings.word_embeddings.weight
    layer0 = model.backbone.encoder.layer[0].attention.self.query.weight
    top = model.backbone.encoder.layer[2].output.dense.weight
    assert scales[id(emb)] == 0.5**5
    assert scales[id(layer0)] == 0.5**4
    assert scales[id(top)] == 0.5**2
    assert id(model.head.weight) not in scales  # the head keeps the full rate


def test_scratch_reinitializes_pretrained_weights(pretrained: Any) -> None:
    path, initial = pretrained
    fitted, snaps = fit(path, {"strategy": "scratch"}, train={"epochs": 1, "lr": 1e-9})
    moved = (snaps[0]["backbone.1.0.weight"] - initial["backbone.1.0.weight"]).abs().mean()
    assert moved > 0.05  # re-initialized, not fine-tuned by a 1e-9 learning rate
    assert any("scratch" in e for e in fitted.result.history[0]["events"])


def test_strategies_that_need_a_backbone_refuse_plain_models(
    tmp_path: Path, monkeypatch: Any
) -> None:
    (tmp_path / "plain_net.py").write_text(
        "from torch import nn\n\ndef build(num_outputs):\n"
        "    return nn.Sequential(nn.Linear(30, 8), nn.ReLU(), nn.Linear(8, num_outputs))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = make_config(
        data={"source": "sklearn:breast_cancer"},
        model={"source": "py:plain_net:build"},
        finetuning={"strategy": "linear_probe"},
    )
    prepared = prepare(cfg)
    with pytest.raises(ConfigError, match="needs a model with 'backbone' and 'head'"):
        fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation)
