"""What an exported model takes and gives, written as JSON next to it, and the function that
turns raw rows into those inputs (the same code the predictor's encoder runs).

A table's categorical columns are fed as codes: a cell's position in its column's
``categories`` list (text compared as text, numbers by value), the ``missing`` code for an
empty cell, -1 for a category the model never saw.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tunelab.data.base import Inputs
from tunelab.data.encoding import ArrayEncoder
from tunelab.data.tabular import TabularEncoder
from tunelab.export.graph import Graph
from tunelab.results.boosters import BoosterPredictor
from tunelab.results.predictor import Predictor, raw_inputs


def describe_inputs(predictor: Predictor, graph: Graph) -> dict[str, Any]:
    """The inputs and output of ``graph`` in JSON: names, types, columns, vocabularies."""
    encoder = predictor.encoder
    inputs: dict[str, Any] = {}
    if isinstance(encoder, TabularEncoder):
        if encoder.numeric:
            inputs["numeric"] = {
                "dtype": "float32",
                "columns": [c.name for c in encoder.numeric],
                "missing": "NaN (imputed with the training median inside the model)",
            }
        if encoder.categorical:
            inputs["categorical"] = {
                "dtype": "int64",
                "unseen": -1,
                "columns": [
                    {
                        "name": c.name,
                        "categories": list(c.categories),
                        "missing": list(c.categories).index(c.fill)
                        if c.fill in c.categories
                        else -1,
                    }
                    for c in encoder.categorical
                ],
            }
    else:
        assert isinstance(encoder, ArrayEncoder)
        inputs["inputs"] = {"dtype": "float32", "shape": [None, *encoder.shape]}
    output: dict[str, Any] = {"name": graph.output_name, "dtype": "float32"}
    if predictor.classes is not None:
        output["columns"] = predictor.classes
    return {"task": predictor.task, "inputs": inputs, "output": output}


def describe_booster(predictor: BoosterPredictor) -> dict[str, Any]:
    """A LightGBM or XGBoost export's input (a table's numeric columns) and output."""
    assert isinstance(predictor.encoder, TabularEncoder)
    numeric = {
        "dtype": "float32",
        "columns": [c.name for c in predictor.encoder.numeric],
        "missing": "NaN (the trees send it where they learned to)",
    }
    name = "prediction" if predictor.task == "regression" else "probabilities"
    output: dict[str, Any] = {"name": name, "dtype": "float32"}
    if predictor.classes is not None:
        output["columns"] = predictor.classes
    return {"task": predictor.task, "inputs": {"numeric": numeric}, "output": output}


def feed(predictor: Predictor | BoosterPredictor, raw: Inputs) -> dict[str, np.ndarray]:
    """Raw inputs (a table, or arrays / value columns for images and signals) -> the named
    arrays the exported model takes.

    Raises:
        DataError: inputs the predictor itself would refuse (missing columns, text in a
            numeric column, infinities).
    """
    encoder = predictor.encoder
    if isinstance(encoder, TabularEncoder):
        numbers, codes = encoder.raw_columns(raw)
        named = {"numeric": numbers.astype(np.float32), "categorical": codes}
        return {name: named[name] for name in _table_names(encoder)}
    assert isinstance(encoder, ArrayEncoder)
    values = raw_inputs(
        raw, modality=predictor.modality, columns=predictor.input_columns, info=predictor.info
    )
    array = np.asarray(values, dtype=np.float32)
    return {"inputs": np.ascontiguousarray(array.reshape(len(array), *encoder.shape))}


def _table_names(encoder: TabularEncoder) -> list[str]:
    return [
        name
        for name, present in (("numeric", encoder.numeric), ("categorical", encoder.categorical))
        if present
    ]
