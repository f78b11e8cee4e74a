"""``tunelab export``: the exported file takes raw inputs and gives the predictor's outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import tunelab
from tests.conftest import make_config
from tunelab.cli import app
from tunelab.errors import FatalError, MissingDependency
from tunelab.export import TOLERANCE, export_predictor, feed, run_exported
from tunelab.flows.train import train

runner = CliRunner()


def _table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, rows),
            "income": rng.lognormal(10, 1, rows),
            "city": rng.choice(["oslo", "lima", "pune"], rows),
            "plan": rng.choice([1, 2, 3, 4], rows),
        }
    )
    frame.loc[::7, "age"] = np.nan  # imputed with the training median
    frame.loc[::11, "city"] = None  # imputed with the most frequent city
    frame["y"] = np.where((frame["city"] == "oslo") | (frame["age"] > 45), "yes", "no")
    return frame


@pytest.fixture(scope="module")
def table_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("table")
    _table(240, 0).to_csv(folder / "people.csv", index=False)
    cfg = make_config(
        data={"source": f"csv:{folder / 'people.csv'}", "target": "y", "categorical": ["plan"]},
        model={"source": "builtin:mlp", "width": 16, "depth": 2},
    )
    return train(cfg, out=folder / "run").run_dir


def _unusual_rows() -> pd.DataFrame:
    """Rows the training data never had: missing numbers and categories, an unseen city."""
    frame = _table(12, 1).drop(columns="y")
    frame.loc[0, "city"] = "paris"
    frame.loc[1, ["age", "income"]] = np.nan
    frame.loc[2, "city"] = None
    frame.loc[3, "plan"] = 9
    return frame


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
def test_a_table_model_takes_raw_columns_and_gives_the_predictors_probabilities(
    table_run: Path, format: Any
) -> None:
    exported = export_predictor(table_run, format=format, overwrite=True)
    assert exported.path == table_run / ("model.onnx" if format == "onnx" else "model.pt")
    assert exported.rows_checked == 48
    assert exported.max_abs_difference is not None
    assert exported.max_abs_difference <= TOLERANCE
    predictor = tunelab.load_predictor(table_run)
    rows = _unusual_rows()
    outputs = run_exported(exported.path, format, feed(predictor, rows))
    np.testing.assert_allclose(outputs, predictor.predict_proba(rows), atol=TOLERANCE)


def test_codes_computed_from_the_written_vocabulary_give_the_same_outputs(
    table_run: Path,
) -> None:
    exported = export_predictor(table_run, format="onnx", overwrite=True)
    described = json.loads(exported.inputs_path.read_text())
    assert described["output"] == {
        "name": "probabilities",
        "dtype": "float32",
        "columns": ["no", "yes"],
    }
    numeric = described["inputs"]["numeric"]["columns"]
    categorical = described["inputs"]["categorical"]["columns"]
    assert [c["name"] for c in categorical] == ["city", "plan"]
    rows = _unusual_rows()
    # what a user of another language does with the JSON: look each cell up in its list
    codes = np.array(
        [
            [
                column["missing"]
                if pd.isna(value)
                else (column["categories"].index(value) if value in column["categories"] else -1)
                for column in categorical
                for value in [row[column["name"]]]
            ]
            for _, row in rows.iterrows()
        ],
        dtype=np.int64,
    )
    inputs = {"numeric": rows[numeric].to_numpy(np.float32), "categorical": codes}
    outputs = run_exported(exported.path, "onnx", inputs)
    predictor = tunelab.load_predictor(table_run)
    np.testing.assert_allclose(outputs, predictor.predict_proba(rows), atol=TOLERANCE)


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
def test_a_regression_model_gives_values_in_the_targets_units(tmp_path: Path, format: Any) -> None:
    cfg = make_config(data={"source": "sklearn:diabetes"})
    run = train(cfg, out=tmp_path / "run").run_dir
    exported = export_predictor(run, format=format, output=tmp_path / f"diabetes.{format}")
    assert exported.inputs_path == tmp_path / f"diabetes.{format}.json"
    assert exported.max_abs_difference is not None
    values = pd.read_csv(run / "test_predictions.csv")["prediction"].to_numpy()
    assert values.mean() > 50  # the target's units (25..346), not standardized ones
    assert exported.max_abs_difference <= TOLERANCE * max(1.0, float(np.abs(values).max()))


def test_an_image_model_is_standardized_inside(tmp_path: Path) -> None:
    cfg = make_config(
        data={"source": "sklearn:digits"},
        model={"source": "builtin:cnn2d", "width": 8, "depth": 1},
        train={"epochs": 1},
    )
    run = train(cfg, out=tmp_path / "run").run_dir
    exported = export_predictor(run, format="onnx")
    assert exported.max_abs_difference is not None
    assert exported.max_abs_difference <= TOLERANCE
    described = json.loads(exported.inputs_path.read_text())
    assert described["inputs"] == {"inputs": {"dtype": "float32", "shape": [None, 1, 8, 8]}}


def test_boosted_trees_are_refused_with_exit_2(tmp_path: Path) -> None:
    cfg = make_config(model={"source": "sklearn:hgb"}, train={"epochs": 5})
    run = train(cfg, out=tmp_path / "run").run_dir
    with pytest.raises(FatalError, match=r"export supports neural predictors; .* trees"):
        export_predictor(run, format="torchscript")
    result = runner.invoke(app, ["export", str(run), "--format", "onnx"])
    assert result.exit_code == 2
    assert "export supports neural predictors" in result.output
    assert "Traceback" not in result.output


def test_cli_writes_the_file_and_says_how_close_it_is(table_run: Path, tmp_path: Path) -> None:
    output = tmp_path / "people.pt"
    result = runner.invoke(
        app, ["export", str(table_run), "--format", "torchscript", "--output", str(output)]
    )
    assert result.exit_code == 0, result.output
    assert output.is_file() and Path(f"{output}.json").is_file()
    assert "checked on 48 test rows" in result.output
    bad = runner.invoke(app, ["export", str(table_run), "--format", "tflite"])
    assert bad.exit_code == 2
    assert "onnx, torchscript" in bad.output


def test_without_onnxruntime_the_message_gives_the_pip_command(
    table_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    hint = r"pip install -c constraints.txt 'tunelab\[export\]'"
    with pytest.raises(MissingDependency, match=hint):
        export_predictor(table_run, format="onnx")
    result = runner.invoke(app, ["export", str(table_run), "--format", "onnx"])
    assert result.exit_code == 2
    assert "tunelab[export]" in result.output


# --- never over what tunelab did not make (issue 24) -------------------------------------


def _export(*args: str) -> Any:
    return runner.invoke(app, ["export", *args])


def test_an_existing_file_of_the_users_is_never_replaced(table_run: Path, tmp_path: Path) -> None:
    mine = tmp_path / "userfile.txt"
    mine.write_text("my notes")
    for extra in ([], ["--overwrite"]):
        result = _export(str(table_run), "--format", "onnx", "--output", str(mine), *extra)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert mine.read_text() == "my notes"
        assert not Path(f"{mine}.json").exists()
    assert "already exists; pass --overwrite" in _export(
        str(table_run), "--format", "onnx", "--output", str(mine)
    ).output.replace("\n", " ")


def test_a_users_file_beside_the_target_is_never_replaced(table_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    sidecar = Path(f"{target}.json")
    sidecar.write_text('{"mine": true}\n')
    for extra in ([], ["--overwrite"]):
        result = _export(str(table_run), "--format", "onnx", "--output", str(target), *extra)
        assert result.exit_code == 2, result.output
        assert sidecar.read_text() == '{"mine": true}\n'
        assert not target.exists()


@pytest.mark.parametrize(
    "name", ["final/model.safetensors", "final/predictor.json", "final/new.onnx", "config.yaml"]
)
def test_the_runs_own_files_are_never_written_even_with_overwrite(
    table_run: Path, name: str
) -> None:
    """--output RUN/final/model.safetensors destroyed the weights, and predict then failed."""
    target = table_run / name
    before = target.read_bytes() if target.exists() else None
    for extra in ([], ["--overwrite"]):
        result = _export(str(table_run), "--format", "onnx", "--output", str(target), *extra)
        assert result.exit_code == 2, result.output
        assert "never writes over" in result.output.replace("\n", " ")
        assert (target.read_bytes() if target.exists() else None) == before
    assert tunelab.load_predictor(table_run).predict_proba(_unusual_rows()).shape == (12, 2)


def test_an_earlier_export_is_replaced_only_with_overwrite(tmp_path: Path) -> None:
    run = train(make_config(train={"epochs": 1}), out=tmp_path / "run").run_dir
    assert _export(str(run), "--format", "torchscript").exit_code == 0
    again = _export(str(run), "--format", "torchscript")
    assert again.exit_code == 2 and "--overwrite" in again.output
    first = (run / "model.pt").stat().st_mtime_ns
    replaced = _export(str(run), "--format", "torchscript", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert (run / "model.pt").stat().st_mtime_ns >= first
    assert json.loads((run / "model.pt.json").read_text())["file"] == "model.pt"
    assert not list(run.glob(".*.partial"))
