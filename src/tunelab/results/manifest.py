"""``predictor.json``: read and checked before any predictor kind uses it.

Every entry ``load_predictor`` reads must be there with its JSON type; every number outside
``info`` must be finite; a file it names must be a file of its own folder; the fitted
preprocessing must be usable (a positive scale per column, one mean and std per channel).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from tunelab import __version__
from tunelab.data.encoding import ArrayEncoder, Encoder, encoder_from_dict
from tunelab.errors import FatalError
from tunelab.results.files import DAMAGED, first_non_finite, read_json
from tunelab.results.rundir import MANIFEST

FORMAT_VERSION = 1
# the digest of a frozen backbone a model keeps apart (tunelab.results.backbones)
FROZEN_BACKBONE = "frozen_backbone"

# Every entry load_predictor reads, with the JSON type it must have: of every predictor,
# and of a model's.
MANIFEST_FIELDS: dict[str, type | tuple[type, ...]] = {
    "task": str,
    "classes": (list, type(None)),
    "modality": str,
    "input_columns": list,
    "info": dict,
}
MODEL_FIELDS: dict[str, type | tuple[type, ...]] = {
    "encoder": dict,
    "model": dict,
    "weights": str,
}
TASKS = ("binary", "multiclass", "regression")


def read_manifest(path: Path) -> dict[str, Any]:
    """``predictor.json``, checked for every entry ``load_predictor`` reads."""
    manifest = read_json(path)
    if not isinstance(manifest, dict):
        raise FatalError(f"{path} holds {type(manifest).__name__}, not a predictor's JSON object")
    if manifest.get("format") != FORMAT_VERSION:
        raise FatalError(
            f"{path}: format {manifest.get('format')!r:.40} is not supported "
            f"by tunelab {__version__}; re-train or upgrade tunelab"
        )
    manifest.setdefault("info", {})
    check_fields(path, manifest, MANIFEST_FIELDS)
    # info holds notes and records (a metric may be NaN there); nothing predicts with it
    bad = first_non_finite(manifest, skip=("info",))
    if bad is not None:
        raise FatalError(
            f"{path}: {bad[0]} is {bad[1]}; a predictor's numbers must be finite: {DAMAGED}"
        )
    _check_task(path, manifest)
    return manifest


def _check_task(path: Path, manifest: dict[str, Any]) -> None:
    task, classes = manifest["task"], manifest["classes"]
    if task not in TASKS:
        raise FatalError(f"{path}: task {task!r:.40} is not one of {', '.join(TASKS)}; {DAMAGED}")
    wanted = "null" if task == "regression" else "a list of at least 2 class labels"
    if (classes is None) != (task == "regression") or (classes is not None and len(classes) < 2):
        raise FatalError(f"{path}: classes must be {wanted} for task {task}; {DAMAGED}")


def check_fields(
    path: Path, manifest: dict[str, Any], fields: dict[str, type | tuple[type, ...]]
) -> None:
    for name, kind in fields.items():
        if not isinstance(manifest.get(name), kind):
            raise FatalError(
                f"{path}: entry {name!r} is missing or not {_json_type(kind)} (got "
                f"{manifest.get(name)!r:.60}); {DAMAGED}"
            )


def plain_file(manifest: dict[str, Any], key: str, directory: Path) -> str:
    """The file name a manifest entry gives, refused unless it is a file of ``directory``."""
    value = manifest.get(key)
    if not is_plain_name(value):
        raise FatalError(
            f"{directory / 'predictor.json'}: {key} {value!r} is not the name of a file in "
            f"{directory}; a predictor reads only files next to its predictor.json"
        )
    return str(value)


def check_model_files(path: Path, manifest: dict[str, Any]) -> None:
    """Files a model's manifest names are files of its directory: a path leading elsewhere
    is refused, so a predictor reads nothing outside its own folder."""
    named = {
        "weights": manifest["weights"],
        "encoder.tokenizer": manifest["encoder"].get("tokenizer"),
    }
    for name, value in named.items():
        if value is not None and not is_plain_name(value):
            raise FatalError(
                f"{path}: {name} {value!r} is not the name of a file in {path.parent}; a "
                "predictor reads only files next to its predictor.json"
            )


def check_listed_files(path: Path, manifest: dict[str, Any]) -> None:
    """Every file ``predictor.json``'s ``files`` lists (what the predictor was saved with)
    is there: transformers loads a tokenizer folder that lost a file without a word."""
    listed = manifest.get("files")
    if listed is None:  # predictors saved before the list was kept
        return
    if not isinstance(listed, list) or not all(map(_is_relative_name, listed)):
        raise FatalError(
            f"{path}: files must list file names inside {path.parent} (got {listed!r:.60}); "
            f"{DAMAGED}"
        )
    for name in listed:
        if not (path.parent / name).is_file():
            raise FatalError(
                f"{path.parent / name} does not exist (predictor.json lists it in files); the "
                "predictor is incomplete: train or save it again"
            )


def _is_relative_name(value: object) -> bool:
    return (
        isinstance(value, str)
        and bool(value)
        and all(map(is_plain_name, PurePosixPath(value).parts))
    )


def is_plain_name(value: object) -> bool:
    return isinstance(value, str) and value not in ("", ".", "..") and Path(value).name == value


def _json_type(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", list: "a list", dict: "an object", type(None): "null"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names[k] for k in kinds)


def load_encoder(directory: Path, manifest: dict[str, Any]) -> Encoder:
    """The fitted preprocessing ``predictor.json``'s ``encoder`` entry describes, checked."""
    path = directory / MANIFEST
    entry = manifest["encoder"]
    try:
        encoder = encoder_from_dict(entry, directory)
    except FatalError:
        raise
    except Exception as exc:  # a text encoder loads the tokenizer, which raises bare Exceptions
        what = f"{path}: its encoder entry is damaged"
        if entry.get("kind") == "text" and is_plain_name(entry.get("tokenizer")):
            what = f"{directory / entry['tokenizer']}: the tokenizer cannot be loaded"
        raise FatalError(f"{what} ({type(exc).__name__}: {first_line(exc)}); {DAMAGED}") from None
    check_encoder(path, encoder, manifest["info"])
    return encoder


