"""Temperature scaling: the math, the fit, the auto rule, and the temperature surviving
save, load, predict and export for each predictor kind; a damaged one is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import make_config
from tunelab.errors import FatalError
from tunelab.evaluation import calibration as flow
from tunelab.flows.train import train
from tunelab.results.calibration import fit_temperature, temper
from tunelab.results.predictor import load_predictor


def test_temper_is_softmax_of_the_logits_over_t_and_keeps_the_predicted_class() -> None:
    logits = torch.randn(50, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    probabilities = torch.softmax(logits, dim=1).numpy()
    tempered = temper(probabilities, 2.5)
    assert np.allclose(tempered, torch.softmax(logits / 2.5, dim=1).numpy())
    assert np.allclose(tempered.sum(axis=1), 1.0)
    assert (tempered.argmax(1) == probabilities.argmax(1)).all()
    assert temper(probabilities, 1.0) is probabilities


def test_the_fit_recovers_the_temperature_the_labels_were_drawn_at() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(4000, 3))
    truth_probabilities = torch.softmax(torch.from_numpy(logits) / 3.0, dim=1).numpy()
    codes = np.array([rng.choice(3, p=p) for p in truth_probabilities])
    overconfident = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    assert fit_temperature(overconfident, codes) == pytest.approx(3.0, rel=0.1)


class _Stub:
    task, temperature = "multiclass", 1.0


def _held_out() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=5.0, size=(300, 3))
    codes = np.array([rng.choice(3, p=p) for p in torch.softmax(torch.from_numpy(logits) / 2, 1)])
    return torch.softmax(torch.from_numpy(logits), dim=1).numpy(), codes


def test_auto_keeps_the_temperature_only_when_it_lowers_the_held_out_log_loss(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    probabilities, codes = _held_out()
    stub: Any = _Stub()
    summary = flow.calibrate("auto", stub, probabilities, codes, fitted_on="rows")
    assert summary["kept"] and stub.temperature == summary["temperature"] > 1.5
    after, before = summary["held_out"]["after"], summary["held_out"]["before"]
    assert after["log_loss"] < before["log_loss"] and after["ece"] < before["ece"]

    monkeypatch.setattr(flow, "fit_temperature", lambda p, c: 0.05)  # a worse one
    refused: Any = _Stub()
    summary = flow.calibrate("auto", refused, probabilities, codes, fitted_on="rows")
    assert not summary["kept"] and refused.temperature == 1.0 and "not kept" in summary["reason"]
    forced: Any = _Stub()
    assert flow.calibrate("temperature", forced, probabilities, codes, fitted_on="rows")["kept"]
    assert forced.temperature == 0.05
    off: Any = _Stub()
    assert flow.calibrate("none", off, probabilities, codes, fitted_on="rows")["kept"] is False


def _trained(tmp_path: Path, **sections: Any) -> Path:
    cfg = make_config(calibration="temperature", train={"epochs": 8, "threads": 1}, **sections)
    return train(cfg, out=tmp_path / "run").run_dir


@pytest.mark.parametrize("model", ["builtin:mlp", "sklearn:hgb"])
def test_the_temperature_survives_save_load_and_predict(tmp_path: Path, model: str) -> None:
    run = _trained(tmp_path, model={"source": model})
    metrics = json.loads((run / "metrics.json").read_text())
    calibration = metrics["calibration"]
    stored = json.loads((run / "final" / "predictor.json").read_text())["temperature"]
    assert stored == calibration["temperature"] != 1.0
    assert set(calibration["test"]) == {"before", "after"} and calibration["reliability"]
    predictor = load_predictor(run)
    assert predictor.temperature == stored
    rows = pd.read_csv(run / "test_inputs.csv")
    calibrated = predictor.predict_proba(rows)
    assert np.allclose(calibrated.sum(axis=1), 1.0)
    predictor.temperature = 1.0
    assert np.allclose(calibrated, temper(predictor.predict_proba(rows), stored))
    assert metrics["test"]["log_loss"] == pytest.approx(calibration["test"]["after"]["log_loss"])


def test_export_divides_the_logits_by_the_temperature(tmp_path: Path) -> None:
    from tunelab.export import export_predictor

    run = _trained(tmp_path)
    assert load_predictor(run).temperature != 1.0
    # the export's own check compares the file with the calibrated predict_proba
    exported = export_predictor(run, format="torchscript")
    assert exported.rows_checked > 0 and exported.max_abs_difference is not None
    assert exported.max_abs_difference < exported.tolerance


@pytest.mark.parametrize("value", [0.0, -2.0, "2", True, 1e6, None])
def test_a_damaged_temperature_is_refused(tmp_path: Path, value: Any) -> None:
    run = _trained(tmp_path)
    manifest_path = run / "final" / "predictor.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["temperature"] = value
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(FatalError, match="temperature"):
        load_predictor(run)
