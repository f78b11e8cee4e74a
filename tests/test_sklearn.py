"""tunelab's scikit-learn estimators: scikit-learn's own checks, and the places a user puts
an estimator (Pipeline, cross_val_score, StackingClassifier)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import StackingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from tunelab.errors import ConfigError, DataError
from tunelab.sklearn import TunelabClassifier, TunelabRegressor

# a small MLP for a few epochs on one thread: a fit takes about a tenth of a second
TINY: dict[str, Any] = {"train.epochs": 5, "train.threads": 1}


@parametrize_with_checks(
    [TunelabClassifier(overrides=TINY), TunelabRegressor(overrides=TINY)],
    expected_failed_checks=lambda estimator: {},
)
def test_scikit_learn_checks(estimator: Any, check: Any) -> None:
    check(estimator)


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    rows = np.random.default_rng(0).permutation(len(y))[:240]
    return X[rows], y[rows]


def test_params_are_stored_as_given_and_clone_keeps_them() -> None:
    overrides = {"train.epochs": 3}
    model = TunelabClassifier(config="examples/tabular.yaml", overrides=overrides, out=None)
    assert model.get_params() == {
        "config": "examples/tabular.yaml",
        "overrides": overrides,
        "out": None,
    }
    assert model.overrides is overrides
    twin = clone(model).set_params(overrides={"train.epochs": 4})
    assert twin.get_params()["overrides"] == {"train.epochs": 4}
    assert model.overrides == {"train.epochs": 3}


def test_config_file_and_overrides_decide_the_recipe(
    cancer: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, y = cancer
    model = TunelabClassifier(
        config="examples/tabular.yaml", overrides={**TINY, "train.epochs": 3}, out=tmp_path / "run"
    ).fit(X, y)
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "epochs: 3" in saved and "width: 64" in saved
    assert "py:tunelab.sklearn:arrays_given_to_fit" in saved  # not the example's own data
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history) == 3
    assert model.run_dir_ == tmp_path / "run"
    assert (tmp_path / "run" / "final" / "predictor.json").is_file()
    assert model.n_features_in_ == 30 and list(model.classes_) == [0, 1]
    assert model.score(X, y) > 0.9


def test_the_temporary_run_directory_goes_with_the_estimator(
    cancer: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = cancer
    model = TunelabClassifier(overrides=TINY).fit(X, y)
    run_dir = model.run_dir_
    assert (run_dir / "final" / "predictor.json").is_file()
    del model
    gc.collect()
    assert not run_dir.exists()


FIRST_FIT = """
import gc
from sklearn.datasets import load_iris
from tunelab.sklearn import TunelabClassifier

def search():  # as GridSearchCV does: the estimator lives in a caller's frame
    model = TunelabClassifier(overrides={"train.epochs": 1, "train.threads": 1})
    model.fit(*load_iris(return_X_y=True))
    return model.run_dir_

