"""The resolved config tells the truth: values that do not apply are marked, in `tunelab
check`, `config.yaml` and the report, and the config still loads as it is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import make_config
from tunelab.cli import app
from tunelab.config import config_from_dict, load_config
from tunelab.resolved import Facts, annotated_yaml, notes

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
SMALL = {"data": {"source": "sklearn:iris"}, "model": {"source": "builtin:mlp"}}


def line_of(text: str, field: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"  {field}:"))


def test_check_shows_the_checkpoints_architecture_and_the_digits_real_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    result = runner.invoke(app, ["check", "examples/quickstart.yaml"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "not used: the checkpoint's width is 32" in line_of(out, "width")
    assert "not used: the checkpoint's depth is 3" in line_of(out, "depth")
    assert "from the checkpoint: builtin:cnn2d (width 32, depth 3)" in line_of(out, "architecture")
    assert "the arrays are 8x8" in line_of(out, "image_size")
    assert "1 channel (grayscale)" in line_of(out, "image_mode")
    # comments only: what check prints is the same config
    assert config_from_dict(yaml.safe_load(out)) == load_config("examples/quickstart.yaml")


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["data.source=csv:missing.csv", "data.target=y"], "csv:missing.csv does not exist"),
        (["data.test_source=npz:gone.npz"], "npz:gone.npz does not exist"),
        (["model.source=file:nowhere.safetensors"], "'nowhere.safetensors' does not exist"),
    ],
)
def test_check_refuses_a_file_that_does_not_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: list[str], named: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(SMALL))
    args = ["check", "c.yaml", *[part for o in overrides for part in ("--set", o)]]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and named in result.output, result.output
    assert "Traceback" not in result.output


def test_check_reads_a_tables_header_and_an_archives_shapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    pd.DataFrame({"a": [1, 2, 3], "label": ["x", "y", "x"]}).to_csv("t.csv", index=False)
    np.savez("img.npz", X=np.zeros((4, 3, 5, 7), np.float32), y=np.arange(4))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**SMALL, "data": {"source": "csv:t.csv"}}))
    wrong = runner.invoke(app, ["check", "c.yaml", "--set", "data.target=lable"])
    assert wrong.exit_code == 2 and "t.csv" in wrong.output and "'label'" in wrong.output
    right = runner.invoke(app, ["check", "c.yaml", "--set", "data.target=label"])
    assert right.exit_code == 0 and "tabular data, not images" in right.stdout
    arrays = runner.invoke(app, ["check", "c.yaml", "--set", "data.source=npz:img.npz"])
    assert arrays.exit_code == 0, arrays.output
    assert "the arrays are 5x7" in line_of(arrays.stdout, "image_size")
    assert "3 channels (rgb)" in line_of(arrays.stdout, "image_mode")
    (tmp_path / "bad.parquet").write_text("not parquet")
    bad = runner.invoke(app, ["check", "c.yaml", "--set", "data.source=parquet:bad.parquet"])
    assert bad.exit_code == 2 and "bad.parquet: cannot read it as parquet" in bad.output


def test_a_searched_field_and_what_depends_on_it_get_no_note() -> None:
    space = {
        "train.optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]},
        "model.width": {"type": "int", "low": 8, "high": 32},
    }
    cfg = make_config(search={"space": space})
    found = notes(cfg, Facts(modality="tabular"))
    assert "train.momentum" not in found and "train.nesterov" not in found
    assert "model.width" not in found and "data.image_size" in found


def test_config_yaml_and_the_report_carry_the_notes_and_the_run_resumes(tmp_path: Path) -> None:
    from tunelab.flows.train import train

    cfg = make_config(model={"source": "builtin:mlp", "width": 16, "depth": 1})
    summary = train(cfg, out=tmp_path / "run")
    written = (summary.run_dir / "config.yaml").read_text()
    assert written == annotated_yaml(cfg, Facts(modality="tabular"))
    assert "# not used: tabular data, not images" in line_of(written, "image_mode")
    assert load_config(summary.run_dir / "config.yaml") == cfg
    assert "not used: tabular data, not images" in (summary.run_dir / "report.html").read_text()
