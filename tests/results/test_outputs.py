"""Outputs never land on a run's files or on the command's input; an existing file elsewhere
is replaced only with --overwrite."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.errors import FatalError
from tunelab.results.outputs import check_output
from tunelab.results.rundir import RunDir

runner = CliRunner()
QUICK = ["--set", "train.epochs=1", "--set", "train.threads=1", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("outputs")
    config = folder / "iris.yaml"
    config.write_text(
        "name: iris\ndata: {source: sklearn:iris}\nmodel: {source: builtin:mlp, width: 8}\n"
    )
    result = runner.invoke(app, ["train", str(config), "--out", str(folder / "run"), *QUICK])
    assert result.exit_code == 0, result.output
    return folder / "run"


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> RunDir:
    """A fresh copy of the trained run for each test (a failing test may damage it)."""
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return RunDir(copy)


def one_line(text: str) -> str:
    return " ".join(text.split())


def snapshot(folder: Path) -> dict[str, bytes]:
    """The run's files (the lock's content changes with each process that takes it)."""
    files = (p for p in folder.rglob("*") if p.is_file() and p.name != "run.lock")
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


def predict(run: RunDir, inputs: Path, output: Path, *extra: str) -> list[str]:
    return ["predict", str(run.path), "--input", str(inputs), "--output", str(output), *extra]


@pytest.mark.parametrize(
    "target",
    ["final/predictor.json", "final/model.safetensors", "final/new.csv", "config.yaml",
     "metrics.json", "test_predictions.csv", "run.lock"],
)  # fmt: skip
def test_predict_never_writes_onto_the_runs_files(run: RunDir, target: str) -> None:
    before = snapshot(run.path)
    result = runner.invoke(app, predict(run, run.test_inputs, run.path / target))
    message = one_line(result.output)
    assert result.exit_code == 2, message
    assert f"--output {run.path / target}" in message and "tunelab's" in message
    assert "Traceback" not in message
    assert snapshot(run.path) == before


def test_predict_refuses_the_run_through_its_final_folder_and_a_symlink(
    run: RunDir, tmp_path: Path
) -> None:
    link = tmp_path / "innocent.csv"
    link.symlink_to(run.final / "predictor.json")
    before = snapshot(run.path)
    for output in (link, run.final / "predictor.json"):
        result = runner.invoke(app, predict(RunDir(run.final), run.test_inputs, output))
        assert result.exit_code == 2, result.output
    assert snapshot(run.path) == before


def test_report_never_writes_onto_the_runs_config(run: RunDir) -> None:
    before = snapshot(run.path)
    result = runner.invoke(app, ["report", str(run.path), "--output", str(run.config)])
    assert result.exit_code == 2, result.output
    assert "config.yaml" in one_line(result.output)
    assert snapshot(run.path) == before


def test_report_may_name_its_own_default_file(run: RunDir) -> None:
    result = runner.invoke(app, ["report", str(run.path), "--output", str(run.report)])
    assert result.exit_code == 0, result.output


def test_predict_output_equal_to_input_is_refused(run: RunDir, tmp_path: Path) -> None:
    table = tmp_path / "rows.csv"
    shutil.copy(run.test_inputs, table)
    before = table.read_bytes()
    result = runner.invoke(app, predict(run, table, table, "--overwrite"))
    message = one_line(result.output)
    assert result.exit_code == 2, message
    assert "the command's input" in message
    assert table.read_bytes() == before


def test_an_existing_file_elsewhere_needs_overwrite(run: RunDir, tmp_path: Path) -> None:
    output = tmp_path / "preds.csv"
    output.write_text("yesterday's predictions\n")
    result = runner.invoke(app, predict(run, run.test_inputs, output))
    assert result.exit_code == 2, result.output
    assert "--overwrite" in one_line(result.output)
    assert output.read_text() == "yesterday's predictions\n"
    result = runner.invoke(app, predict(run, run.test_inputs, output, "--overwrite"))
    assert result.exit_code == 0, result.output
    assert output.read_text().startswith("target") or "prediction" in output.read_text()
    # a file of the user's inside the run directory is fine (the README's example)
    mine = run.path / "preds.csv"
    assert runner.invoke(app, predict(run, run.test_inputs, mine)).exit_code == 0


def test_report_to_an_existing_file_elsewhere_needs_overwrite(run: RunDir, tmp_path: Path) -> None:
    output = tmp_path / "mine.html"
    output.write_text("<p>mine</p>")
    result = runner.invoke(app, ["report", str(run.path), "--output", str(output)])
    assert result.exit_code == 2 and output.read_text() == "<p>mine</p>"
    result = runner.invoke(app, ["report", str(run.path), "--output", str(output), "--overwrite"])
    assert result.exit_code == 0, result.output


def test_lr_find_never_replaces_a_runs_files(run: RunDir, tmp_path: Path) -> None:
    config = tmp_path / "iris.yaml"
    config.write_text(
        "name: iris\ndata: {source: sklearn:iris}\nmodel: {source: builtin:mlp, width: 8}\n"
        "train: {threads: 1}\n"
    )
    before = snapshot(run.path)
    result = runner.invoke(app, ["lr-find", str(config), "--out", str(run.path), "--steps", "5"])
    message = one_line(result.output)
    assert result.exit_code == 2, message
    assert "another run's results" in message and "final" in message
    assert snapshot(run.path) == before
    # its own folder is written again and again
    own = tmp_path / "sweep"
    for _ in range(2):
        result = runner.invoke(app, ["lr-find", str(config), "--out", str(own), "--steps", "5"])
        assert result.exit_code == 0, result.output
    assert (own / "lr_find.json").is_file()


def test_check_output_names_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FatalError, match="is a folder"):
        check_output(tmp_path, overwrite=True)
    with pytest.raises(FatalError, match="does not exist"):
        check_output(tmp_path / "no" / "x.csv", overwrite=True)
    assert check_output(tmp_path / "new.csv") == tmp_path / "new.csv"
