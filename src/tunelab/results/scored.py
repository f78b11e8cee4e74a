"""What every predictor that scores an encoded matrix shares: boosted trees (``sklearn:hgb``'s
forest, a LightGBM or XGBoost booster) turn inputs into one row of numbers each, score them
(raw boosted scores: one column for regression and binary, one per class otherwise), and
pass the scores through the prediction guard before they become probabilities or labels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tunelab.data.base import Inputs
from tunelab.data.encoding import Encoder
from tunelab.errors import DataError
from tunelab.results.backbones import BackboneStore
from tunelab.results.calibration import temper
from tunelab.results.guard import check_outputs
from tunelab.results.predictor import load_images, manifest_header, raw_inputs
from tunelab.results.rundir import MANIFEST


def probabilities(raw: np.ndarray) -> np.ndarray:
    """Raw boosted scores -> class probabilities (sigmoid for one column, else softmax)."""
    if raw.shape[1] == 1:
        positive = 1.0 / (1.0 + np.exp(-raw[:, 0]))
        return np.column_stack([1.0 - positive, positive])
    shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))


def stored_fields(manifest: dict[str, Any]) -> dict[str, Any]:
    """What every scored predictor reads back from its checked ``predictor.json``."""
    names = ("task", "classes", "modality", "input_columns", "info")
    return {name: manifest[name] for name in names}


class ScoredPredictor:
    """Predicts from raw scores of the encoded inputs; a subclass says how it scores
    (``scores``) and what makes a score non-finite (``non_finite_cause``).

    Attributes:
        encoder, task, classes, modality, input_columns, info: as ``Predictor``.
    """

    kind = "scored"
    temperature = 1.0  # calibration (results/calibration.py), applied by predict_proba

    def __init__(
        self,
        *,
        encoder: Encoder,
        task: str,
        classes: list[Any] | None,
        modality: str,
        input_columns: list[str],
        info: dict[str, Any] | None = None,
    ) -> None:
        self.encoder = encoder
        self.task = task
        self.classes = classes
        self.modality = modality
        self.input_columns = input_columns
        self.info = info or {}

    def save(self, directory: str | Path, *, backbones: BackboneStore | None = None) -> Path:
        raise NotImplementedError

    def write_manifest(self, directory: Path, **entries: Any) -> None:
        """``predictor.json``: the header, the encoder, and the kind's own ``entries``."""
        manifest = {
            **manifest_header(self, kind=self.kind),
            "encoder": self.encoder.to_dict(),
            **entries,
        }
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")

    def scores(self, features: np.ndarray) -> np.ndarray:
        """(N, outputs) raw scores of ``features`` (``features()``'s rows)."""
        raise NotImplementedError

    def non_finite_cause(self) -> str:
        raise NotImplementedError

    def raw_inputs(self, inputs: Inputs | list[str]) -> Inputs:
        columns, info = self.input_columns, self.info
        return raw_inputs(inputs, modality=self.modality, columns=columns, info=info)

    def features(self, inputs: Inputs | list[str]) -> np.ndarray:
        """The encoded inputs as one row of numbers each (images and signals flattened)."""
        encoded = self.encoder.transform(self.raw_inputs(inputs))[0].numpy()
        if len(encoded) == 0:
            raise DataError("the input has no rows; give at least one example to predict on")
        return encoded.reshape(len(encoded), -1)

    def load_images(self, paths: list[Path]) -> np.ndarray:
        return load_images(paths, self.info)

    def predict_proba(self, inputs: Inputs | list[str]) -> np.ndarray:
        if self.task == "regression":
            raise DataError("predict_proba is for classification; this model does regression")
        return temper(probabilities(self._raw(inputs)), self.temperature)

    def predict(self, inputs: Inputs | list[str]) -> np.ndarray:
        raw = self._raw(inputs)
        if self.task == "regression":
            return np.asarray(raw[:, 0], np.float64)
        assert self.classes is not None
        return np.asarray(np.asarray(self.classes, dtype=object)[probabilities(raw).argmax(1)])

    def _raw(self, inputs: Inputs | list[str]) -> np.ndarray:
        raw = self.scores(self.features(inputs))
        return check_outputs(raw, cause=self.non_finite_cause)
