from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from tests.conftest import make_config
from tunelab.evaluation.fitting import Fitted, fit_on_rows
from tunelab.evaluation.prepare import prepare
from tunelab.models.base import ModelRequest
from tunelab.models.builtin import make_builtin
from tunelab.techniques.regularization import set_backbone_dropout
from tunelab.training.optim import make_optimizer


def fit(**sections: Any) -> Fitted:
    cfg = make_config(data={"source": "sklearn:breast_cancer"}, **sections)
    prepared = prepare(cfg)
    return fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation)


def weights(fitted: Fitted) -> torch.Tensor:
    model = fitted.predictor.model
    return torch.cat([p.detach().flatten() for p in model.parameters() if p.ndim >= 2])


TRAIN = {"epochs": 15, "lr": 0.01, "schedule": "constant"}
NO_STOP = {"enabled": False, "restore_best": False}


def test_weight_decay_shrinks_the_weight_norm() -> None:
    plain = fit(train=TRAIN, early_stopping=NO_STOP, regularization={"weight_decay": 0.0})
    decayed = fit(train=TRAIN, early_stopping=NO_STOP, regularization={"weight_decay": 5.0})
    assert weights(decayed).norm() < 0.7 * weights(plain).norm()


def test_decoupled_decay_leaves_biases_and_norm_weights_alone() -> None:
    opts = {"width": 8, "depth": 2}
    model = make_builtin("mlp", opts, ModelRequest((4,), 3, "tabular")).module
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = make_config(train={"optimizer": "adamw", "lr": 0.1}).train
    optimizer = make_optimizer(model, cfg, weight_decay=0.5)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for name, param in model.named_parameters():
        if param.ndim >= 2:  # weights: multiplied by (1 - lr * wd) exactly
            torch.testing.assert_close(param, before[name] * (1 - 0.1 * 0.5))
        else:  # biases, BN scales and shifts: untouched
            assert torch.equal(param, before[name]), name


def test_l1_drives_weights_to_zero() -> None:
    plain = fit(train=TRAIN, early_stopping=NO_STOP)
    sparse = fit(train=TRAIN, early_stopping=NO_STOP, regularization={"l1": 0.01})
    near_zero = lambda w: float((w.abs() < 1e-2).float().mean())  # noqa: E731
    assert near_zero(weights(sparse)) > near_zero(weights(plain)) + 0.3


def test_label_smoothing_makes_predictions_less_confident() -> None:
    sharp = fit(train=TRAIN, early_stopping=NO_STOP)
    smooth = fit(train=TRAIN, early_stopping=NO_STOP, regularization={"label_smoothing": 0.3})
    inputs = prepare(make_config(data={"source": "sklearn:breast_cancer"})).raw.inputs

    def confidence(fitted: Fitted) -> float:
        return float(np.mean(fitted.predictor.predict_proba(inputs).max(1)))

    assert confidence(smooth) < confidence(sharp) - 0.05
    assert confidence(smooth) < 0.9  # smoothing 0.3 over 2 classes targets 0.85


def test_backbone_dropout_override_and_head_dropout() -> None:
    fitted = fit(regularization={"dropout": 0.25, "backbone_dropout": 0.4})
    model = fitted.predictor.model
    assert model.head.dropout.p == 0.25
    rates = [m.p for m in model.backbone.modules() if isinstance(m, nn.Dropout)]
    assert rates and set(rates) == {0.4}
    assert any("backbone dropout 0.4" in e for e in fitted.result.history[0]["events"])


def test_backbone_dropout_reaches_transformers_config() -> None:
    from transformers import BertConfig, BertModel

    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            config = BertConfig(
                hidden_size=16,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=20,
                vocab_size=50,
            )
            self.backbone = BertModel(config)

    model = Wrapper()
    assert set_backbone_dropout(model, 0.33) > 0
    assert model.backbone.config.hidden_dropout_prob == 0.33
    assert model.backbone.config.attention_probs_dropout_prob == 0.33


def test_disabled_regularization_turns_everything_off() -> None:
    fitted = fit(
        regularization={
            "enabled": False,
            "dropout": 0.5,
            "weight_decay": 1.0,
            "l1": 0.1,
            "label_smoothing": 0.2,
        }
    )
    assert fitted.predictor.info["techniques"]["regularization"] == "off"
    assert fitted.predictor.model.head.dropout.p == 0.0
    optimizer_groups = fitted.result.history[0].get("lr_groups")
    assert optimizer_groups is None
