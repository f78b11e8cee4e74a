"""``tunelab export --format onnx`` for a LightGBM or XGBoost predictor, through onnxmltools.

The exported model takes what a neural table model's export takes as ``numeric``: the raw
numeric columns as float32, NaN where missing (the trees learned where a missing value
goes, so nothing is imputed). It gives ``probabilities`` (and onnxmltools' ``label``) or
``prediction``. Where no maintained converter reproduces the model, export is refused with
the reason: categorical columns (onnxmltools converts neither library's native categorical
splits), images and signals (their scaling would have to go inside the graph), TorchScript
(trees are not a torch module).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tunelab.data.tabular import TabularEncoder
from tunelab.errors import FatalError
from tunelab.optional import optional_import
from tunelab.results.boosters import BoosterPredictor, categorical_columns

# onnxmltools writes the trees with the ai.onnx.ml operators of this opset
_OPSET = 15


def exportable(predictor: BoosterPredictor, run: str | Path, format: str) -> None:
    """Refuse, with the reason, a booster no converter exports as it predicts."""
    why = None
    if format != "onnx":
        why = "trees are not a torch module, so there is no TorchScript: use --format onnx"
    elif not isinstance(predictor.encoder, TabularEncoder):
        why = (
            f"a {predictor.modality} model's scaling would have to go inside the graph, "
            "which the tree converters do not do"
        )
    elif categorical_columns(predictor.encoder):
        why = (
            "its table has categorical columns, which it splits natively, and onnxmltools "
            "converts neither library's categorical splits"
        )
    if why:
        raise FatalError(
            f"{run} holds a {predictor.library} model that cannot be exported: {why}. Use "
            "tunelab predict (or tunelab.load_predictor) for it"
        )


def booster_onnx(predictor: BoosterPredictor) -> bytes:
    """The model as ONNX bytes (input ``numeric``; output ``probabilities`` or
    ``prediction``)."""
    purpose = "tunelab export --format onnx of a LightGBM or XGBoost model"
    tools = optional_import("onnxmltools", package="onnxmltools", extra="export", purpose=purpose)
    types = optional_import(
        "onnxmltools.convert.common.data_types",
        package="onnxmltools",
        extra="export",
        purpose=purpose,
    )
    width = len(predictor.encoder.numeric)  # type: ignore[attr-defined]
    initial = [("numeric", types.FloatTensorType([None, width]))]
    if predictor.library == "lightgbm":
        model = tools.convert_lightgbm(
            predictor.booster, initial_types=initial, zipmap=False, target_opset=_OPSET
        )
    else:
        model = tools.convert_xgboost(
            _xgboost_estimator(predictor), initial_types=initial, target_opset=_OPSET
        )
    if predictor.task == "regression":
        _rename_output(model, "prediction")
    elif predictor.temperature != 1.0:
        _temper(model, predictor.temperature)
    return bytes(model.SerializeToString())


def _temper(model: Any, temperature: float) -> None:
    """The calibration inside the graph: ``probabilities`` becomes softmax(log(p) / T), as
    ``results.calibration.temper`` computes it (p clipped at 1e-12 first)."""
    helper = optional_import("onnx.helper", package="onnx", extra="export", purpose="export")
    tensor = optional_import("onnx", package="onnx", extra="export", purpose="export").TensorProto
    raw = "probabilities_untempered"
    for node in model.graph.node:
        node.output[:] = [raw if out == "probabilities" else out for out in node.output]
    constants = [
        helper.make_tensor("calibration_floor", tensor.FLOAT, [], [1e-12]),
        helper.make_tensor("calibration_temperature", tensor.FLOAT, [], [temperature]),
    ]
    model.graph.initializer.extend(constants)
    model.graph.node.extend(
        [
            helper.make_node("Max", [raw, "calibration_floor"], ["calibration_clipped"]),
            helper.make_node("Log", ["calibration_clipped"], ["calibration_logits"]),
            helper.make_node("Div", ["calibration_logits", "calibration_temperature"], ["t"]),
            helper.make_node("Softmax", ["t"], ["probabilities"], axis=1),
        ]
    )


def _xgboost_estimator(predictor: BoosterPredictor) -> Any:
    """onnxmltools converts XGBoost's scikit-learn estimators: one holding the model."""
    xgboost = optional_import("xgboost", package="xgboost", extra="trees", purpose="export")
    kind = xgboost.XGBRegressor if predictor.task == "regression" else xgboost.XGBClassifier
    estimator = kind()
    estimator.load_model(bytearray(predictor.text.encode()))
    return estimator


def _rename_output(model: Any, name: str) -> None:
    old = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = [name if output == old else output for output in node.output]
    model.graph.output[0].name = name


def booster_outputs(outputs: list[np.ndarray], task: str) -> np.ndarray:
    """The probabilities (classification: onnxmltools' second output) or the predictions
    (regression, as one column) of an exported booster's outputs."""
    if task == "regression":
        return np.asarray(outputs[0], np.float64).reshape(len(outputs[0]), -1)
    return np.asarray(outputs[1], np.float64)
