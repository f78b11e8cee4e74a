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
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file
from torch import nn

from tunelab import __version__
from tunelab.data.base import Inputs
from tunelab.data.encoding import Encoder, encoder_from_dict, token_lengths
from tunelab.errors import DataError, FatalError
from tunelab.models import rebuild_model
from tunelab.models.base import BuiltModel
from tunelab.models.lent import Digest, frozen_part, mark_lent
from tunelab.models.local import SPEC_METADATA_KEY
from tunelab.results.backbones import FOLDER as BACKBONES
from tunelab.results.backbones import BackboneStore, read_tensors
from tunelab.training.loop import predict_outputs

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
# predictor.json: the digest of a frozen backbone stored apart (tunelab.results.backbones)
FROZEN_BACKBONE = "frozen_backbone"


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
            return outputs_to_predictions(outputs, task=self.task, target_scale=self.target_scale)
        assert self.classes is not None
        return np.asarray(np.asarray(self.classes, dtype=object)[outputs.argmax(1)])

    def _outputs(self, inputs: Inputs | list[str]) -> np.ndarray:
        features = self.encoder.transform(self._raw(inputs))
        if len(features[0]) == 0:
            # as scikit-learn does; the outputs would not even have one column per class
            raise DataError("the input has no rows; give at least one example to predict on")
        lengths = token_lengths(features) if self.modality == "text" else None
        return predict_outputs(self.model, features, lengths=lengths)

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
        }
        if frozen is not None:
            manifest[FROZEN_BACKBONE] = frozen[0]
        manifest_path = directory / "predictor.json"
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        # safetensors writes through a private temporary file (mode 0600); the weights get
        # the mode every other file of the run gets (0644 under the usual umask)
        shutil.copymode(manifest_path, directory / WEIGHTS_FILE)
        return directory


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


def plain_file(manifest: dict[str, Any], key: str, directory: Path) -> str:
    """The file name a manifest entry gives, refused unless it is a file of ``directory``."""
    value = manifest.get(key)
    if not _is_plain_name(value):
        raise FatalError(
            f"{directory / 'predictor.json'}: {key} {value!r} is not the name of a file in "
            f"{directory}; a predictor reads only files next to its predictor.json"
        )
    return str(value)


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
        FatalError: no ``predictor.json``; a damaged predictor (unreadable JSON, missing or
            truncated weights, weights that do not match the architecture); code named in
            the file without ``trust_code``.
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
    store = backbones or BackboneStore(directory / BACKBONES)
    return load_from(directory, device=device, trust_code=trust_code, backbones=store)


def load_from(
    directory: Path,
    *,
    device: str = "cpu",
    trust_code: bool = False,
    depth: int = 0,
    backbones: BackboneStore | None = None,
) -> AnyPredictor:
    """The predictor in ``directory`` (its ``predictor.json`` says which kind); a frozen
    backbone it keeps apart is read from ``backbones``."""
    manifest_path = directory / "predictor.json"
    manifest = _read_manifest(manifest_path)
    kind = manifest.get("kind", "model")
    if kind == "trees":
        from tunelab.results.trees import load_trees

        return load_trees(directory, manifest)
    if kind == "ensemble":
        from tunelab.results.ensemble import load_ensemble

        return load_ensemble(
            directory,
            manifest,
            device=device,
            trust_code=trust_code,
            depth=depth,
            backbones=backbones,
        )
    if kind != "model":
        raise FatalError(
            f"{manifest_path}: kind {kind!r} is not a predictor kind tunelab knows (model, "
            "trees, ensemble); the predictor is damaged or from a newer tunelab"
        )
    _check_fields(manifest_path, manifest, MODEL_FIELDS)
    _check_model_files(manifest_path, manifest)
    try:
        built = rebuild_model(manifest["model"], directory, trust_code=trust_code)
        encoder = encoder_from_dict(manifest["encoder"], directory)
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise FatalError(
            f"{manifest_path}: its model or encoder entry is damaged ({type(exc).__name__}: "
            f"{exc}); train or save the predictor again"
        ) from None
    weights = directory / manifest["weights"]
    frozen = _frozen_backbone(directory, manifest, backbones)
    _load_weights(built.module, weights, frozen=frozen)
    if frozen:
        mark_lent(built.module, set(frozen), Digest(manifest[FROZEN_BACKBONE]))
    built.module.to(torch.device(device)).eval()
    scale = manifest.get("target_scale")
    return Predictor(
        model=built.module,
        built=built,
        encoder=encoder,
        task=manifest["task"],
        classes=manifest["classes"],
        modality=manifest["modality"],
        input_columns=manifest["input_columns"],
        target_scale=(float(scale[0]), float(scale[1])) if scale else None,
        info=manifest.get("info", {}),
    )


