"""Boosted trees (``sklearn:hgb``): exported without pickle, predicting as scikit-learn does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from tests.conftest import make_config
from tunelab.config import RunConfig, apply_params
from tunelab.errors import ConfigError, FatalError
from tunelab.evaluation.crossval import cross_validate
from tunelab.evaluation.prepare import prepare
from tunelab.flows.train import train
from tunelab.results.predictor import load_predictor
from tunelab.results.trees import Forest, probabilities


@pytest.mark.parametrize("classes", [2, 3])
def test_forest_predicts_exactly_as_scikit_learn(classes: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6))
    x[rng.random(x.shape) < 0.05] = np.nan  # missing values take the learned side
    y = (np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]) > 0).astype(int)
    if classes == 3:
        y = y + (np.nan_to_num(x[:, 2]) > 1)
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x, y)
    forest = Forest.from_sklearn(model)
    np.testing.assert_allclose(probabilities(forest.raw(x)), model.predict_proba(x), rtol=1e-12)


def test_regression_forest_predicts_exactly_as_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 4))
    y = x[:, 0] * 3 + rng.normal(size=200)
    model = HistGradientBoostingRegressor(max_iter=25, random_state=0).fit(x, y)
    np.testing.assert_allclose(Forest.from_sklearn(model).raw(x)[:, 0], model.predict(x))


def hgb_config(epochs: int = 200, **sections: Any) -> RunConfig:
    return make_config(
        data={"source": "sklearn:breast_cancer"},
        model={"source": "sklearn:hgb", "options": {"max_leaf_nodes": 8}},
        train={"epochs": epochs},
        early_stopping={"patience": 5},
        **sections,
    )


def test_hgb_without_early_stopping_boosts_every_iteration_and_is_scored(tmp_path: Path) -> None:
    """scikit-learn takes validation rows only to stop on them: with early stopping off
    they were passed anyway, and every fit failed (the ladder's baseline switches it off)."""
    cfg = hgb_config(epochs=12, cv={"strategy": "kfold", "folds": 2})
    cfg = apply_params(cfg, {"early_stopping.enabled": False})
    cv = cross_validate(cfg, prepare(cfg))
    assert all(len(history) == 12 for history in cv.histories)
    assert 0.8 < cv.mean <= 1.0


def test_hgb_trains_stops_early_saves_and_reloads_identically(tmp_path: Path) -> None:
    summary = train(hgb_config(), out=tmp_path / "run")
    metrics = summary.metrics
    assert metrics["test"]["accuracy"] > 0.9
    assert metrics["stop_reason"] == "patience_exhausted"
    assert metrics["epochs_run"] < 200
    manifest = json.loads((tmp_path / "run" / "final" / "predictor.json").read_text())
    assert manifest["kind"] == "trees"
    assert not list((tmp_path / "run" / "final").glob("*.pkl"))
    loaded = load_predictor(tmp_path / "run")
    import pandas as pd

    inputs = pd.read_csv(tmp_path / "run" / "test_inputs.csv")
    expected = pd.read_csv(tmp_path / "run" / "test_predictions.csv")
    proba = loaded.predict_proba(inputs)
    np.testing.assert_allclose(proba[:, 1], expected.iloc[:, -1], rtol=1e-9)


def test_hgb_cross_validates_with_out_of_fold_predictions() -> None:
    cfg = hgb_config(cv={"strategy": "kfold", "folds": 3})
    prepared = prepare(cfg)
    cv = cross_validate(cfg, prepared)
    assert len(cv.scores) == 3 and all(s > 0.85 for s in cv.scores)
    rows = np.concatenate([val for _, val in cv.splits])
    np.testing.assert_allclose(cv.oof[rows].sum(axis=1), 1.0)


def test_unknown_hgb_option_names_the_valid_ones() -> None:
    cfg = make_config(
        data={"source": "sklearn:iris"},
        model={"source": "sklearn:hgb", "options": {"n_estimators": 10}},
    )
    prepared = prepare(cfg)
    with pytest.raises(
        ConfigError, match=r"n_estimators is not an option of sklearn:hgb.*learning_rate"
    ):
        cross_validate(cfg, prepared)


def test_a_damaged_forest_is_refused(tmp_path: Path) -> None:
    summary = train(hgb_config(5), out=tmp_path / "run")
    (summary.run_dir / "final" / "forest.npz").write_bytes(b"not a forest")
    with pytest.raises(FatalError, match="not a readable forest"):
        load_predictor(summary.run_dir)
