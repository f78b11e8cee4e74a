from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tests.conftest import make_config
from tunelab.evaluation.fitting import Fitted, fit_on_rows
from tunelab.evaluation.prepare import prepare
from tunelab.techniques.batchnorm import backbone_bn_layers, reestimate
from tunelab.training.batching import Batches, TensorData

MODEL = {"source": "builtin:cnn2d", "width": 8, "depth": 2}


def fit(**sections: Any) -> tuple[Fitted, list[dict[str, Any]]]:
    cfg = make_config(data={"source": "sklearn:digits"}, model=MODEL, **sections)
    prepared = prepare(cfg)
    snapshots: list[dict[str, Any]] = []
    fitted = fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation)
    return fitted, snapshots


def bn_state(model: nn.Module) -> list[torch.Tensor]:
    return [
        t.clone()
        for m in backbone_bn_layers(model)
        for t in (m.running_mean, m.running_var, m.weight, m.bias)
    ]


def test_frozen_backbone_bn_keeps_statistics_and_affine_weights() -> None:
    fitted, _ = fit(batch_norm={"backbone": "frozen"})
    model = fitted.predictor.model
    layers = backbone_bn_layers(model)
    assert layers
    for layer in layers:  # fresh BN: mean 0, var 1, weight 1, bias 0, never updated
        assert torch.equal(layer.running_mean, torch.zeros_like(layer.running_mean))
        assert torch.equal(layer.running_var, torch.ones_like(layer.running_var))
        assert torch.equal(layer.weight, torch.ones_like(layer.weight))
        assert int(layer.num_batches_tracked) == 0
    trained, _ = fit(batch_norm={"backbone": "trainable"})
    assert not torch.equal(
        backbone_bn_layers(trained.predictor.model)[0].running_mean, torch.zeros(8)
    )


def test_reestimate_computes_the_training_statistics() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5))
    wrapper = nn.Module()
    wrapper.backbone = model
    x = torch.randn(64, 1, 6, 6) * 3 + 2
    batches = Batches(TensorData((x,), torch.zeros(64)), batch_size=16, device=torch.device("cpu"))
    layers = backbone_bn_layers(wrapper)
    rows = reestimate(model, layers, batches)
    with torch.no_grad():
        activations = model[0](x)
    assert rows == 64
    torch.testing.assert_close(layers[0].running_mean, activations.mean((0, 2, 3)))
    assert layers[0].momentum == 0.1  # restored after the pass


def test_reestimate_mode_records_and_then_freezes() -> None:
    fitted, _ = fit(batch_norm={"backbone": "reestimate"})
    events = fitted.result.history[0]["events"]
    assert any("re-estimated 2 backbone BN layers" in e for e in events)
    layer = backbone_bn_layers(fitted.predictor.model)[0]
    assert not torch.equal(layer.running_mean, torch.zeros_like(layer.running_mean))
    assert torch.equal(layer.weight, torch.ones_like(layer.weight))  # frozen after


def test_momentum_override_and_switches() -> None:
    fitted, _ = fit(batch_norm={"momentum": 0.3, "head": True})
    model = fitted.predictor.model
    assert {m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)} == {0.3}
    assert isinstance(model.head.norm, nn.BatchNorm1d)
    off, _ = fit(batch_norm={"enabled": False})
    assert not any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) for m in off.predictor.model.modules()
    )
