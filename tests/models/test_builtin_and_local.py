from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from tests.conftest import make_config
from tunelab.errors import ConfigError
from tunelab.flows.train import train
from tunelab.models import build_model
from tunelab.models.base import ModelRequest
from tunelab.models.local import SPEC_METADATA_KEY


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("mlp", (30,)),
        ("mlp", (1, 8, 8)),
        ("cnn1d", (2, 40)),
        ("cnn2d", (3, 16, 16)),
        ("resnet", (1, 8, 8)),
    ],
)
@pytest.mark.parametrize("batch_norm", [True, False])
def test_builtin_shapes_parts_and_batch_norm_switch(
    name: str, shape: tuple[int, ...], batch_norm: bool
) -> None:
    cfg = make_config(model={"source": f"builtin:{name}", "width": 8, "depth": 2})
    built = build_model(cfg.model, ModelRequest(shape, 4, "image", batch_norm=batch_norm))
    module = built.module
    assert isinstance(module.head.linear, nn.Linear)
    out = module(torch.randn(5, *shape))
    assert out.shape == (5, 4)
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
    assert has_bn is batch_norm


def test_head_dropout_and_head_batch_norm_reach_the_head() -> None:
    cfg = make_config(model={"source": "builtin:mlp", "depth": 2})
    request = ModelRequest((6,), 2, "tabular", dropout=0.37, head_batch_norm=True)
    module = build_model(cfg.model, request).module
    assert module.head.dropout.p == 0.37
    assert isinstance(module.head.norm, nn.BatchNorm1d)
    # the backbone's own dropout layers exist (rate 0) so regularization can set them
    assert [m.p for m in module.backbone.modules() if isinstance(m, nn.Dropout)] == [0.0, 0.0]


def test_wrong_architecture_for_the_data_is_a_clear_error() -> None:
    cfg = make_config(model={"source": "builtin:cnn2d"})
    with pytest.raises(ConfigError, match=r"builtin:cnn2d takes images .* shape \(30,\)"):
        build_model(cfg.model, ModelRequest((30,), 2, "tabular"))
    with pytest.raises(ConfigError, match="unknown builtin architecture 'cnn3d'"):
        build_model(
            make_config(model={"source": "builtin:cnn3d"}).model, ModelRequest((30,), 2, "tabular")
        )


