"""LightGBM and XGBoost predictors: saved in the library's own format (no pickle), loaded
through tunelab's checks, predicting what the library itself predicts from the file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_config
from tunelab.errors import FatalError, NonFiniteOutputs
from tunelab.flows.train import train
from tunelab.results.calibration import temper
from tunelab.results.predictor import load_predictor

lightgbm = pytest.importorskip("lightgbm")
xgboost = pytest.importorskip("xgboost")

SOURCES = {"lightgbm": "lightgbm:gbdt", "xgboost": "xgboost:gbtree"}
FILES = {"lightgbm": "model.txt", "xgboost": "model.json"}


def table(rows: int = 300, classes: int = 2, seed: int = 0) -> pd.DataFrame:
    """Numbers with missing cells, and a categorical column of 12 categories whose effect
    no ordering of the codes captures."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    city = rng.integers(0, 12, rows)
    effect = rng.normal(0, 2, 12)[city]
    score = x[:, 0] + effect + rng.normal(0, 0.5, rows)
    label = np.digitize(score, np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1]))
    x[rng.random(x.shape) < 0.05] = np.nan
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["city"] = [f"city{c}" for c in city]
    frame["label"] = [f"k{v}" for v in label]
    return frame


def trained(tmp_path: Path, library: str, *, classes: int = 2, **options: Any) -> Path:
    path = tmp_path / "table.csv"
    table(classes=classes).to_csv(path, index=False)
    cfg = make_config(
        data={"source": f"csv:{path}", "target": "label"},
        model={"source": SOURCES[library], "options": options},
        train={"epochs": 60},
        early_stopping={"patience": 5},
    )
    out = tmp_path / library
    train(cfg, out=out)
    return out


def library_proba(library: str, model_file: Path, matrix: np.ndarray) -> np.ndarray:
    """The library's own probabilities from the saved file."""
    if library == "lightgbm":
        proba = lightgbm.Booster(model_file=str(model_file)).predict(matrix)
        return np.column_stack([1 - proba, proba]) if proba.ndim == 1 else proba
    model = xgboost.XGBClassifier()
    model.load_model(str(model_file))
    return np.asarray(model.predict_proba(matrix))


@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
@pytest.mark.parametrize("classes", [2, 3])
def test_round_trip_without_pickle_predicts_as_the_library(
    tmp_path: Path, library: str, classes: int
) -> None:
    out = trained(tmp_path, library, classes=classes)
    final = out / "final"
    assert sorted(p.name for p in final.iterdir()) == sorted([FILES[library], "predictor.json"])
    text = (final / FILES[library]).read_text()  # the library's own text format
    assert text.startswith("tree\nversion=v4" if library == "lightgbm" else '{"learner"')
    manifest = json.loads((final / "predictor.json").read_text())
    assert (manifest["kind"], manifest["library"]) == ("booster", library)

    loaded = load_predictor(out)
    inputs = pd.read_csv(out / "test_inputs.csv")
    proba = loaded.predict_proba(inputs)
    raw = library_proba(library, final / FILES[library], loaded.features(inputs))  # type: ignore[attr-defined]
    expected = temper(raw, loaded.temperature)  # type: ignore[union-attr]  # the calibration
    np.testing.assert_allclose(proba, expected, rtol=1e-5, atol=1e-7)
    # and what train wrote from the model in memory, before it was saved
    written = pd.read_csv(out / "test_predictions.csv")
    np.testing.assert_allclose(proba[:, -1], written.iloc[:, -1], rtol=1e-9)


@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_categories_are_split_natively_and_unseen_ones_predict(
    tmp_path: Path, library: str
) -> None:
    out = trained(tmp_path, library)
    loaded = load_predictor(out)
    inputs = pd.read_csv(out / "test_inputs.csv").head(3)
    matrix = loaded.features(inputs)  # type: ignore[attr-defined]
    assert matrix.shape[1] == 4  # a, b, c and the city's code: no one-hot columns
    inputs["city"] = "a city never seen"
    assert np.isfinite(loaded.predict_proba(inputs)).all()


