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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tunelab import __version__
from tunelab.data.base import Inputs
from tunelab.data.encoding import Encoder, encoder_from_dict
from tunelab.errors import DataError, FatalError
from tunelab.models import rebuild_model
from tunelab.models.base import BuiltModel
from tunelab.models.local import SPEC_METADATA_KEY
from tunelab.training.loop import predict_outputs

FORMAT_VERSION = 1
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
    """Predicts on raw inputs (a DataFrame, an array, strings) like those trained on.

    Attributes:
        task: binary, multiclass or regression.
        classes: the original label of each class (None for regression).
        modality: tabular, image, signal or text.
        input_columns: raw columns a table or text input must have.
    """

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
            return outputs_to_predictions(outputs, task=self.task, target_scale=self.target_scale)
        assert self.classes is not None
        return np.asarray(np.asarray(self.classes, dtype=object)[outputs.argmax(1)])

    def _outputs(self, inputs: Inputs | list[str]) -> np.ndarray:
        features = self.encoder.transform(self._raw(inputs))
        return predict_outputs(self.model, features)

    def load_images(self, paths: list[Path]) -> np.ndarray:
        """Decode image files the way the training images were (size, colour mode)."""
        from tunelab.data.images import load_image_files

        image = self.info.get("image")
        if image is None:
            raise DataError(
                "this model was not trained on image files (images: source); "
                "pass arrays shaped like its training inputs instead"
            )
        return load_image_files(
            paths, size=(image["size"][0], image["size"][1]), mode=image["mode"]
        )

    def _raw(self, inputs: Inputs | list[str]) -> Inputs:
        if self.modality == "text":
            if isinstance(inputs, pd.DataFrame):
                column = self.input_columns[0]
                if column not in inputs.columns:
                    raise DataError(
                        f"the input has no text column {column!r} (it has "
                        f"{', '.join(map(str, inputs.columns))}); add a {column!r} column"
                    )
                return inputs[column].astype(str).to_numpy(dtype=object)
            return np.asarray(list(inputs), dtype=object)
        if self.modality in ("image", "signal") and isinstance(inputs, pd.DataFrame):
            return _flat_columns(inputs, self.input_columns)
        if isinstance(inputs, list) and inputs and isinstance(inputs[0], str | Path):
            return self.load_images([Path(p) for p in inputs])
        if isinstance(inputs, list):
            return np.asarray(inputs)
        return inputs

    # -- saving and loading --------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write ``predictor.json``, the weights and the model's extra files."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(
            state,
            str(directory / WEIGHTS_FILE),
            metadata={SPEC_METADATA_KEY: json.dumps(self.built.spec)},
        )
        self.built.save_extras(directory)
        manifest = {
            "format": FORMAT_VERSION,
            "tunelab_version": __version__,
            "task": self.task,
            "classes": self.classes,
            "modality": self.modality,
            "input_columns": self.input_columns,
            "target_scale": list(self.target_scale) if self.target_scale else None,
            "encoder": self.encoder.to_dict(),
            "model": self.built.spec,
            "weights": WEIGHTS_FILE,
            "info": self.info,
        }
        (directory / "predictor.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return directory


def load_predictor(path: str | Path, *, device: str = "cpu") -> Predictor:
    """Load a predictor from a run directory (uses its ``final/``) or a predictor directory.

    Raises:
        FatalError: when no ``predictor.json`` is found.
    """
    directory = Path(path)
    if (directory / "final" / "predictor.json").is_file():
        directory = directory / "final"
    manifest_path = directory / "predictor.json"
    if not manifest_path.is_file():
        raise FatalError(
            f"no predictor in {str(path)!r}: expected {manifest_path} (a run directory written "
            "by 'tunelab train' or its final/ folder)"
        )
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT_VERSION:
        raise FatalError(
            f"{manifest_path}: format {manifest.get('format')} is not supported "
            f"by tunelab {__version__}; re-train or upgrade tunelab"
        )
    built = rebuild_model(manifest["model"], directory)
    state = load_file(str(directory / manifest["weights"]))
    built.module.load_state_dict(state, strict=True)
    built.module.to(torch.device(device)).eval()
    scale = manifest.get("target_scale")
    return Predictor(
        model=built.module,
        built=built,
        encoder=encoder_from_dict(manifest["encoder"], directory),
        task=manifest["task"],
        classes=manifest["classes"],
        modality=manifest["modality"],
        input_columns=manifest["input_columns"],
        target_scale=(float(scale[0]), float(scale[1])) if scale else None,
        info=manifest.get("info", {}),
    )


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
