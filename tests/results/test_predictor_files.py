"""A predictor never answers from broken numbers, and no file can hang or misdirect it.

The first tests are the rows of the issue that asked for this: predictors tunelab wrote,
one value edited, then ``tunelab predict``; each used to predict, crash or hang. The rest
hold the prediction guard: a NaN or infinite output is never turned into a label, by the
library, the command, the scikit-learn estimators or the export's check.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from tests.predictor_damage import Built, time_limit
from tunelab.cli import app
from tunelab.errors import FatalError, NonFiniteOutputs, TunelabError
from tunelab.results.predictor import load_predictor

runner = CliRunner()


def refusal(folder: Path, inputs: Path, tmp_path: Path) -> str:
    """``tunelab predict`` on ``folder``: it must exit 2 with one error line, in 20 s."""
    output = tmp_path / "predictions.csv"
    with time_limit(20):
        result = runner.invoke(
            app, ["predict", str(folder), "--input", str(inputs), "--output", str(output)]
        )
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and "Traceback" not in result.output
    assert not output.exists()
    return result.output


def copy(predictors: Built, kind: str, tmp_path: Path) -> Path:
    folder = tmp_path / kind
    shutil.copytree(predictors.folders[kind], folder)
    return folder


def edit_json(path: Path, **entries: Any) -> None:
    data = json.loads(path.read_text())
    data.update(entries)
    path.write_text(json.dumps(data))


def forest_refusal(predictors: Built, tmp_path: Path, name: str, change: Any) -> str:
    """The refusal of the boosted trees after ``change(arrays[name], arrays)``."""
    folder = copy(predictors, "trees", tmp_path)
    path = folder / "forest.npz"
    with np.load(path) as saved:
        arrays = {key: np.array(saved[key]) for key in saved.files}
    change(arrays[name], arrays)
    with path.open("wb") as handle:
        np.savez(handle, **arrays)
    return refusal(folder, predictors.inputs["trees"], tmp_path)


def first_split(arrays: dict[str, np.ndarray]) -> int:
    return int(np.flatnonzero(~arrays["is_leaf"])[0])


# -- the table --------------------------------------------------------------------------


def test_ensemble_weights_all_nan_are_refused(predictors: Built, tmp_path: Path) -> None:
    folder = copy(predictors, "ensemble", tmp_path)
    edit_json(folder / "predictor.json", weights=[float("nan"), float("nan")])
    message = refusal(folder, predictors.inputs["ensemble"], tmp_path)
    assert "predictor.json: weights[0] is nan" in message


def test_negative_ensemble_weights_are_refused(predictors: Built, tmp_path: Path) -> None:
    folder = copy(predictors, "ensemble", tmp_path)
    edit_json(folder / "predictor.json", weights=[-1, 2])
    message = refusal(folder, predictors.inputs["ensemble"], tmp_path)
    assert "predictor.json: weights[0] is -1 (each weight is a finite number, 0 or more)" in (
        message
    )


def test_a_nan_tensor_is_refused(predictors: Built, tmp_path: Path) -> None:
    folder = copy(predictors, "net", tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    state["head.linear.weight"] = torch.full_like(state["head.linear.weight"], float("nan"))
    save_file(state, str(folder / "model.safetensors"))
    message = refusal(folder, predictors.inputs["net"], tmp_path)
    assert "model.safetensors: tensor 'head.linear.weight' holds 48 NaN" in message


def test_a_node_that_is_its_own_child_is_refused_without_hanging(
    predictors: Built, tmp_path: Path
) -> None:
    def loop(left: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
        left[first_split(arrays)] = arrays["right"][first_split(arrays)] = first_split(arrays)

    message = forest_refusal(predictors, tmp_path, "left", loop)
    assert "forest.npz: node 0 is reached from 3 places" in message and "cycle" in message


@pytest.mark.parametrize("array", ["left", "feature"])
def test_an_index_out_of_range_is_refused(array: str, predictors: Built, tmp_path: Path) -> None:
    def beyond(values: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
        values[first_split(arrays)] = 10_000

    message = forest_refusal(predictors, tmp_path, array, beyond)
    assert f"forest.npz: {array}[0] is 10000" in message


def test_nan_thresholds_are_refused(predictors: Built, tmp_path: Path) -> None:
    message = forest_refusal(
        predictors, tmp_path, "threshold", lambda values, _: values.fill(np.nan)
    )
    assert "forest.npz: threshold[0] is NaN" in message


def test_a_member_linked_to_a_folder_elsewhere_is_refused(
    predictors: Built, tmp_path: Path
) -> None:
    folder = copy(predictors, "ensemble", tmp_path)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(folder / "member_0", elsewhere)
    (folder / "member_0").symlink_to(elsewhere, target_is_directory=True)
    message = refusal(folder, predictors.inputs["ensemble"], tmp_path)
    assert f"member_0 is a symbolic link to {elsewhere}, outside the predictor folder" in message


def test_a_runs_final_folder_linked_elsewhere_is_refused(predictors: Built, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "final").symlink_to(predictors.folders["net"], target_is_directory=True)
    message = refusal(run, predictors.inputs["net"], tmp_path)
    assert "final leads out of the run directory" in message


# -- the prediction guard -----------------------------------------------------------------------


def test_the_library_never_turns_nan_outputs_into_labels(predictors: Built) -> None:
    predictor: Any = load_predictor(predictors.folders["net"])
    rows = pd.read_csv(predictors.inputs["net"])
    with torch.no_grad():
        predictor.model.head.linear.bias[1] = float("nan")
    for method in (predictor.predict, predictor.predict_proba):
        with pytest.raises(NonFiniteOutputs) as refused:
            method(rows)
        message = str(refused.value)
        assert f"NaN or infinite on {len(rows)} of {len(rows)} rows (rows 0, 1, 2" in message
        assert "the model's weights contain NaN or infinite values (tensor 'head.linear.bias')" in (
            message
        )
        assert isinstance(refused.value, TunelabError)


def test_trees_and_ensembles_refuse_non_finite_outputs(predictors: Built) -> None:
    trees: Any = load_predictor(predictors.folders["trees"])
    rows = pd.read_csv(predictors.inputs["trees"])
    trees.forest.value[trees.forest.is_leaf] = np.nan
    with pytest.raises(NonFiniteOutputs, match="the forest's leaf values contain NaN"):
        trees.predict(rows)
    stacked: Any = load_predictor(predictors.folders["stacking"])
    stacked.stacker.coef[0, 0] = np.inf
    with pytest.raises(NonFiniteOutputs, match="the stacker's coefficients contain NaN"):
        stacked.predict_proba(rows)


def test_an_ensemble_refuses_weights_that_are_not_a_mean(predictors: Built) -> None:
    from tunelab.results.ensemble import EnsemblePredictor

    member = load_predictor(predictors.folders["net"])
    with pytest.raises(ValueError, match=r"weights\[0\] is -1.0"):
        EnsemblePredictor(members=[member, member], weights=[-1.0, 2.0])


def test_predict_names_the_rows_whose_outputs_overflow(predictors: Built, tmp_path: Path) -> None:
    rows = pd.read_csv(predictors.inputs["net"]).head(6)
    rows.iloc[[2, 4], 0] = 1e300  # finite, but beyond float32 once standardized
    inputs = tmp_path / "inputs.csv"
    rows.to_csv(inputs, index=False)
    message = refusal(predictors.folders["net"], inputs, tmp_path)
    assert "NaN or infinite on 2 of 6 rows (rows 2, 4)" in message
    assert "the inputs become infinite once standardized" in message


def test_the_scikit_learn_estimator_refuses_nan_outputs() -> None:
    from sklearn.datasets import load_iris

    from tunelab.sklearn import TunelabClassifier

    x, y = load_iris(return_X_y=True)
    model = TunelabClassifier(overrides={"train.epochs": 1, "train.threads": 1}).fit(x, y)
    with torch.no_grad():
        next(model.predictor_.model.parameters()).fill_(float("nan"))
    for method in (model.predict, model.predict_proba):
        with pytest.raises(NonFiniteOutputs, match="the model's weights contain NaN"):
            method(x[:5])


def test_the_export_check_refuses_nan_outputs(
    predictors: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tunelab.export.write as write

    run = tmp_path / "run"
    shutil.copytree(predictors.folders["net"].parent, run)

    def nan_outputs(*args: Any) -> np.ndarray:
        return np.full((len(pd.read_csv(run / "test_inputs.csv")), 3), np.nan, np.float32)

    monkeypatch.setattr(write, "run_exported", nan_outputs)
    with pytest.raises(FatalError, match=r"model.pt's outputs on test_inputs.csv are NaN"):
        write.export_predictor(run, format="torchscript")
