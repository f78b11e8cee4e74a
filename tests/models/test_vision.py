"""timm: and torchvision: sources.

Neither package is a test dependency. The install hint is checked with the package hidden;
the head surgery is checked against small stand-ins that follow the documented APIs
(``timm.create_model`` / ``reset_classifier``, ``torchvision.models.get_model``), so these
tests do not prove the real packages behave as the stand-ins do.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tunelab.config import ModelConfig
from tunelab.errors import ConfigError, MissingDependency
from tunelab.models import ModelRequest, build_model, rebuild_model

IMAGES = ModelRequest(input_shape=(3, 8, 8), num_outputs=4, modality="image")


@pytest.mark.parametrize("package", ["timm", "torchvision"])
def test_missing_package_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, package: str
) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # makes `import package` fail
    with pytest.raises(MissingDependency) as excinfo:
        build_model(ModelConfig(source=f"{package}:resnet18"), IMAGES)
    message = str(excinfo.value)
    assert f"'{package}'" in message
    assert "pip install -c constraints.txt 'tunelab[vision]'" in message


@pytest.mark.parametrize("package", ["timm", "torchvision"])
def test_rebuild_without_the_package_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, package: str, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, package, None)
    spec = {
        "kind": package,
        "name": "resnet18",
        "options": {},
        "num_outputs": 2,
        "in_chans": 3,
        "dropout": 0.0,
    }
    with pytest.raises(MissingDependency, match=r"tunelab\[vision\]"):
        rebuild_model(spec, tmp_path)


# --- stand-ins ---------------------------------------------------------------------------


class TinyResNet(nn.Module):
    """Shaped like torchvision's ResNet: features, then ``fc``."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(6, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))  # type: ignore[no-any-return]


