"""``tunelab train`` honours ``cv: kfold``: fold scores and out-of-fold predictions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import make_config
from tunelab.cli import app
from tunelab.evaluation.crossval import cross_validate, cv_splits
from tunelab.evaluation.prepare import prepare
from tunelab.flows.train import train
from tunelab.training.metrics import compute_metrics


def test_cross_validate_scores_each_fold_on_its_out_of_fold_predictions() -> None:
    cfg = make_config(train={"epochs": 2}, cv={"strategy": "kfold", "folds": 3})
    prepared = prepare(cfg)
    splits = cv_splits(cfg, prepared)
    cv = cross_validate(cfg, prepared, splits)
    assert len(cv.scores) == len(cv.predictors) == len(cv.histories) == 3
    test = prepared.split.test
    assert np.isnan(cv.oof[test]).all(), "test rows are never predicted"
    for fold, (train_rows, val_rows) in enumerate(splits):
        assert not set(train_rows) & set(val_rows) and not set(val_rows) & set(test)
        truth = prepared.target.values[val_rows]
        again = compute_metrics("multiclass", truth, cv.oof[val_rows])["accuracy"]
        assert cv.scores[fold] == pytest.approx(again)
        proba = cv.predictors[fold].predict_proba(prepared.raw.inputs.iloc[val_rows])
        np.testing.assert_allclose(proba, cv.oof[val_rows], rtol=1e-5, atol=1e-7)
    assert cv.std is not None and cv.mean == pytest.approx(np.mean(cv.scores))


def test_repeated_kfold_averages_each_rows_predictions_over_repeats() -> None:
    cfg = make_config(train={"epochs": 1}, cv={"strategy": "kfold", "folds": 2, "repeats": 2})
    prepared = prepare(cfg)
    cv = cross_validate(cfg, prepared)
    assert len(cv.scores) == 4
    rows = np.concatenate([prepared.split.train, prepared.split.validation])
    np.testing.assert_allclose(cv.oof[rows].sum(axis=1), 1.0, rtol=1e-6)


def test_train_with_kfold_writes_fold_scores_and_out_of_fold_predictions(tmp_path: Path) -> None:
    cfg = make_config(train={"epochs": 2}, cv={"strategy": "kfold", "folds": 3})
    summary = train(cfg, out=tmp_path / "run")
    estimate = summary.metrics["cross_validation"]
    assert estimate["folds"] == 3 and len(estimate["scores"]) == 3
    assert estimate["mean"] == pytest.approx(np.mean(estimate["scores"]))
    folds = json.loads((tmp_path / "run" / "folds.json").read_text())
    assert folds["scores"] == estimate["scores"]
    with np.load(tmp_path / "run" / "oof.npz") as saved:
        oof = saved["predictions"]
    assert oof.shape == (150, 3)
    validated = np.concatenate([np.asarray(rows) for rows in folds["validation_rows"]])
    assert np.isfinite(oof[validated]).all()
    assert (tmp_path / "run" / "final" / "predictor.json").is_file(), "then the final model"


def test_train_output_to_a_file_is_one_plain_line_per_epoch(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: plain\ndata: {source: sklearn:iris}\n"
        "model: {source: builtin:mlp, width: 8, depth: 1}\n"
        "train: {epochs: 3, threads: 1}\nearly_stopping: {enabled: false}\n"
    )
    log = tmp_path / "log.txt"
    with log.open("w") as handle:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tunelab.cli",
                "train",
                str(config),
                "--out",
                str(tmp_path / "r"),
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=120,
        )
    lines = log.read_text().splitlines()
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert epochs[-1].startswith("epoch 3/3  train_loss"), lines
    assert 1 <= len(epochs) <= 3  # rate-limited, the last always printed
    assert not any("\r" in line or "\x1b[" in line for line in lines), "no live-view codes"


def test_cli_train_kfold_prints_the_estimate(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: kf\ndata: {source: sklearn:iris}\nmodel: {source: builtin:mlp, width: 8}\n"
        "train: {epochs: 1, threads: 1}\ncv: {strategy: kfold, folds: 2}\n"
    )
    result = CliRunner().invoke(app, ["train", str(config), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "2-fold accuracy" in " ".join(result.output.split())
