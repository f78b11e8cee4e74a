"""``tunelab export --format onnx`` of LightGBM and XGBoost predictors (onnxmltools), checked
against the predictor; refused with the reason where no converter reproduces it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import make_config
from tunelab.cli import app
from tunelab.errors import FatalError
from tunelab.export import export_predictor, run_exported
from tunelab.flows.train import train
from tunelab.results.predictor import load_predictor

pytest.importorskip("lightgbm")
pytest.importorskip("xgboost")
pytest.importorskip("onnxmltools")
pytest.importorskip("onnxruntime")


def trained(tmp_path: Path, source: str, data: str = "sklearn:breast_cancer") -> Path:
    out = tmp_path / source.replace(":", "-")
    cfg = make_config(data={"source": data}, model={"source": source}, train={"epochs": 50})
    train(cfg, out=out)
    return out


@pytest.mark.parametrize(
    ("source", "data"),
    [
        ("lightgbm:gbdt", "sklearn:breast_cancer"),
        ("xgboost:gbtree", "sklearn:wine"),
        ("lightgbm:gbdt", "sklearn:diabetes"),
        ("xgboost:gbtree", "sklearn:diabetes"),
    ],
)
def test_onnx_export_predicts_as_the_predictor(tmp_path: Path, source: str, data: str) -> None:
    out = trained(tmp_path, source, data)
    exported = export_predictor(out, format="onnx")
    assert exported.rows_checked > 0
    assert exported.max_abs_difference is not None
    assert exported.max_abs_difference <= exported.tolerance
    description = json.loads(exported.inputs_path.read_text())
    assert list(description["inputs"]) == ["numeric"]
    # on rows of its own: missing cells included
    frame = pd.read_csv(out / "test_inputs.csv")
    frame.iloc[::3, 0] = np.nan
    predictor = load_predictor(out)
    numbers = frame[description["inputs"]["numeric"]["columns"]].to_numpy(np.float32)
    outputs = run_exported(exported.path, "onnx", {"numeric": numbers})
    regression = predictor.task == "regression"
    expected = predictor.predict(frame) if regression else predictor.predict_proba(frame)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(outputs.reshape(expected.shape), expected, atol=1e-5 * scale)


def test_a_table_with_categories_is_refused_with_the_reason(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=200), "colour": rng.choice(["red", "blue"], 200)})
    frame["label"] = (frame["x"] + (frame["colour"] == "red") > 0.5).astype(int)
    frame.to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "run"
    cfg = make_config(
        data={"source": f"csv:{tmp_path / 't.csv'}", "target": "label"},
        model={"source": "lightgbm:gbdt"},
        train={"epochs": 20},
    )
    train(cfg, out=out)
    with pytest.raises(FatalError, match="categorical splits"):
        export_predictor(out, format="onnx")
    result = CliRunner().invoke(app, ["export", str(out), "--format", "torchscript"])
    assert result.exit_code == 2 and "not a torch module" in result.output
    assert not (out / "model.onnx").exists() and not (out / "model.pt").exists()
