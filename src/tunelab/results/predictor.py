"""The trained predictor: encoder + model + label mapping, saved as JSON + safetensors.

``load_predictor(path)`` rebuilds the architecture from ``predictor.json`` (no pretrained
download, no pickle), loads the trained weights, and predicts on raw inputs with exactly the
preprocessing fitted during training.

Example::

    predictor = tunelab.load_predictor("runs/quickstart")
    predictor.predict(frame)        # class labels or values
    predictor.predict_proba(frame)  # (N, K) probabilities, classification only
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file
from torch import nn

from tunelab import __version__
from tunelab.data.base import Inputs
from tunelab.data.encoding import Encoder, token_lengths
from tunelab.errors import DataError, FatalError
from tunelab.models.base import BuiltModel
from tunelab.models.lent import frozen_part
from tunelab.models.local import SPEC_METADATA_KEY
from tunelab.registry import PREDICTOR_KINDS
from tunelab.results.backbones import BackboneStore
from tunelab.results.files import check_folder, inside
from tunelab.results.guard import check_outputs
from tunelab.results.manifest import FORMAT_VERSION, FROZEN_BACKBONE, read_manifest
from tunelab.results.rundir import FINAL, MANIFEST
from tunelab.training.loop import predict_outputs

WEIGHTS_FILE = "model.safetensors"


def outputs_to_predictions(
    outputs: np.ndarray, *, task: str, target_scale: tuple[float, float] | None
) -> np.ndarray:
    """Raw model outputs -> class probabilities (N, K) or target values (N,).

    Returned as float64 so that values written to CSV read back bit-identical.
    """
    if task == "regression":
        mean, std = target_scale or (0.0, 1.0)
        values = outputs.reshape(len(outputs), -1)[:, 0].astype(np.float64)
        return values * std + mean
    logits = torch.from_numpy(np.ascontiguousarray(outputs, dtype=np.float32))
    return torch.softmax(logits.double(), dim=1).numpy()


class Predictor:
    """A trained network that predicts on raw inputs (a DataFrame, an array, strings) like
    those trained on.

    Attributes:
        task: binary, multiclass or regression.
        classes: the original label of each class (None for regression).
        modality: tabular, image, signal or text.
        input_columns: raw columns a table or text input must have.
    """

    kind = "model"

    def __init__(
        self,
        *,
        model: nn.Module,
        built: BuiltModel,
        encoder: Encoder,
        task: str,
        classes: list[Any] | None,
        modality: str,
        input_columns: list[str],
        target_scale: tuple[float, float] | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.built = built
        self.encoder = encoder
        self.task = task
        self.classes = classes
        self.modality = modality
        self.input_columns = input_columns
        self.target_scale = target_scale
        self.info = info or {}

    # -- predicting ----------------------------------------------------------------------

    def predict_proba(self, inputs: Inputs | list[str]) -> np.ndarray:
        """Class probabilities (N, K), columns in the order of ``classes``."""
        if self.task == "regression":
            raise DataError("predict_proba is for classification; this model does regression")
        return outputs_to_predictions(self._outputs(inputs), task=self.task, target_scale=None)

    def predict(self, inputs: Inputs | list[str]) -> np.ndarray:
        """Class labels (the original ones) or regression values."""
        outputs = self._outputs(inputs)
        if self.task == "regression":
            values = outputs_to_predictions(outputs, task=self.task, target_scale=self.target_scale)
            return check_outputs(
                values,
                cause=lambda: (
                    "the outputs scaled by predictor.json's target_scale "
                    "exceed the largest float64 number"
                ),
            )
        assert self.classes is not None
        return np.asarray(np.asarray(self.classes, dtype=object)[outputs.argmax(1)])

    def _outputs(self, inputs: Inputs | list[str]) -> np.ndarray:
        features = self.encoder.transform(self._raw(inputs))
        if len(features[0]) == 0:
            # as scikit-learn does; the outputs would not even have one column per class
            raise DataError("the input has no rows; give at least one example to predict on")
        lengths = token_lengths(features) if self.modality == "text" else None
        outputs = predict_outputs(self.model, features, lengths=lengths)
        return check_outputs(outputs, cause=lambda: non_finite_cause(self.model, features))

    def load_images(self, paths: list[Path]) -> np.ndarray:
        """Decode image files the way the training images were (size, colour mode)."""
        return load_images(paths, self.info)

    def _raw(self, inputs: Inputs | list[str]) -> Inputs:
        return raw_inputs(
            inputs, modality=self.modality, columns=self.input_columns, info=self.info
        )

    # -- saving and loading --------------------------------------------------------------

    def save(self, directory: str | Path, *, backbones: BackboneStore | None = None) -> Path:
        """Write ``predictor.json``, the weights and the model's extra files.

        Args:
            backbones: where a frozen backbone this model was lent goes, once for every
                predictor that holds it; ``model.safetensors`` then holds only what
                trained, and ``predictor.json`` names the backbone's digest. Without it,
                every weight is in ``model.safetensors``.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        frozen = frozen_part(self.model) if backbones is not None else None
        if backbones is not None and frozen is not None:
            backbones.put(*frozen)
        apart = frozen[1] if frozen is not None else {}
        state = {
            k: v.detach().cpu().contiguous()
            for k, v in self.model.state_dict().items()
            if k not in apart
        }
        save_file(
            state,
            str(directory / WEIGHTS_FILE),
            metadata={SPEC_METADATA_KEY: json.dumps(self.built.spec)},
        )
        self.built.save_extras(directory)
        manifest = {
            **manifest_header(self, kind=self.kind),
            "target_scale": list(self.target_scale) if self.target_scale else None,
            "encoder": self.encoder.to_dict(),
            "model": self.built.spec,
            "weights": WEIGHTS_FILE,
            # loading checks they are all there (a tokenizer folder that lost one still loads)
            "files": sorted(
                path.relative_to(directory).as_posix()
                for path in directory.rglob("*")
                if path.is_file() and path.name != MANIFEST
            ),
        }
        if frozen is not None:
            manifest[FROZEN_BACKBONE] = frozen[0]
        manifest_path = directory / MANIFEST
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        # safetensors writes through a private temporary file (mode 0600); the weights get
        # the mode every other file of the run gets (0644 under the usual umask)
        shutil.copymode(manifest_path, directory / WEIGHTS_FILE)
        return directory


