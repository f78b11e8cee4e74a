from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from tunelab.cli import app

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
