"""``model.source: lightgbm:*`` and ``xgboost:*``: options checked by name, early stopping on
the validation rows, and trials that mix with networks in ensembles and the ladder."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import make_config
from tunelab.cli import app
from tunelab.errors import ConfigError, MissingDependency
from tunelab.evaluation.crossval import cross_validate
from tunelab.evaluation.fitting import fit_on_rows
from tunelab.evaluation.prepare import prepare

pytest.importorskip("lightgbm")
pytest.importorskip("xgboost")


def booster_config(source: str, *, epochs: int = 100, **sections: Any) -> Any:
    return make_config(
        data={"source": "sklearn:breast_cancer"},
        model={"source": source, **sections.pop("model", {})},
        train={"epochs": epochs},
        early_stopping={"patience": 5},
        **sections,
    )


@pytest.mark.parametrize(
    ("source", "valid"), [("lightgbm:gbdt", "num_leaves"), ("xgboost:gbtree", "max_depth")]
)
def test_an_unknown_option_is_refused_with_the_valid_ones(source: str, valid: str) -> None:
    cfg = booster_config(source, model={"options": {"num_leafs": 8}})
    prepared = prepare(cfg)
    with pytest.raises(ConfigError) as raised:
        fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation)
    message = str(raised.value)
    assert "model.options: num_leafs" in message and valid in message


def test_an_unknown_family_and_a_refused_value_name_the_field() -> None:
    cfg = booster_config("lightgbm:goss")
    prepared = prepare(cfg)
    rows = (prepared.split.train, prepared.split.validation)
    with pytest.raises(ConfigError, match="valid: lightgbm:gbdt, lightgbm:dart"):
        fit_on_rows(cfg, prepared, *rows)
    cfg = booster_config("xgboost:gbtree", model={"options": {"grow_policy": "sideways"}})
    with pytest.raises(ConfigError, match=r"xgboost refused to fit with model\.options"):
        fit_on_rows(cfg, prepared, *rows)


@pytest.mark.parametrize("source", ["lightgbm:gbdt", "xgboost:gbtree"])
def test_boosting_stops_early_on_the_validation_rows_and_keeps_the_best(source: str) -> None:
    cfg = booster_config(source, epochs=300, model={"options": {"learning_rate": 0.3}})
    prepared = prepare(cfg)
    fitted = fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation)
    result = fitted.result
    assert result.stop_reason == "patience_exhausted"
    assert len(result.history) < 300
    assert result.best_epoch == len(result.history) - 1 - 5  # patience 5 past the best
    assert result.final["accuracy"] > 0.85
    losses = [record["val_loss"] for record in result.history]
    assert result.final["val_loss"] == pytest.approx(min(losses), rel=1e-6)


def test_dart_boosts_every_iteration_and_regression_predicts_numbers() -> None:
    cfg = booster_config("lightgbm:dart", epochs=15)
    prepared = prepare(cfg)
    fitted = fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation)
    assert (fitted.result.stop_reason, len(fitted.result.history)) == ("max_epochs", 15)
    cfg = make_config(
        data={"source": "sklearn:diabetes"},
        model={"source": "xgboost:gbtree"},
        train={"epochs": 40},
    )
    prepared = prepare(cfg)
    fitted = fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation)
    predicted = fitted.predictor.predict(prepared.raw.inputs.iloc[prepared.split.test])
    assert predicted.dtype == np.float64 and np.isfinite(predicted).all()
    assert np.corrcoef(predicted, prepared.target.values[prepared.split.test])[0, 1] > 0.4


def test_without_the_library_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # import lightgbm raises ImportError
    cfg = booster_config("lightgbm:gbdt")
    prepared = prepare(cfg)
    with pytest.raises(MissingDependency, match=r"lightgbm.*tunelab\[trees\]"):
        fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation)


def test_kfold_trials_score_out_of_fold() -> None:
    cfg = booster_config("xgboost:gbtree", cv={"strategy": "kfold", "folds": 3})
    cv = cross_validate(cfg, prepare(cfg))
    assert len(cv.scores) == 3 and 0.85 < cv.mean <= 1.0
    scored = np.concatenate([validation for _, validation in cv.splits])
    assert np.isfinite(cv.oof[scored]).all() and all(0 < epochs < 100 for epochs in cv.epochs)


def two_trial_study(field: str, choices: list[Any], **ensemble: Any) -> Any:
    """Two k-fold trials on breast_cancer, one per choice of ``field``, their mean ensemble
    kept whatever it scores."""
    return make_config(
        data={"source": "sklearn:breast_cancer"},
        train={"epochs": 6},
        cv={"strategy": "kfold", "folds": 2},
        search={
            "n_trials": 2,
            "sampler": "grid",
            "pruner": "none",
            "space": {field: {"type": "categorical", "choices": choices}},
        },
        ensemble={"keep": "ensemble", "method": "mean", **ensemble},
    )


def test_a_neural_and_lightgbm_ensemble_predicts_through_tunelab_predict(tmp_path: Path) -> None:
    from tunelab.flows.study import run_study

    cfg = two_trial_study("model.source", ["builtin:mlp", "lightgbm:gbdt"])
    out = tmp_path / "run"
    run_study(cfg, out=out)
    manifest = json.loads((out / "final" / "predictor.json").read_text())
    kinds = {
        json.loads((out / "final" / name / "member_0" / "predictor.json").read_text())["kind"]
        for name in manifest["members"]
    }
    assert kinds == {"model", "booster"}
    preds = tmp_path / "preds.csv"
    inputs = out / "test_inputs.csv"
    result = CliRunner().invoke(
        app, ["predict", str(out), "--input", str(inputs), "--output", str(preds)]
    )
    assert result.exit_code == 0, result.output
    written = pd.read_csv(preds)
    assert len(written) == len(pd.read_csv(inputs))
    expected = pd.read_csv(out / "test_predictions.csv")
    np.testing.assert_allclose(written.iloc[:, -1], expected.iloc[:, -1], rtol=1e-6)


def test_a_lightgbm_recipe_skips_the_network_rungs_of_the_ladder(tmp_path: Path) -> None:
    from tests.ladder.test_run import SMALL, rows
    from tunelab.ladder.run import run_ladder
    from tunelab.results.rundir import open_run_dir

    cfg = make_config(
        train={"epochs": 40},  # boosting rounds: enough for a patience of 2 to stop them
        early_stopping={"patience": 2},
        ladder=SMALL,
    )
    run = open_run_dir(cfg, tmp_path / "run", resume=lambda run: True)
    steps = rows(run_ladder(cfg, run, params={"model.source": "lightgbm:gbdt"}))
    assert steps["early_stopping"]["status"] == "measured", steps["early_stopping"]
    for name in ("regularization", "batch_norm", "augmentation"):
        assert steps[name]["status"] == "skipped"
        assert "lightgbm:gbdt is a tree model" in steps[name]["reason"], steps[name]
