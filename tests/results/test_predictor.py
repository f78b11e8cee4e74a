from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import make_config
from tunelab.errors import DataError, FatalError
from tunelab.flows.train import train
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


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(
        make_config(train={"epochs": 1}), out=tmp_path_factory.mktemp("iris") / "run"
    ).run_dir


def _rewrite_manifest(final: Path, **entries: Any) -> None:
    manifest = json.loads((final / "predictor.json").read_text())
    manifest.update(entries)
    (final / "predictor.json").write_text(json.dumps(manifest))


def _resave_weights(final: Path, change: Callable[[dict[str, torch.Tensor]], None]) -> None:
    path = final / "model.safetensors"
    state = load_file(str(path))
    change(state)
    save_file(state, str(path))


DAMAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "bad JSON": (
        lambda final: (final / "predictor.json").write_text('{"format": 1, "task": '),
        r"predictor.json is not valid JSON",
    ),
    "entry missing": (
        lambda final: _rewrite_manifest(final, encoder=None),
        r"predictor.json: entry 'encoder' is missing or not an object",
    ),
    "weights missing": (
        lambda final: (final / "model.safetensors").unlink(),
        r"model.safetensors does not exist",
    ),
    "weights truncated": (
        lambda final: (final / "model.safetensors").write_bytes(
            (final / "model.safetensors").read_bytes()[:100]
        ),
        r"model.safetensors is not a readable safetensors file .*truncated or damaged",
    ),
    "tensor missing": (
        lambda final: _resave_weights(final, lambda state: state.pop("head.linear.bias")),
        r"does not match the architecture .*1 tensor missing, e.g. 'head.linear.bias'",
    ),
    "tensor altered": (
        lambda final: _resave_weights(
            final, lambda state: state.update({"head.linear.weight": torch.zeros(5, 16)})
        ),
        r"'head.linear.weight' has shape \(5, 16\), the model needs \(3, 16\)",
    ),
    "tensor added": (
        lambda final: _resave_weights(
            final, lambda state: state.update({"extra.weight": torch.zeros(2)})
        ),
        r"1 tensor the architecture lacks, e.g. 'extra.weight'",
    ),
    "weights elsewhere": (
        lambda final: _rewrite_manifest(final, weights="../../elsewhere.safetensors"),
        r"weights '../../elsewhere.safetensors' is not the name of a file in",
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_predictor_is_refused_with_the_file_named(
    iris_run: Path, tmp_path: Path, damage: str
) -> None:
    run = tmp_path / "run"
    shutil.copytree(iris_run, run)
    change, message = DAMAGES[damage]
    change(run / "final")
    with pytest.raises(FatalError, match=message) as refused:
        load_predictor(run)
    assert "\n" not in str(refused.value)


def test_weights_file_gets_the_mode_of_every_other_file(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        run = train(make_config(train={"epochs": 1}), out=tmp_path / "run").run_dir
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (run / "final").iterdir()}
    assert modes == {"predictor.json": 0o644, "model.safetensors": 0o644}


def test_predicting_on_no_rows_is_refused(iris_run: Path) -> None:
    predictor = load_predictor(iris_run)
    empty = pd.read_csv(iris_run / "test_inputs.csv").iloc[:0]
    with pytest.raises(DataError, match="the input has no rows"):
        predictor.predict_proba(empty)
    with pytest.raises(DataError, match="the input has no rows"):
        predictor.predict(empty)