# Every entry load_predictor reads, with the JSON type it must have: of every predictor,
# and of a model's.
MANIFEST_FIELDS: dict[str, type | tuple[type, ...]] = {
    "task": str,
    "classes": (list, type(None)),
    "modality": str,
    "input_columns": list,
}
MODEL_FIELDS: dict[str, type | tuple[type, ...]] = {
    "encoder": dict,
    "model": dict,
    "weights": str,
}


def _read_manifest(path: Path) -> dict[str, Any]:
    """``predictor.json``, checked for every entry ``load_predictor`` reads."""
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FatalError(
            f"{path} is not valid JSON ({exc}); the predictor is damaged: train or save it again"
        ) from None
    if not isinstance(manifest, dict):
        raise FatalError(f"{path} holds {type(manifest).__name__}, not a predictor's JSON object")
    if manifest.get("format") != FORMAT_VERSION:
        raise FatalError(
            f"{path}: format {manifest.get('format')} is not supported "
            f"by tunelab {__version__}; re-train or upgrade tunelab"
        )
    _check_fields(path, manifest, MANIFEST_FIELDS)
    return manifest


def _check_fields(
    path: Path, manifest: dict[str, Any], fields: dict[str, type | tuple[type, ...]]
) -> None:
    for name, kind in fields.items():
        if not isinstance(manifest.get(name), kind):
            raise FatalError(
                f"{path}: entry {name!r} is missing or not {_json_type(kind)} (got "
                f"{manifest.get(name)!r:.60}); the predictor is damaged: train or save it again"
            )


def _check_model_files(path: Path, manifest: dict[str, Any]) -> None:
    """Files a model's manifest names are files of its directory: a path leading elsewhere
    is refused, so a predictor reads nothing outside its own folder."""
    named = {
        "weights": manifest["weights"],
        "encoder.tokenizer": manifest["encoder"].get("tokenizer"),
    }
    for name, value in named.items():
        if value is not None and not _is_plain_name(value):
            raise FatalError(
                f"{path}: {name} {value!r} is not the name of a file in {path.parent}; a "
                "predictor reads only files next to its predictor.json"
            )


def _is_plain_name(value: object) -> bool:
    return isinstance(value, str) and value not in ("", ".", "..") and Path(value).name == value


def _json_type(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", list: "a list", dict: "an object", type(None): "null"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names[k] for k in kinds)


def _frozen_backbone(
    directory: Path, manifest: dict[str, Any], backbones: BackboneStore | None
) -> dict[str, torch.Tensor]:
    """The frozen backbone a model keeps apart (none: empty)."""
    digest = manifest.get(FROZEN_BACKBONE)
    if digest is None:
        return {}
    store = backbones or BackboneStore(directory / BACKBONES)
    return store.load(digest, owner=directory)


def _load_weights(
    module: nn.Module, path: Path, *, frozen: dict[str, torch.Tensor] | None = None
) -> None:
    """Load the trained weights (and a frozen backbone kept apart, whose tensors the model
    shares with every other predictor of this process that names it); together they must
    fit the architecture exactly."""
    if not path.is_file():
        raise FatalError(
            f"{path} does not exist; the predictor is incomplete: train or save it again"
        )
    state = read_tensors(path)
    shared = frozen or {}
    mismatch = _state_mismatch(module, {**shared, **state})
    if mismatch or set(shared) & set(state):
        raise FatalError(
            f"{path} does not match the architecture in predictor.json "
            f"({mismatch or 'it repeats tensors of the frozen backbone'}); the weights were "
            "altered or belong to another model: train or save it again"
        )
    module.load_state_dict(state, strict=not shared)
    if shared:  # the same tensors, not copies
        module.load_state_dict(shared, strict=False, assign=True)


def _tensors(count: int) -> str:
    return f"{count} tensor{'s' if count != 1 else ''}"


def _state_mismatch(module: nn.Module, state: dict[str, torch.Tensor]) -> str:
    """What differs between a module's tensors and a state dict, or "" when they fit."""
    own = module.state_dict()
    problems = []
    missing = sorted(set(own) - set(state))
    if missing:
        problems.append(f"{_tensors(len(missing))} missing, e.g. {missing[0]!r}")
    unexpected = sorted(set(state) - set(own))
    if unexpected:
        problems.append(
            f"{_tensors(len(unexpected))} the architecture lacks, e.g. {unexpected[0]!r}"
        )
    for name in sorted(set(own) & set(state)):
        if own[name].shape != state[name].shape:
            problems.append(
                f"{name!r} has shape {tuple(state[name].shape)}, the model needs "
                f"{tuple(own[name].shape)}"
            )
            break
    return "; ".join(problems)


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