class TinyMobileNet(nn.Module):
    """Shaped like torchvision's MobileNetV3: ``classifier`` = Linear, act, dropout, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 5, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Sequential(
            nn.Linear(5, 7), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(7, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))  # type: ignore[no-any-return]


class TinySqueezeNet(TinyMobileNet):
    """A classifier without any Linear layer (like SqueezeNet's conv classifier)."""

    def __init__(self) -> None:
        super().__init__()
        self.classifier = nn.Sequential(nn.Conv2d(5, 10, 1))


def fake_torchvision(calls: list[dict[str, Any]]) -> types.ModuleType:
    builders: dict[str, Callable[[], nn.Module]] = {
        "resnet_tiny": TinyResNet,
        "mobilenet_tiny": TinyMobileNet,
        "squeezenet_tiny": TinySqueezeNet,
    }
    weights = types.SimpleNamespace(url="https://download.example/models/resnet_tiny-abc123.pth")

    def get_model(name: str, **kwargs: Any) -> nn.Module:
        calls.append({"name": name, **kwargs})
        return builders[name]()

    models = types.SimpleNamespace(
        list_models=lambda: sorted(builders),
        get_model=get_model,
        get_model_weights=lambda name: types.SimpleNamespace(DEFAULT=weights),
    )
    module = types.ModuleType("torchvision")
    module.models = models  # type: ignore[attr-defined]
    return module


@pytest.fixture
def torchvision_calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setitem(sys.modules, "torchvision", fake_torchvision(calls))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return calls


@pytest.mark.parametrize("name", ["resnet_tiny", "mobilenet_tiny"])
def test_torchvision_classifier_becomes_a_new_head(
    torchvision_calls: list[dict[str, Any]], name: str, tmp_path: Path
) -> None:
    built = build_model(ModelConfig(source=f"torchvision:{name}", pretrained=False), IMAGES)
    assert torchvision_calls == [{"name": name, "weights": None}]
    module: Any = built.module
    assert isinstance(module.head.linear, nn.Linear)
    assert module.head.linear.out_features == 4
    features = module.backbone(torch.zeros(2, 3, 8, 8))
    assert features.shape == (2, module.head.linear.in_features)
    assert module(torch.zeros(2, 3, 8, 8)).shape == (2, 4)

    rebuilt = rebuild_model(built.spec, tmp_path)
    rebuilt.module.load_state_dict(built.module.state_dict(), strict=True)


def test_torchvision_pretrained_weights_not_cached_name_the_file(
    torchvision_calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build_model(ModelConfig(source="torchvision:resnet_tiny"), IMAGES)
    message = str(excinfo.value)
    assert "resnet_tiny-abc123.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "model.pretrained: false" in message
    assert torchvision_calls == []  # nothing was built, so nothing was downloaded


def test_torchvision_pretrained_weights_in_the_cache_are_used(
    torchvision_calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "resnet_tiny-abc123.pth").write_bytes(b"")
    build_model(ModelConfig(source="torchvision:resnet_tiny"), IMAGES)
    assert torchvision_calls[0]["weights"] is not None


def test_torchvision_refusals(torchvision_calls: list[dict[str, Any]]) -> None:
    cfg = ModelConfig(source="torchvision:resnet_tiny", pretrained=False)
    gray = ModelRequest(input_shape=(1, 8, 8), num_outputs=2, modality="image")
    with pytest.raises(ConfigError, match=r"data\.image_mode: .*takes 3-channel images"):
        build_model(cfg, gray)
    with pytest.raises(ConfigError, match=r"Did you mean 'resnet_tiny'"):
        build_model(ModelConfig(source="torchvision:resnet_tyni", pretrained=False), IMAGES)
    with pytest.raises(ConfigError, match=r"no final Linear layer"):
        build_model(ModelConfig(source="torchvision:squeezenet_tiny", pretrained=False), IMAGES)
    table = ModelRequest(input_shape=(5,), num_outputs=2, modality="tabular")
    with pytest.raises(ConfigError, match=r"take images"):
        build_model(cfg, table)


class TinyTimmNet(nn.Module):
    """Shaped like a timm model with a pre-logits layer (MobileNetV3): 5 features, 9 pre-logits."""

    num_features = 5
    head_hidden_size = 9

    def __init__(self, num_classes: int, in_chans: int, **options: Any) -> None:
        super().__init__()
        self.options = options
        self.body = nn.Sequential(
            nn.Conv2d(in_chans, 5, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 9)
        )
        self.classifier: nn.Module = nn.Linear(9, num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        assert num_classes == 0
        self.classifier = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))  # type: ignore[no-any-return]


def fake_timm(calls: list[dict[str, Any]], *, offline: bool = False) -> types.ModuleType:
    def create_model(name: str, *, pretrained: bool, **kwargs: Any) -> nn.Module:
        calls.append({"name": name, "pretrained": pretrained, **kwargs})
        if pretrained and offline:
            raise FileNotFoundError("not in the Hugging Face cache")  # what huggingface_hub does
        return TinyTimmNet(**kwargs)

    module = types.ModuleType("timm")
    module.create_model = create_model  # type: ignore[attr-defined]
    module.is_model = lambda name: name == "tinynet"  # type: ignore[attr-defined]
    module.list_models = lambda: ["tinynet"]  # type: ignore[attr-defined]
    return module


def test_timm_backbone_gives_pre_logits_features_and_rebuilds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setitem(sys.modules, "timm", fake_timm(calls))
    gray = ModelRequest(input_shape=(1, 8, 8), num_outputs=3, modality="image")
    cfg = ModelConfig(source="timm:tinynet", options={"drop_rate": 0.1})
    built = build_model(cfg, gray)
    assert calls == [
        {"name": "tinynet", "pretrained": True, "num_classes": 3, "in_chans": 1, "drop_rate": 0.1}
    ]
    module: Any = built.module
    assert module.head.linear.in_features == 9
    assert module(torch.zeros(2, 1, 8, 8)).shape == (2, 3)

    rebuilt = rebuild_model(built.spec, tmp_path)
    assert calls[-1]["pretrained"] is False
    rebuilt.module.load_state_dict(built.module.state_dict(), strict=True)


def test_timm_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", fake_timm([], offline=True))
    with pytest.raises(ConfigError, match=r"Did you mean 'tinynet'"):
        build_model(ModelConfig(source="timm:tinynte"), IMAGES)
    with pytest.raises(ConfigError) as excinfo:
        build_model(ModelConfig(source="timm:tinynet"), IMAGES)
    message = str(excinfo.value)
    assert "not on this machine" in message
    assert "pretrained_cfg_overlay" in message
    assert "model.pretrained: false" in message
