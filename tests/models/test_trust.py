"""Code named inside a file (predictor.json, a checkpoint's metadata, a model folder's
config) is never imported or called unless the user trusts the file, and even then only
what can be an architecture."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from tests.conftest import make_config
from tunelab.config import ModelConfig
from tunelab.errors import ConfigError, FatalError, TunelabError
from tunelab.flows.train import train
from tunelab.models import build_model
from tunelab.models.base import ModelRequest
from tunelab.models.local import SPEC_METADATA_KEY
from tunelab.results.predictor import load_predictor

NETS = "tl_trust_nets"
NETS_SOURCE = textwrap.dedent("""
    import functools
    from subprocess import getoutput  # a re-export still names subprocess.getoutput

    from torch import nn

    def build(num_outputs, input_shape, hidden=5):
        return nn.Sequential(nn.Linear(input_shape[0], hidden), nn.ReLU(),
                             nn.Linear(hidden, num_outputs))

    def returns_text(num_outputs):
        return "not a network"

    class NotAModule:
        def __init__(self, num_outputs):
            pass

    class Factory:
        def __call__(self, num_outputs):
            return nn.Linear(4, num_outputs)

    factory = Factory()
    partial_build = functools.partial(build, hidden=3)
""")


def commands(marker: Path) -> list[tuple[str, dict[str, Any]]]:
    """Specs that run a shell command when called: each would create ``marker``."""
    return [
        ("subprocess:getoutput", {"cmd": f"touch {marker}"}),
        ("os:system", {"command": f"touch {marker}"}),
    ]


@pytest.fixture
def nets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module of the user's, importable, and not imported yet."""
    folder = tmp_path / "nets"
    folder.mkdir()
    (folder / f"{NETS}.py").write_text(NETS_SOURCE)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, NETS, raising=False)
    return NETS


@pytest.fixture(scope="module")
def builtin_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = make_config(train={"epochs": 1})
    return train(cfg, out=tmp_path_factory.mktemp("trust") / "run").run_dir


def tampered(run: Path, tmp_path: Path, model: dict[str, Any]) -> Path:
    """A copy of ``run`` whose predictor.json names ``model`` as its architecture."""
    copy = tmp_path / "tampered"
    shutil.copytree(run, copy)
    manifest_path = copy / "final" / "predictor.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["model"] = {"input_shape": [4], "num_outputs": 3, **model}
    manifest_path.write_text(json.dumps(manifest))
    return copy


# --- predictor.json ----------------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 1])
def test_predictor_naming_a_command_runs_nothing(
    builtin_run: Path, tmp_path: Path, index: int
) -> None:
    marker = tmp_path / "MARKER"
    target, options = commands(marker)[index]
    run = tampered(builtin_run, tmp_path, {"kind": "py", "target": target, "options": options})
    with pytest.raises(TunelabError) as refused:
        load_predictor(run)
    assert not marker.exists()
    assert isinstance(refused.value, FatalError)
    message = str(refused.value)
    assert "predictor.json" in message and f"py:{target}" in message
    assert "--trust-code" in message and "\n" not in message
    # trusting the file does not make a command an architecture
    with pytest.raises(FatalError, match="standard library"):
        load_predictor(run, trust_code=True)
    assert not marker.exists()