def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_nets.py").write_text(
        textwrap.dedent("""
        from torch import nn

        def tiny(num_outputs, hidden=7):
            return nn.Sequential(nn.Flatten(), nn.LazyLinear(hidden), nn.ReLU(),
                                 nn.Linear(hidden, num_outputs))

        def not_a_model():
            return 3
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))


def test_py_source_passes_options_and_num_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(tmp_path, monkeypatch)
    cfg = make_config(model={"source": "py:my_nets:tiny", "options": {"hidden": 5}})
    module = build_model(cfg.model, ModelRequest((4,), 3, "tabular")).module
    assert module(torch.randn(2, 4)).shape == (2, 3)
    assert module[3].in_features == 5


def test_py_source_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(tmp_path, monkeypatch)
    request = ModelRequest((4,), 3, "tabular")
    fix = "cannot import module 'no_such_mod'.*put no_such_mod.py in the directory tunelab runs in"
    with pytest.raises(ConfigError, match=fix):
        build_model(make_config(model={"source": "py:no_such_mod:f"}).model, request)
    with pytest.raises(ConfigError, match="has no attribute 'nope'"):
        build_model(make_config(model={"source": "py:my_nets:nope"}).model, request)
    with pytest.raises(ConfigError, match=r"returned int, not a torch nn.Module"):
        build_model(make_config(model={"source": "py:my_nets:not_a_model"}).model, request)


def test_file_source_loads_pretrained_weights_and_reinitializes_a_new_head(tmp_path: Path) -> None:
    cfg = make_config(model={"source": "builtin:mlp", "width": 8, "depth": 2})
    pretrained = build_model(cfg.model, ModelRequest((6,), 5, "tabular"))
    path = tmp_path / "backbone.safetensors"

    save_file(
        pretrained.module.state_dict(),
        str(path),
        metadata={SPEC_METADATA_KEY: json.dumps(pretrained.spec)},
    )
    loaded = build_model(
        make_config(model={"source": f"file:{path}"}).model, ModelRequest((6,), 2, "tabular")
    )
    for key, value in pretrained.module.state_dict().items():
        if key.startswith("backbone."):
            torch.testing.assert_close(loaded.module.state_dict()[key], value)
    assert loaded.module.head.linear.out_features == 2
    assert any("head.linear.weight" in note for note in loaded.notes)


def test_file_source_without_metadata_needs_architecture(tmp_path: Path) -> None:
    cfg = make_config(model={"source": "builtin:mlp", "width": 8, "depth": 1})
    module = build_model(cfg.model, ModelRequest((6,), 2, "tabular")).module
    path = tmp_path / "plain.safetensors"
    save_file(module.state_dict(), str(path))
    with pytest.raises(ConfigError, match=r"set model.architecture"):
        build_model(
            make_config(model={"source": f"file:{path}"}).model, ModelRequest((6,), 2, "tabular")
        )
    loaded = build_model(
        make_config(
            model={"source": f"file:{path}", "architecture": "builtin:mlp", "width": 8, "depth": 1}
        ).model,
        ModelRequest((6,), 2, "tabular"),
    )
    torch.testing.assert_close(loaded.module.head.linear.weight, module.head.linear.weight)
    wrong = make_config(model={"source": f"file:{path}", "architecture": "builtin:cnn1d"})
    with pytest.raises(ConfigError):
        build_model(wrong.model, ModelRequest((6,), 2, "tabular"))


def test_file_source_refuses_pickles(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"not really")
    with pytest.raises(ConfigError, match="never unpickles"):
        build_model(
            make_config(model={"source": f"file:{path}"}).model, ModelRequest((6,), 2, "tabular")
        )


def test_file_source_honours_batch_norm_switch(tmp_path: Path) -> None:
    cfg = make_config(model={"source": "builtin:cnn2d", "width": 4, "depth": 2})
    pretrained = build_model(cfg.model, ModelRequest((1, 8, 8), 3, "image"))
    path = tmp_path / "bn.safetensors"
    save_file(
        pretrained.module.state_dict(),
        str(path),
        metadata={SPEC_METADATA_KEY: json.dumps(pretrained.spec)},
    )
    request = ModelRequest((1, 8, 8), 3, "image", batch_norm=False)
    loaded = build_model(make_config(model={"source": f"file:{path}"}).model, request)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in loaded.module.modules())
    assert any("batch_norm.enabled is False" in note for note in loaded.notes)
    # the convolutions still carry the pretrained weights
    torch.testing.assert_close(
        loaded.module.backbone[0][0].weight, pretrained.module.backbone[0][0].weight
    )


def test_py_module_in_the_working_directory_imports_from_the_tunelab_script(
    tmp_path: Path,
) -> None:
    """The ``tunelab`` console script does not put the working directory on ``sys.path``
    (``python -m`` would); ``py:`` modules there must import all the same."""
    (tmp_path / "local_nets.py").write_text(
        "from torch import nn\n\n"
        "def linear(num_outputs, input_shape):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], num_outputs))\n"
    )
    (tmp_path / "run.yaml").write_text(
        "name: local\n"
        "data: {source: 'sklearn:iris'}\n"
        "model: {source: 'py:local_nets:linear'}\n"
        "train: {epochs: 1, threads: 1}\n"
    )
    script = Path(sys.executable).parent / "tunelab"
    done = subprocess.run(
        [str(script), "train", "run.yaml", "--out", "out", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "final" / "predictor.json").is_file()


@pytest.mark.parametrize("strategy", ["full", "scratch"])
def test_run_notes_say_what_became_of_pretrained_weights(tmp_path: Path, strategy: str) -> None:
    """Under scratch the checkpoint's tensors are re-initialized before training, so the
    notes in metrics.json must not say they were used."""
    pretrained = build_model(
        make_config(model={"source": "builtin:mlp", "width": 8, "depth": 1}).model,
        ModelRequest((4,), 3, "tabular"),
    )
    path = tmp_path / "pretrained.safetensors"
    save_file(
        pretrained.module.state_dict(),
        str(path),
        metadata={SPEC_METADATA_KEY: json.dumps(pretrained.spec)},
    )
    cfg = make_config(
        model={"source": f"file:{path}"},
        finetuning={"strategy": strategy},
        train={"epochs": 1},
    )
    notes = train(cfg, out=tmp_path / "run").metrics["notes"]
    if strategy == "full":
        assert notes == [f"loaded 9/9 tensors from {path}"]
    else:
        assert notes == [
            f"finetuning.strategy scratch: {path} gives the architecture; its weights are "
            "re-initialized, not used"
        ]
