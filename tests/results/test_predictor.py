from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_config
from tunelab.errors import DataError, FatalError
from tunelab.pipeline import train
from tunelab.results.predictor import load_predictor


@pytest.mark.parametrize("source", ["sklearn:digits", "sklearn:breast_cancer", "sklearn:diabetes"])
def test_predictor_round_trip_reproduces_test_predictions(tmp_path: Path, source: str) -> None:
    cfg = make_config(data={"source": source}, train={"epochs": 2})
    summary = train(cfg, out=tmp_path / "run")
    run = summary.run_dir
    assert {p.name for p in run.iterdir()} >= {
        "config.yaml",
        "history.json",
        "metrics.json",
        "test_inputs.csv",
        "test_predictions.csv",
        "final",
    }
    assert not list(run.rglob("*.pt")) and not list(run.rglob("*.pkl"))
    predictor = load_predictor(run)
    inputs = pd.read_csv(run / "test_inputs.csv")
    saved = pd.read_csv(run / "test_predictions.csv")
    if predictor.task == "regression":
        np.testing.assert_array_equal(predictor.predict(inputs), saved["prediction"].to_numpy())
    else:
        assert list(predictor.predict(inputs)) == list(saved["prediction"])
        proba = predictor.predict_proba(inputs)
        np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) >= {"validation", "test", "test_interval", "stop_reason"}
    interval = metrics["test_interval"]
    assert interval["low"] <= metrics["test"][metrics["metric"]] <= interval["high"]


def test_predictor_refuses_wrong_inputs(tmp_path: Path) -> None:
    summary = train(make_config(data={"source": "sklearn:wine"}), out=tmp_path / "run")
    predictor = load_predictor(summary.run_dir / "final")
    inputs = pd.read_csv(summary.run_dir / "test_inputs.csv")
    with pytest.raises(DataError, match="alcohol"):
        predictor.predict(inputs.drop(columns=["alcohol"]))
    with pytest.raises(FatalError, match="no predictor"):
        load_predictor(tmp_path)


def test_existing_run_directory_is_not_overwritten_silently(tmp_path: Path) -> None:
    cfg = make_config(train={"epochs": 1})
    train(cfg, out=tmp_path / "run")
    with pytest.raises(FatalError, match="--overwrite"):
        train(cfg, out=tmp_path / "run")
    train(cfg, out=tmp_path / "run", overwrite=True)
