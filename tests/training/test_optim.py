from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.conftest import make_config
from tunelab.models.base import ModelRequest
from tunelab.models.builtin import make_builtin
from tunelab.training.optim import make_optimizer, parameter_groups


def model() -> nn.Module:
    opts = {"width": 8, "depth": 2}
    return make_builtin("mlp", opts, ModelRequest((4,), 3, "tabular")).module


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("sgd", torch.optim.SGD),
        ("adam", torch.optim.Adam),
        ("adamw", torch.optim.AdamW),
        ("rmsprop", torch.optim.RMSprop),
    ],
)
def test_every_optimizer_builds_and_steps(name: str, kind: type) -> None:
    net = model()
    cfg = make_config(train={"optimizer": name, "lr": 0.05, "nesterov": True}).train
    optimizer = make_optimizer(net, cfg, weight_decay=0.01)
    assert isinstance(optimizer, kind)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_sgd_nesterov_flag_reaches_torch() -> None:
    cfg = make_config(train={"optimizer": "sgd", "nesterov": True, "momentum": 0.9}).train
    assert make_optimizer(model(), cfg).defaults["nesterov"] is True


def test_no_decay_on_biases_and_norm_weights_and_no_frozen_params() -> None:
    net = model()
    net.head.linear.weight.requires_grad_(False)
    groups = {g["name"]: g for g in parameter_groups(net, 0.1)}
    decayed = {id(p) for p in groups["decay@1"]["params"]}
    plain = {id(p) for p in groups["no_decay@1"]["params"]}
    for name, param in net.named_parameters():
        if name == "head.linear.weight":
            assert id(param) not in decayed | plain
        elif name.endswith("bias") or param.ndim == 1:
            assert id(param) in plain, name
        else:
            assert id(param) in decayed, name
    assert groups["decay@1"]["weight_decay"] == 0.1
    assert groups["no_decay@1"]["weight_decay"] == 0.0
