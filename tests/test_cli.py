from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import save_file
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.models.local import SPEC_METADATA_KEY

runner = CliRunner()
QUICK = ["--set", "train.epochs=2", "--set", "train.threads=1"]


def write_config(tmp_path: Path, **extra: object) -> Path:
    data = {
        "name": "cli",
        "data": {"source": "sklearn:digits"},
        "model": {"source": "builtin:cnn2d", "width": 8, "depth": 2},
        **extra,
    }
    path = tmp_path / "cli.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_check_prints_the_resolved_config(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(write_config(tmp_path)), "--set", "train.lr=0.5"])
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.stdout)
    assert resolved["train"]["lr"] == 0.5
    assert resolved["early_stopping"]["patience"] == 5


def test_bad_config_is_one_clear_message_without_traceback(tmp_path: Path) -> None:
    path = write_config(tmp_path, train={"optimiser": "adam"})
    result = runner.invoke(app, ["train", str(path)])
    assert result.exit_code == 2
    assert "train.optimiser: unknown field" in result.output
    assert "Did you mean 'optimizer'?" in result.output
    assert "Traceback" not in result.output


def test_train_then_predict_reproduces_test_predictions(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(write_config(tmp_path)), "--out", str(out), *QUICK])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output
    preds = tmp_path / "preds.csv"
    result = runner.invoke(
        app, ["predict", str(out), "--input", str(out / "test_inputs.csv"), "--output", str(preds)]
    )
    assert result.exit_code == 0, result.output
    expected = pd.read_csv(out / "test_predictions.csv").drop(columns=["target"])
    pd.testing.assert_frame_equal(pd.read_csv(preds), expected)