def lgb_edit(key: str, change: Callable[[list[str]], list[str]]) -> Callable[[str], str]:
    """Change the first tree's ``key=`` line of a LightGBM text model."""

    def edit(text: str) -> str:
        start = text.index(f"\n{key}=") + 1
        end = text.index("\n", start)
        values = change(text[start:end].split("=", 1)[1].split())
        return text[:start] + f"{key}=" + " ".join(values) + text[end:]

    return edit


def xgb_edit(change: Callable[[dict[str, Any]], None]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        model = json.loads(text)
        change(model["learner"]["gradient_booster"]["model"]["trees"][0])
        return json.dumps(model)

    return edit


def _set(tree: dict[str, Any], key: str, index: int, value: Any) -> None:
    tree[key][index] = value


DAMAGES = {
    "lightgbm: a child points back to the root": (
        "lightgbm",
        lgb_edit("left_child", lambda v: [v[0], "0", *v[2:]]),
        "reached from 2 places",
    ),
    "lightgbm: a split on a column that is not there": (
        "lightgbm",
        lgb_edit("split_feature", lambda v: ["99", *v[1:]]),
        "split_feature",
    ),
    "lightgbm: a leaf value that is not a number": (
        "lightgbm",
        lgb_edit("leaf_value", lambda v: ["nan", *v[1:]]),
        "leaf value is nan",
    ),
    "lightgbm: cut short": ("lightgbm", lambda t: t[: len(t) // 3], "model file"),
    "xgboost: a child out of range": (
        "xgboost",
        xgb_edit(lambda tree: _set(tree, "left_children", 0, 10**6)),
        "outside its",
    ),
    "xgboost: a child points back to the root": (
        "xgboost",
        xgb_edit(lambda tree: _set(tree, "right_children", 0, 0)),
        "reached from 2 places",
    ),
    "xgboost: cut short": ("xgboost", lambda t: t[: len(t) // 2], "not valid JSON"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_tampered_model_file_is_refused_before_the_library_reads_it(
    tmp_path: Path, damage: str
) -> None:
    library, edit, named = DAMAGES[damage]
    out = trained(tmp_path, library)
    model_file = out / "final" / FILES[library]
    model_file.write_text(edit(model_file.read_text()))
    with pytest.raises(FatalError) as raised:
        load_predictor(out)
    assert str(model_file) in str(raised.value) and named in str(raised.value)


def test_the_library_must_be_one_tunelab_reads_and_its_file_in_the_folder(tmp_path: Path) -> None:
    out = trained(tmp_path, "lightgbm")
    manifest_path = out / "final" / "predictor.json"
    original = manifest_path.read_text()
    for key, value, named in (
        ("library", "catboost", "library 'catboost'"),
        ("model_file", "../../model.txt", "not the name of a file"),
    ):
        manifest = json.loads(original)
        manifest[key] = value
        manifest_path.write_text(json.dumps(manifest))
        with pytest.raises(FatalError, match=named):
            load_predictor(out)


def test_a_huge_leaf_sum_is_caught_by_the_prediction_guard(tmp_path: Path) -> None:
    out = trained(tmp_path, "lightgbm")
    model_file = out / "final" / "model.txt"
    huge = lgb_edit("leaf_value", lambda v: ["1e308"] * len(v))
    text = model_file.read_text()
    for _ in range(3):  # three trees of 1e308 add up past the largest float
        text = huge(text).replace("\nleaf_value=", "\nleaf_valueX=", 1)
    model_file.write_text(text.replace("leaf_valueX=", "leaf_value="))
    with pytest.raises(NonFiniteOutputs, match="lightgbm model"):
        load_predictor(out).predict_proba(pd.read_csv(out / "test_inputs.csv"))
