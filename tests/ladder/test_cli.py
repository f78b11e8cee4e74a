"""``tunelab ladder`` and the ladder of ``tunelab run``, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tunelab.cli import app

runner = CliRunner()

CONFIG: dict[str, Any] = {
    "name": "ladder-cli",
    "data": {"source": "sklearn:iris"},
    "model": {"source": "builtin:mlp", "width": 16, "depth": 1},
    "train": {"epochs": 3, "batch_size": 32, "threads": 1, "device": "cpu"},
    "ladder": {"folds": 3, "repeats": 1, "rungs": ["tuned", "regularization", "batch_norm"]},
}


def write_config(tmp_path: Path, **sections: Any) -> Path:
    path = tmp_path / "ladder.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, **sections}))
    return path


def folds_in(run_dir: Path) -> int:
    doc = json.loads((run_dir / "ladder.json").read_text())
    return sum(len(variant["folds"]) for variant in doc["variants"].values())


def test_ladder_prints_the_table_and_resumes_without_training(tmp_path: Path) -> None:
    config, out = write_config(tmp_path), tmp_path / "run"
    result = runner.invoke(app, ["ladder", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "ablation ladder" in result.output and "leave one out" in result.output
    assert "+ regularization" in result.output and "no study" in result.output
    # baseline, two rungs (the second is the final recipe), the final without each of them
    assert folds_in(out) == 4 * 3
    again = runner.invoke(app, ["ladder", str(config), "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "12 folds already measured in ladder.json, 0 to train" in again.output


def test_params_give_the_tuned_rung(tmp_path: Path) -> None:
    params = tmp_path / "best_params.json"
    params.write_text(json.dumps({"train.lr": 0.01}))
    config = write_config(tmp_path, ladder={**CONFIG["ladder"], "leave_one_out": False})
    out = tmp_path / "run"
    result = runner.invoke(app, ["ladder", str(config), "--out", str(out), "--params", str(params)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "ladder.json").read_text())
    tuned = doc["ladder"][1]
    assert tuned["name"] == "tuned" and tuned["status"] == "measured"
    assert tuned["changes"] == {"train.lr": 0.01}
    assert doc["params"] == {"train.lr": 0.01} and doc["params_source"] == str(params)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "ladder.rungs=[regularisation]"], "Did you mean 'regularization'?"),
        (["--set", "ladder.folds=1"], "ladder.folds: got 1"),
        (["--params", "missing.json"], "--params: 'missing.json' does not exist"),
        (["--set", "ladder.folds=60"], "ladder.folds"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["ladder", str(write_config(tmp_path)), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_run_refuses_a_misspelt_rung_before_the_study(tmp_path: Path) -> None:
    config = write_config(tmp_path, ladder={"enabled": True, "rungs": ["augmentaton"]})
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(config), "--out", str(out)])
    assert result.exit_code == 2
    assert "Did you mean 'augmentation'?" in result.output
    assert not out.exists()  # no trial ran


def test_too_many_folds_for_a_class_names_the_ladder_field(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ladder", str(write_config(tmp_path)), "--set", "ladder.folds=45"])
    assert result.exit_code == 2
    assert "ladder.folds: class code(s)" in result.output and "lower the number" in result.output


def test_run_measures_the_ladder_of_the_best_recipe(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        search={
            "n_trials": 2,
            "sampler": "random",
            "space": {"train.lr": {"type": "float", "low": 0.005, "high": 0.05, "log": True}},
        },
        ladder={**CONFIG["ladder"], "enabled": True, "leave_one_out": False},
    )
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "ablation ladder" in result.output
    doc = json.loads((out / "ladder.json").read_text())
    best = json.loads((out / "best_params.json").read_text())
    assert doc["params"] == best
    assert doc["ladder"][1]["status"] == "measured"  # the study's tuned learning rate
    assert doc["ladder"][1]["changes"] == {"train.lr": best["train.lr"]}
    # tunelab ladder in the same run directory finds the study's parameters and the folds
    again = runner.invoke(app, ["ladder", str(config), "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "0 to train" in again.output


@pytest.mark.slow
def test_a_killed_ladder_resumes_from_its_last_saved_fold(tmp_path: Path) -> None:
    config = write_config(tmp_path, train={**CONFIG["train"], "epochs": 20})
    out = tmp_path / "run"
    command = [sys.executable, "-m", "tunelab.cli", "ladder", str(config), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
            (out / "ladder.json").is_file() and folds_in(out) >= 2
        ):
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    kept = folds_in(out)
    assert 2 <= kept < 12, "the ladder finished before it was killed; make it longer"
    result = runner.invoke(app, ["ladder", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{kept} folds already measured in ladder.json, {12 - kept} to train" in result.output
    assert folds_in(out) == 12


def test_the_ladder_refreshes_the_runs_report(tmp_path: Path) -> None:
    """The report of a run measured by `tunelab ladder` afterwards shows the ladder, with no
    `tunelab report` in between."""
    config, out = (
        write_config(tmp_path, ladder={**CONFIG["ladder"], "leave_one_out": False}),
        tmp_path / "run",
    )
    trained = runner.invoke(app, ["train", str(config), "--out", str(out), "--quiet"])
    assert trained.exit_code == 0, trained.output
    assert "no ladder in this run" in (out / "report.html").read_text()
    result = runner.invoke(app, ["ladder", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert "no ladder in this run" not in page and "+ regularization" in page
    assert "clipped to accuracy&#x27;s range [0, 1]" in page
    assert f"report: {out / 'report.html'}" in result.output
