"""LightGBM and XGBoost models as predictors, stored in each library's own portable format.

A LightGBM model is saved as its text model (``model.txt``), an XGBoost model as its JSON
model (``model.json``); neither is pickled. On load the file is read under a size limit,
its trees are checked (``booster_checks.py``: every index in range, no node reached twice, no
tree deeper than a walk allows, finite leaves), and only then parsed by the library, which
runs no code from it. Predictions are the library's raw scores (margins) through the
prediction guard, then tunelab's sigmoid or softmax: equal to the library's own
``predict_proba``.

Tables reach a booster as the library prefers them (``bench/booster_categories.py``): the
numbers unscaled with their missing values kept (both libraries learn where a missing value
goes), and each categorical column as its category codes, named categorical to the library
(a category not seen in training counts as missing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunelab.data.base import Inputs
from tunelab.data.encoding import Encoder
from tunelab.data.tabular import TabularEncoder
from tunelab.errors import DataError, FatalError
from tunelab.optional import optional_import
from tunelab.results.backbones import BackboneStore
from tunelab.results.files import DAMAGED, FOREST_LIMIT, checked_size
from tunelab.results.predictor import Loading
from tunelab.results.rundir import MANIFEST
from tunelab.results.scored import ScoredPredictor, stored_fields


@dataclass(frozen=True)
class Library:
    """A boosting library: its module, the file its models are saved to, its families."""

    name: str
    file: str
    families: tuple[str, ...]


LIBRARIES = {
    "lightgbm": Library("lightgbm", "model.txt", ("gbdt", "dart")),
    "xgboost": Library("xgboost", "model.json", ("gbtree",)),
}
BOOSTER_LIMIT = FOREST_LIMIT  # a model file of a few thousand trees is a few MiB


def library_module(name: str, *, purpose: str) -> Any:
    """The library's module, or MissingDependency naming the extra that installs it."""
    return optional_import(name, package=name, extra="trees", purpose=purpose)


def native_matrix(encoder: Encoder, inputs: Inputs) -> np.ndarray:
    """A table as a booster takes it: the numeric columns unscaled (NaN where missing), then
    each categorical column's category codes (NaN for a category not seen in training);
    arrays (images, signals) flattened after the encoder."""
    if isinstance(encoder, TabularEncoder):
        numbers, codes = encoder.raw_columns(inputs)
        matrix = np.hstack([numbers, np.where(codes < 0, np.nan, codes.astype(np.float64))])
    else:
        encoded = encoder.transform(inputs)[0].numpy()
        matrix = encoded.reshape(len(encoded), -1)
    return np.ascontiguousarray(matrix, np.float64)


def categorical_columns(encoder: Encoder) -> list[int]:
    """The columns of ``native_matrix`` that hold category codes."""
    if not isinstance(encoder, TabularEncoder):
        return []
    return list(range(len(encoder.numeric), len(encoder.numeric) + len(encoder.categorical)))


def parse(library: str, text: str) -> Any:
    """The library's model object for a saved model's text (raises the library's error)."""
    module = library_module(library, purpose=f"a {library} model")
    if library == "lightgbm":
        # without tree_sizes LightGBM reads the trees in order, as booster_checks did
        lines = text.splitlines(keepends=True)
        kept = "".join(line for line in lines if not line.startswith("tree_sizes="))
        return module.Booster(model_str=kept)
    booster = module.Booster()
    booster.load_model(bytearray(text.encode()))
    return booster


class BoosterPredictor(ScoredPredictor):
    """Predicts with a LightGBM or XGBoost model on raw inputs, through the fitted encoder.

    Attributes:
        library: ``lightgbm`` or ``xgboost``.
        text: the model in the library's own format (what ``save`` writes).
        booster: the library's model parsed from ``text``.
        task, classes, modality, input_columns, info: as ``Predictor``.
    """

    kind = "booster"

    def __init__(self, *, library: str, text: str, booster: Any = None, **predictor: Any) -> None:
        super().__init__(**predictor)
        self.library = library
        self.text = text
        self.booster = booster if booster is not None else parse(library, text)

    def features(self, inputs: Inputs | list[str]) -> np.ndarray:
        matrix = native_matrix(self.encoder, self.raw_inputs(inputs))
        if len(matrix) == 0:
            raise DataError("the input has no rows; give at least one example to predict on")
        return matrix

    def scores(self, features: np.ndarray) -> np.ndarray:
        if self.library == "lightgbm":
            raw = self.booster.predict(features, raw_score=True)
        else:
            raw = self.booster.inplace_predict(features, predict_type="margin")
        return np.asarray(raw, np.float64).reshape(len(features), -1)

    def non_finite_cause(self) -> str:
        return f"the {self.library} model's leaf values add up to NaN or past the largest float"

    def save(self, directory: str | Path, *, backbones: BackboneStore | None = None) -> Path:
        """Write ``predictor.json`` and the model file (``backbones``: unused)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        file = LIBRARIES[self.library].file
        (directory / file).write_text(self.text)
        self.write_manifest(directory, library=self.library, model_file=file)
        return directory


def load_booster(directory: Path, manifest: dict[str, Any], loading: Loading) -> BoosterPredictor:
    """The ``booster`` kind (``PREDICTOR_KINDS``), checked before the library parses it;
    ``loading`` is unused: boosters run on the CPU, name no code and keep no backbone."""
    from tunelab.results.booster_checks import check_model
    from tunelab.results.manifest import check_fields, load_encoder, plain_file

    manifest_path = directory / MANIFEST
    check_fields(manifest_path, manifest, {"encoder": dict, "library": str, "model_file": str})
    library = manifest["library"]
    if library not in LIBRARIES:
        raise FatalError(
            f"{manifest_path}: library {library!r:.40} is not one tunelab reads "
            f"({', '.join(LIBRARIES)}); {DAMAGED}"
        )
    path = directory / plain_file(manifest, "model_file", directory)
    encoder = load_encoder(directory, manifest)
    text = read_text(path)
    outputs = len(manifest["classes"]) if manifest["task"] == "multiclass" else 1
    features = native_matrix_width(encoder)
    check_model(library, text, path, features=features, outputs=outputs)
    try:
        booster = parse(library, text)
    except FatalError:
        raise
    except Exception as exc:  # the libraries raise their own errors, or ValueError
        raise FatalError(
            f"{path}: {library} cannot read this model ({type(exc).__name__}: "
            f"{str(exc).strip()[:200]}); {DAMAGED}"
        ) from None
    return BoosterPredictor(
        library=library,
        text=text,
        booster=booster,
        encoder=encoder,
        **stored_fields(manifest),
    )


def native_matrix_width(encoder: Encoder) -> int:
    """The columns of ``native_matrix``: one per table column, or the flattened array."""
    if isinstance(encoder, TabularEncoder):
        return len(encoder.numeric) + len(encoder.categorical)
    return math.prod(encoder.input_shape)


def read_text(path: Path) -> str:
    """A model file as text, under the size limit."""
    checked_size(path, BOOSTER_LIMIT, "boosted model")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FatalError(f"{path} is not UTF-8 text (byte {exc.start}); {DAMAGED}") from None
    except OSError as exc:
        raise FatalError(f"{path} cannot be read ({exc.strerror or exc}); {DAMAGED}") from None