first = search()  # the first fit of the process
gc.collect()
print("left behind" if first.exists() else "removed")
gc.disable()  # freed by reference counting alone: no reference cycle holds the estimator
second = search()
print("left behind" if second.exists() else "removed")
"""


def test_the_first_estimator_of_a_process_is_collected_with_its_folder() -> None:
    """The first fit of a process imported tunelab's modules; a traceback Optuna keeps from
    that import held the fit's frames, so the estimator and its temporary folder stayed
    until the interpreter exited (a GridSearchCV session filled the temp folder)."""
    result = subprocess.run(
        [sys.executable, "-c", FIRST_FIT], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["removed", "removed"]


def test_a_dataframe_keeps_its_column_names_and_one_hots_text_columns() -> None:
    rng = np.random.default_rng(0)
    colour = rng.choice(["red", "green", "blue"], size=200)
    size = rng.normal(size=200)
    frame = pd.DataFrame({"colour": colour, "size": size})
    label = np.where((colour == "red") | (size > 1.0), "yes", "no")
    model = TunelabClassifier(overrides={**TINY, "train.epochs": 30}).fit(frame, label)
    assert list(model.feature_names_in_) == ["colour", "size"]
    assert list(model.classes_) == ["no", "yes"]
    assert model.predictor_.encoder.feature_names_out == [
        "size",
        "colour=blue",
        "colour=green",
        "colour=red",
    ]
    assert model.score(frame, label) > 0.9
    with pytest.raises(ValueError, match="colour"):
        model.predict(frame[["size"]])


def test_infinite_inputs_are_refused_naming_the_column_and_missing_ones_imputed(
    cancer: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = cancer
    bad = X.copy()
    bad[7, 2] = np.inf
    model = TunelabClassifier(overrides=TINY)
    with pytest.raises(ValueError, match=r"column 'x2' holds inf in 1 row\(s\) \(rows 7"):
        model.fit(bad, y)
    with pytest.raises(DataError):  # tunelab's own error kind, too
        model.fit(bad, y)
    holes = X.copy()
    holes[:20, 2] = np.nan
    model.fit(holes, y)
    assert model.predict(holes[:20]).shape == (20,)
    with pytest.raises(ValueError, match="column 'x2' holds inf"):
        model.predict(bad[5:9])


def test_a_metric_that_does_not_fit_the_task_is_refused_before_training(
    cancer: tuple[np.ndarray, np.ndarray],
) -> None:
    """The estimator's data goes through the same checks as ``tunelab train``'s."""
    X, y = cancer
    with pytest.raises(ValueError, match=r"train\.metric") as caught:
        TunelabClassifier(overrides={**TINY, "train.metric": "rmse"}).fit(X, y)
    assert isinstance(caught.value, ConfigError)


def test_a_bad_override_names_the_field(cancer: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = cancer
    model = TunelabClassifier(overrides={"train.epochz": 3})
    with pytest.raises(ValueError, match="epochz") as caught:
        model.fit(X, y)
    assert isinstance(caught.value, ConfigError)


def test_inside_a_pipeline(cancer: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = cancer
    pipeline = make_pipeline(StandardScaler(), TunelabClassifier(overrides=TINY))
    pipeline.fit(X[:160], y[:160])
    assert pipeline.score(X[160:], y[160:]) > 0.85
    assert pipeline.predict_proba(X[160:]).shape == (80, 2)


def test_cross_val_score_fits_a_fresh_model_per_fold(
    cancer: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = cancer
    scores = cross_val_score(TunelabClassifier(overrides=TINY), X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.85


def test_stacking_with_a_linear_model(cancer: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = cancer
    stack = StackingClassifier(
        [
            ("tunelab", TunelabClassifier(overrides=TINY)),
            ("linear", make_pipeline(StandardScaler(), LogisticRegression())),
        ],
        final_estimator=LogisticRegression(),
        cv=3,
    )
    stack.fit(X[:160], y[:160])
    assert stack.score(X[160:], y[160:]) > 0.85
    assert stack.predict_proba(X[160:]).shape == (80, 2)


def test_regressor_predicts_in_the_targets_units() -> None:
    X, y = load_diabetes(return_X_y=True)
    model = TunelabRegressor(overrides={**TINY, "train.epochs": 30}).fit(X[:300], y[:300])
    predictions = model.predict(X[300:])
    # the targets (25..346) are standardized for training and scaled back for predictions
    assert 100 < predictions.mean() < 200
    assert model.score(X[300:], y[300:]) > 0.2


def test_kfold_config_keeps_the_fold_scores(cancer: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = cancer
    overrides = {**TINY, "cv.strategy": "kfold", "cv.folds": 3}
    model = TunelabClassifier(overrides=overrides).fit(X, y)
    assert model.cross_validation_ is not None
    assert len(model.cross_validation_["scores"]) == 3
    assert (model.run_dir_ / "folds.json").is_file()