def non_finite_cause(model: nn.Module, features: tuple[torch.Tensor, ...]) -> str:
    """Why a network's outputs are not finite: its weights, its inputs, or neither."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return (
                f"the model's weights contain NaN or infinite values (tensor {name!r}); train "
                "or save the predictor again"
            )
    if any(f.is_floating_point() and not bool(torch.isfinite(f).all()) for f in features):
        return (
            "the inputs become infinite once standardized (values beyond float32's range, "
            "about 3.4e38): check those rows"
        )
    return (
        "the network's weights are finite, but its computation overflows on these rows: "
        "check them for values far outside the training data's range"
    )


def raw_inputs(
    inputs: Inputs | list[str], *, modality: str, columns: list[str], info: dict[str, Any]
) -> Inputs:
    """Inputs as a user hands them (a table, arrays, texts, image paths) -> the raw inputs
    the encoder takes, checked against the columns the model was trained on."""
    if modality == "text":
        if isinstance(inputs, pd.DataFrame):
            column = columns[0]
            if column not in inputs.columns:
                raise DataError(
                    f"the input has no text column {column!r} (it has "
                    f"{', '.join(map(str, inputs.columns))}); add a {column!r} column"
                )
            return inputs[column].to_numpy(dtype=object)
        return np.asarray(list(inputs), dtype=object)
    if modality in ("image", "signal") and isinstance(inputs, pd.DataFrame):
        return _flat_columns(inputs, columns)
    if isinstance(inputs, list) and inputs and isinstance(inputs[0], str | Path):
        return load_images([Path(p) for p in inputs], info)
    if isinstance(inputs, list):
        return np.asarray(inputs)
    return inputs


def load_images(paths: list[Path], info: dict[str, Any]) -> np.ndarray:
    """Decode image files the way a model's training images were (its ``info["image"]``)."""
    from tunelab.data.images import load_image_files

    image = info.get("image")
    if image is None:
        raise DataError(
            "this model was not trained on image files (images: source); "
            "pass arrays shaped like its training inputs instead"
        )
    return load_image_files(paths, size=(image["size"][0], image["size"][1]), mode=image["mode"])


class AnyPredictor(Protocol):
    """What every predictor offers: a model, boosted trees, or an ensemble of them."""

    kind: str
    task: str
    classes: list[Any] | None
    modality: str
    input_columns: list[str]
    info: dict[str, Any]

    def predict(self, inputs: Inputs | list[str]) -> np.ndarray: ...

    def predict_proba(self, inputs: Inputs | list[str]) -> np.ndarray: ...

    def load_images(self, paths: list[Path]) -> np.ndarray: ...

    def save(self, directory: str | Path, *, backbones: BackboneStore | None = None) -> Path: ...