def first_line(exc: BaseException) -> str:
    """An exception's message, one line of at most 200 characters."""
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def check_encoder(path: Path, encoder: Encoder, info: dict[str, Any]) -> None:
    """The fitted preprocessing in ``predictor.json`` can be applied: a positive scale per
    numeric column, one positive std per channel, images sized as the arrays."""
    problem = _encoder_problem(encoder, info)
    if problem:
        raise FatalError(f"{path}: {problem}; {DAMAGED}")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _encoder_problem(encoder: Encoder, info: dict[str, Any]) -> str | None:
    numeric = getattr(encoder, "numeric", [])
    for index, column in enumerate(numeric):
        if not column.scale > 0:
            return f"encoder.numeric[{index}].scale is {column.scale} (must be above 0)"
    if not isinstance(encoder, ArrayEncoder):
        return None
    shape = encoder.shape
    if not shape or not all(isinstance(n, int) and n > 0 for n in shape):
        return f"encoder.shape {list(shape)!r:.60} is not a list of positive sizes"
    for name, values in (("mean", encoder.mean), ("std", encoder.std)):
        if not isinstance(values, list) or len(values) != shape[0] or not all(map(_number, values)):
            return f"encoder.{name} must hold one number per channel ({shape[0]})"
    if not all(value > 0 for value in encoder.std):
        return "encoder.std holds a value that is not above 0"
    image = info.get("image")
    if image is not None and (
        not isinstance(image, dict)
        or list(image.get("size", [])) != list(shape[1:])
        or image.get("mode") not in ("rgb", "grayscale")
    ):
        return f"info.image {image!r:.60} does not describe images of shape {list(shape)}"
    return None