def test_py_predictor_imports_its_module_only_when_trusted(
    tmp_path: Path, nets: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(model={"source": f"py:{nets}:build", "options": {"hidden": 6}})
    run = train(cfg, out=tmp_path / "run").run_dir  # the config names it: no flag needed
    monkeypatch.delitem(sys.modules, nets)
    with pytest.raises(FatalError, match=f"py:{nets}:build"):
        load_predictor(run)
    assert nets not in sys.modules  # refused before importing: its top level never ran
    predictor = load_predictor(run, trust_code=True)
    inputs = pd.read_csv(run / "test_inputs.csv")
    saved = pd.read_csv(run / "test_predictions.csv")
    assert list(predictor.predict(inputs)) == list(saved["prediction"])


@pytest.mark.parametrize(
    ("attribute", "reason"),
    [
        ("getoutput", "a function of subprocess"),
        ("factory", "is a Factory, not a Python function"),
        ("partial_build", "is a partial, not a Python function"),
        ("NotAModule", "is a class but not an nn.Module"),
        ("returns_text", "returned str, not a torch nn.Module"),
    ],
)
def test_trusted_file_still_names_only_an_architecture(
    builtin_run: Path, tmp_path: Path, nets: str, attribute: str, reason: str
) -> None:
    run = tampered(builtin_run, tmp_path, {"kind": "py", "target": f"{nets}:{attribute}"})
    with pytest.raises(FatalError, match=reason):
        load_predictor(run, trust_code=True)


@pytest.mark.parametrize(
    ("target", "allowed"),
    [("torch:load", False), ("torch.hub:load", False), ("torch.nn:Identity", True)],
)
def test_torch_loaders_are_refused_but_its_module_classes_are_not(
    tmp_path: Path, target: str, allowed: bool
) -> None:
    path = checkpoint(tmp_path, {"kind": "py", "target": target, "options": {}})
    cfg = ModelConfig(source=f"file:{path}")
    request = ModelRequest((4,), 3, "tabular", trust_code=True)
    if allowed:
        with pytest.raises(ConfigError, match="no tensor"):  # it builds; the weights do not fit
            build_model(cfg, request)
    else:
        with pytest.raises(FatalError, match="a function of torch"):
            build_model(cfg, request)


# --- --trust-code=MODULES: an allow-list, since a deny-list cannot hold --------------------


EVIL_PICKLE = """
import os, pickle, sys

class Evil:
    def __reduce__(self):
        return (os.system, (f"touch {sys.argv[2]}",))

with open(sys.argv[1], "wb") as f:
    pickle.dump(Evil(), f)
"""


def test_trusted_code_runs_with_the_users_rights_unless_the_module_is_not_listed(
    builtin_run: Path, tmp_path: Path, nets: str
) -> None:
    """A trusted predictor may name any installed package's function; pandas.read_pickle
    runs whatever the pickle says (the README no longer claims otherwise). Naming the
    trusted modules refuses it before anything is imported or called."""
    marker, evil = tmp_path / "MARKER", tmp_path / "evil.pkl"
    subprocess.run([sys.executable, "-c", EVIL_PICKLE, str(evil), str(marker)], check=True)
    spec = {"kind": "py", "target": "pandas:read_pickle"}
    run = tampered(builtin_run, tmp_path, {**spec, "options": {"filepath_or_buffer": str(evil)}})
    from tunelab.models.trust import trusted_modules

    with trusted_modules(nets, "lab.nets"), pytest.raises(FatalError) as refused:
        load_predictor(run, trust_code=True)
    message = str(refused.value)
    assert not marker.exists(), "refused before pandas.read_pickle was called"
    assert "py:pandas:read_pickle" in message and "'pandas' is not among the modules" in message
    assert f"--trust-code={nets},lab.nets,pandas" in message  # the list and the fix
    with pytest.raises(FatalError, match=r"not a torch nn\.Module"):
        load_predictor(run, trust_code=True)  # trusting every module: it ran
    assert marker.exists(), "trusted code runs with the user's rights"


@pytest.fixture
def py_run(tmp_path: Path, nets: str) -> Path:
    """A run whose predictor.json names the user's py:NETS:build."""
    cfg = make_config(model={"source": f"py:{nets}:build"}, train={"epochs": 1})
    return train(cfg, out=tmp_path / "py-run").run_dir


def test_a_listed_module_and_its_submodules_are_trusted(py_run: Path, nets: str) -> None:
    from tunelab.models.trust import trusted_modules

    run = py_run
    rows = pd.read_csv(run / "test_inputs.csv")
    with trusted_modules("other", nets):
        assert len(load_predictor(run, trust_code=True).predict(rows)) == len(rows)
    with trusted_modules(nets + "_not"), pytest.raises(FatalError, match="not among"):
        load_predictor(run, trust_code=True)
    with trusted_modules(nets), pytest.raises(FatalError, match="--trust-code"):
        load_predictor(run)  # the list narrows --trust-code; it never stands for it


def test_trust_code_equals_modules_on_the_command_line(
    py_run: Path, tmp_path: Path, nets: str
) -> None:
    run = py_run
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*sys.path])}
    base = [sys.executable, "-m", "tunelab.cli", "predict", str(run), "--input"]
    base += [str(run / "test_inputs.csv"), "--output", str(tmp_path / "p.csv"), "--overwrite"]
    for flag, code, said in [
        (f"--trust-code=other,{nets}", 0, "wrote"),
        ("--trust-code=other", 2, f"--trust-code=other,{nets}"),
        ("--trust-code=os system", 2, "is not a module name"),
    ]:
        done = subprocess.run(
            [*base, flag], capture_output=True, text=True, env=env, timeout=300, check=False
        )
        assert done.returncode == code, done.stderr[-2000:]
        assert said in " ".join(done.stderr.split())
        assert "Traceback" not in done.stderr