def manifest_header(predictor: AnyPredictor, *, kind: str) -> dict[str, Any]:
    """The entries every ``predictor.json`` starts with."""
    return {
        "format": FORMAT_VERSION,
        "tunelab_version": __version__,
        "kind": kind,
        "task": predictor.task,
        "classes": predictor.classes,
        "modality": predictor.modality,
        "input_columns": predictor.input_columns,
        "info": predictor.info,
    }


def load_predictor(
    path: str | Path,
    *,
    device: str = "cpu",
    trust_code: bool = False,
    backbones: BackboneStore | None = None,
) -> AnyPredictor:
    """Load a predictor from a run directory (uses its ``final/``) or a predictor directory.

    Args:
        path: a run directory or its ``final/`` folder.
        device: where the model runs.
        trust_code: import and call the Python function a ``py:`` predictor names as its
            architecture (the CLI's ``--trust-code``). Without it such a predictor is refused
            before anything is imported; pass it only for predictors you trust, as you
            would run their Python code.
        backbones: where its frozen backbone is stored, when it keeps one apart; default
            the predictor folder's own ``backbones/`` (``final/`` holds its own).

    Raises:
        FatalError: no ``predictor.json``; a damaged predictor: a link out of its folder, a
            file above its size limit, unreadable or non-finite JSON, weights that are
            missing, truncated, not finite or do not match the architecture, trees that are
            not trees, ensemble weights that are not a mean (the checks:
            ``results/files.py``, ``manifest.py``, ``model_checks.py``, ``text_checks.py``,
            ``trees.py``, ``ensemble.py``); code named in the file without ``trust_code``.
    """
    directory = Path(path)
    if (directory / FINAL / MANIFEST).is_file():
        directory = directory / FINAL
        if not inside(directory, Path(path)):
            raise FatalError(
                f"{directory} leads out of the run directory {path}; a run's final/ is a "
                "folder inside it: copy the predictor in instead of linking it"
            )
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise FatalError(
            f"no predictor in {str(path)!r}: expected {manifest_path} (a run directory written "
            "by 'tunelab train' or its final/ folder)"
        )
    check_folder(directory)  # its own backbones/ folder included
    return load_from(directory, Loading(device=device, trust_code=trust_code, backbones=backbones))


@dataclass(frozen=True)
class Loading:
    """How a predictor folder is read, passed to the loader of its kind.

    Attributes:
        device: where the models go.
        trust_code: whether code a file names may be imported (see ``load_predictor``).
        depth: how deep inside ensembles this folder is.
        seen: the member folders already loaded for the predictor at the top.
        backbones: where a frozen backbone kept apart is read; default the folder's own.
    """

    device: str = "cpu"
    trust_code: bool = False
    depth: int = 0
    seen: set[Path] | None = None
    backbones: BackboneStore | None = None


def load_from(directory: Path, loading: Loading | None = None) -> AnyPredictor:
    """The predictor in ``directory``: its ``predictor.json`` says which kind, and the
    loader registered for that kind (``tunelab.registry.PREDICTOR_KINDS``) reads it."""
    manifest_path = directory / MANIFEST
    manifest = read_manifest(manifest_path)
    kind = manifest.get("kind", "model")
    if not isinstance(kind, str) or kind not in PREDICTOR_KINDS:
        raise FatalError(
            f"{manifest_path}: kind {kind!r:.40} is not a predictor kind tunelab knows "
            f"({', '.join(PREDICTOR_KINDS)}); the predictor is damaged or from a newer tunelab"
        )
    load = PREDICTOR_KINDS.get(kind)
    predictor: AnyPredictor = load(directory, manifest, loading or Loading())
    return predictor


def array_columns(shape: tuple[int, ...]) -> list[str]:
    """Column names for array examples flattened into a table: x0, x1, ..."""
    return [f"x{i}" for i in range(int(np.prod(shape)))]


def _flat_columns(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(
            f"the input lacks {len(missing)} of the {len(columns)} value columns the model "
            f"expects ({shown}); give columns {columns[0]}..{columns[-1]}, one per value"
        )
    values = frame[columns].apply(pd.to_numeric, errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"column {columns[col]!r}, row {row}: {frame[columns[col]].iloc[row]!r} is not a "
            "number; every value column must be numeric"
        )
    return np.asarray(values.to_numpy(np.float32))