def test_predict_refuses_missing_columns(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert (
        runner.invoke(
            app, ["train", str(write_config(tmp_path)), "--out", str(out), *QUICK]
        ).exit_code
        == 0
    )
    broken = tmp_path / "broken.csv"
    pd.read_csv(out / "test_inputs.csv").drop(columns=["x5", "x6"]).to_csv(broken, index=False)
    result = runner.invoke(
        app, ["predict", str(out), "--input", str(broken), "--output", str(tmp_path / "p.csv")]
    )
    assert result.exit_code == 2
    assert "lacks 2 of the 64 value columns" in result.output
    assert not (tmp_path / "p.csv").exists()


def test_console_script_runs(tmp_path: Path) -> None:
    exe = shutil.which("tunelab") or pytest.skip("console script not installed")
    proc = subprocess.run(
        [exe, "check", str(write_config(tmp_path))], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "sklearn:digits" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "tunelab.cli", "train", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr


def test_images_folder_train_and_predict_on_new_files(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for label, channel in (("red", 0), ("blue", 2)):
        (root / label).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 60, (10, 12, 3), dtype=np.uint8)
            pixels[..., channel] = 200 + rng.integers(0, 50)
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    path = tmp_path / "img.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data": {"source": f"images:{root}", "image_size": [8, 8]},
                "model": {"source": "builtin:cnn2d", "width": 8, "depth": 2},
            }
        )
    )
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            str(path),
            "--out",
            str(out),
            "--set",
            "train.epochs=15",
            "--set",
            "train.lr=0.01",
        ],
    )
    assert result.exit_code == 0, result.output
    new = tmp_path / "new"
    new.mkdir()
    for name, channel in (("a_red.png", 0), ("b_blue.png", 2)):
        pixels = np.zeros((20, 20, 3), dtype=np.uint8)
        pixels[..., channel] = 230
        Image.fromarray(pixels).save(new / name)
    preds = tmp_path / "p.csv"
    result = runner.invoke(app, ["predict", str(out), "--input", str(new), "--output", str(preds)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(preds)
    assert list(table["path"].map(lambda p: Path(p).name)) == ["a_red.png", "b_blue.png"]
    assert list(table["prediction"]) == ["red", "blue"]


# --- trust, and user mistakes that used to end in a traceback -----------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small train run, copied by the tests that change it."""
    folder = tmp_path_factory.mktemp("trained")
    out = folder / "run"
    result = runner.invoke(app, ["train", str(write_config(folder)), "--out", str(out), *QUICK])
    assert result.exit_code == 0, result.output
    return out


def one_line_error(result: Any) -> str:
    """The message of a command that failed as a user mistake: exit 2, one line."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0, result.output
    return str(result.output)


def predict_args(run: Path, tmp_path: Path, *extra: str) -> list[str]:
    inputs = run / "test_inputs.csv"
    return [
        "predict",
        str(run),
        "--input",
        str(inputs),
        "--output",
        str(tmp_path / "p.csv"),
        *extra,
    ]


def test_predict_refuses_a_predictor_that_names_a_command(trained: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    marker = tmp_path / "MARKER"
    manifest_path = run / "final" / "predictor.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["model"] = {
        "kind": "py",
        "target": "subprocess:getoutput",
        "options": {"cmd": f"touch {marker}"},
        "input_shape": [1, 8, 8],
        "num_outputs": 10,
    }
    manifest_path.write_text(json.dumps(manifest))
    result = runner.invoke(app, predict_args(run, tmp_path))
    assert not marker.exists()
    message = one_line_error(result)
    assert str(manifest_path) in message and "py:subprocess:getoutput" in message
    assert "pass --trust-code" in message
    result = runner.invoke(app, predict_args(run, tmp_path, "--trust-code"))
    assert "standard library" in one_line_error(result)
    assert not marker.exists() and not (tmp_path / "p.csv").exists()


def test_trust_code_lets_a_py_predictor_and_checkpoint_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cli_nets.py").write_text(
        "from torch import nn\n\n"
        "def net(num_outputs, input_shape):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, num_outputs))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = write_config(tmp_path, model={"source": "py:cli_nets:net"})
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(config), "--out", str(out), *QUICK])
    assert result.exit_code == 0, result.output  # the config's own py: needs no flag
    assert "--trust-code" in one_line_error(runner.invoke(app, predict_args(out, tmp_path)))
    result = runner.invoke(app, predict_args(out, tmp_path, "--trust-code"))
    assert result.exit_code == 0, result.output
    # the run's weights as a checkpoint: their metadata names cli_nets:net
    checkpoint = write_config(tmp_path, model={"source": f"file:{out}/final/model.safetensors"})
    again = tmp_path / "again"
    result = runner.invoke(app, ["train", str(checkpoint), "--out", str(again), *QUICK])
    message = one_line_error(result)
    assert "tunelab.spec metadata names the Python function py:cli_nets:net" in message
    assert not again.exists()  # refused before the run directory is made
    trusted = ["train", str(checkpoint), "--out", str(again), "--trust-code", *QUICK]
    result = runner.invoke(app, trusted)
    assert result.exit_code == 0, result.output
    assert "loaded 2/2 tensors" in json.loads((again / "metrics.json").read_text())["notes"][0]


def test_train_refuses_a_checkpoint_that_names_a_command(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.safetensors"
    spec = {"kind": "py", "target": "subprocess:getoutput", "options": {"cmd": f"touch {marker}"}}
    save_file({"w": torch.zeros(2)}, str(path), metadata={SPEC_METADATA_KEY: json.dumps(spec)})
    config = write_config(tmp_path, model={"source": f"file:{path}"})
    for command in (["train"], ["train", "--trust-code"], ["run"]):
        out = tmp_path / "r"
        result = runner.invoke(app, [*command, str(config), "--out", str(out), *QUICK])
        assert not marker.exists()
        message = one_line_error(result)
        assert str(path) in message and "py:subprocess:getoutput" in message
        assert not out.exists()


def test_predict_to_a_missing_folder_fails_before_predicting(trained: Path, tmp_path: Path) -> None:
    output = tmp_path / "nodir" / "x.csv"
    inputs = trained / "test_inputs.csv"
    result = runner.invoke(
        app, ["predict", str(trained), "--input", str(inputs), "--output", str(output)]
    )
    message = one_line_error(result)
    assert f"the folder {str(output.parent)!r} does not exist" in message


def test_predict_on_a_header_only_csv(trained: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    pd.read_csv(trained / "test_inputs.csv").iloc[:0].to_csv(empty, index=False)
    result = runner.invoke(
        app, ["predict", str(trained), "--input", str(empty), "--output", str(tmp_path / "p.csv")]
    )
    assert f"input file {empty} has no rows (only the header: 64 columns)" in one_line_error(result)


def test_predict_on_a_damaged_run(trained: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    weights = run / "final" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])
    message = one_line_error(runner.invoke(app, predict_args(run, tmp_path)))
    assert f"{weights} is not a readable safetensors file" in message
    (run / "final" / "predictor.json").write_text("{")
    assert "predictor.json is not valid JSON" in one_line_error(
        runner.invoke(app, predict_args(run, tmp_path))
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_train_on_cuda_without_cuda_is_a_config_error(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["train", str(write_config(tmp_path)), "--out", str(out), "--set", "train.device=cuda"]
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "train.device: 'cuda', but" in result.output
    assert "set train.device: auto" in result.output
    assert not out.exists()


def test_params_file_holding_a_list(tmp_path: Path) -> None:
    params = tmp_path / "params.json"
    params.write_text("[0.01, 2]")
    result = runner.invoke(app, ["train", str(write_config(tmp_path)), "--params", str(params)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"--params: {params} holds a JSON list, not an object" in result.output


def test_worker_on_a_train_run_leaves_it_alone(trained: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = sorted(p.name for p in run.iterdir())
    message = one_line_error(runner.invoke(app, ["worker", str(run)]))
    assert "holds a 'tunelab train' run, not a study" in message
    assert "tunelab run CONFIG" in message
    assert sorted(p.name for p in run.iterdir()) == before


def test_predict_imports_neither_scikit_learn_nor_optuna(tmp_path: Path) -> None:
    """tunelab predict starts in the time torch takes to import: scikit-learn with SciPy
    (about a second here, more under load) and Optuna are for training and studies."""
    from tests.conftest import make_config
    from tunelab.flows.train import train

    run = train(make_config(), out=tmp_path / "run").run_dir
    script = (
        "import sys\n"
        "from tunelab.cli import main\n"
        f"sys.argv = ['tunelab', 'predict', {str(run)!r}, '--input', "
        f"{str(run / 'test_inputs.csv')!r}, '--output', {str(tmp_path / 'p.csv')!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print(sorted(m for m in ('sklearn', 'scipy', 'optuna') if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert len(pd.read_csv(tmp_path / "p.csv")) == len(pd.read_csv(run / "test_inputs.csv"))