# --- a checkpoint's tunelab.spec metadata --------------------------------------------------


def checkpoint(tmp_path: Path, spec: dict[str, Any]) -> Path:
    """A safetensors file (the first layer of ``build``) whose metadata holds ``spec``."""
    layer = torch.nn.Linear(4, 5)
    path = tmp_path / "pretrained.safetensors"
    state = {f"0.{k}": v.contiguous() for k, v in layer.state_dict().items()}
    save_file(state, str(path), metadata={SPEC_METADATA_KEY: json.dumps(spec)})
    return path


def test_checkpoint_naming_a_command_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    for target, options in commands(marker):
        path = checkpoint(tmp_path, {"kind": "py", "target": target, "options": options})
        cfg = ModelConfig(source=f"file:{path}")
        with pytest.raises(TunelabError) as refused:
            build_model(cfg, ModelRequest((4,), 3, "tabular"))
        assert not marker.exists()
        assert isinstance(refused.value, FatalError)
        message = str(refused.value)
        assert str(path) in message and f"py:{target}" in message
        assert "--trust-code" in message and f"model.architecture: py:{target}" in message
        with pytest.raises(FatalError, match="standard library"):
            build_model(cfg, ModelRequest((4,), 3, "tabular", trust_code=True))
    assert not marker.exists()


def test_checkpoint_architecture_runs_when_trusted_or_named_in_the_config(
    tmp_path: Path, nets: str
) -> None:
    path = checkpoint(tmp_path, {"kind": "py", "target": f"{nets}:build", "options": {}})
    request = ModelRequest((4,), 5, "tabular")
    with pytest.raises(FatalError, match="--trust-code"):
        build_model(ModelConfig(source=f"file:{path}"), request)
    assert nets not in sys.modules
    trusted = ModelRequest((4,), 5, "tabular", trust_code=True)
    built = build_model(ModelConfig(source=f"file:{path}"), trusted)
    assert built.module(torch.randn(2, 4)).shape == (2, 5)
    assert any("loaded 2/4 tensors" in note for note in built.notes)
    # the user's own config naming the architecture is the user's choice: no flag
    named = ModelConfig(source=f"file:{path}", architecture=f"py:{nets}:build")
    assert build_model(named, request).module(torch.randn(2, 4)).shape == (2, 5)


# --- a model folder's own code (transformers' auto_map) ------------------------------------


def remote_code_folder(folder: Path, marker: Path) -> None:
    """A transformers folder whose config asks for its own Python code (auto_map)."""
    folder.mkdir(parents=True)
    config = {
        "model_type": "tl_custom",
        "hidden_size": 8,
        "auto_map": {"AutoConfig": "custom.CustomConfig", "AutoModel": "custom.CustomModel"},
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "custom.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from transformers import PretrainedConfig\n\n"
        "class CustomConfig(PretrainedConfig):\n"
        "    model_type = 'tl_custom'\n"
    )


def test_text_predictor_never_runs_its_backbone_code_even_if_asked(
    builtin_run: Path, tmp_path: Path
) -> None:
    """transformers asks "run the custom code? [y/N]" unless told no; tunelab tells it no,
    so even a 'y' on stdin runs nothing."""
    pytest.importorskip("transformers")
    marker = tmp_path / "MARKER"
    spec = {"kind": "hf", "pooling": "mean", "normalize": False, "dropout": 0.0}
    run = tampered(builtin_run, tmp_path, spec)
    remote_code_folder(run / "final" / "backbone", marker)
    (run / "final" / "tokenizer").mkdir()
    script = "import tunelab, sys; tunelab.load_predictor(sys.argv[1])"
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(run)],
        input="y\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert not marker.exists()
    assert done.returncode != 0
    assert "auto_map" in done.stderr and "FatalError" in done.stderr


def test_hf_source_refuses_a_folder_that_needs_its_own_code(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    marker = tmp_path / "MARKER"
    remote_code_folder(tmp_path / "model", marker)
    cfg = ModelConfig(source=f"hf:{tmp_path / 'model'}")
    with pytest.raises(ConfigError, match="auto_map"):
        build_model(cfg, ModelRequest((16,), 2, "text"))
    assert not marker.exists()


def test_rebuilt_timm_model_reads_no_checkpoint_the_file_names() -> None:
    from tunelab.models.vision import architecture_options

    options = {"drop_path_rate": 0.1, "checkpoint_path": "/elsewhere/model.pth"}
    assert architecture_options(options) == {"drop_path_rate": 0.1}
