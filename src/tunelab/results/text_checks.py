"""A text model's ``tokenizer/`` and ``backbone/`` folders, checked on load.

transformers reads these folders leniently: a tokenizer folder that lost its
``tokenizer.json`` still loads, as a tokenizer of five special tokens that turns every word
into ``[UNK]``. So before transformers reads them, every file is size-checked and every JSON
file parsed strictly; afterwards the tokenizer must have the vocabulary it was saved with
(``predictor.json`` records its size), fit the backbone's embedding table, and cut texts to
no more tokens than the backbone has positions for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunelab.data.encoding import Encoder
from tunelab.errors import FatalError
from tunelab.models.base import BuiltModel
from tunelab.results.files import DAMAGED, SUPPORT_FILE_LIMIT, checked_size, read_json
from tunelab.results.manifest import is_plain_name

TEXT_FOLDERS = ("tokenizer", "backbone")


def check_text_files(directory: Path) -> None:
    """Every file of ``tokenizer/`` and ``backbone/`` within its size limit; every JSON file
    valid UTF-8 JSON without a key given twice; no file name in ``tokenizer_config.json``
    that leads out of its folder."""
    for part in TEXT_FOLDERS:
        folder = directory / part
        if not folder.is_dir():
            raise FatalError(
                f"predictor directory {str(directory)!r} has no {part}/ folder, so the text "
                "model cannot be rebuilt; it was not saved completely. Train or save it again"
            )
        for path in sorted(folder.rglob("*")):
            if path.is_dir():
                continue
            kind = f"file of {part}/"
            if path.suffix == ".json":
                parsed = read_json(path, kind=kind, limit=SUPPORT_FILE_LIMIT)
                if path.name == "tokenizer_config.json":
                    _check_named_files(path, parsed)
            else:
                checked_size(path, SUPPORT_FILE_LIMIT, kind)


def _check_named_files(path: Path, config: Any) -> None:
    if not isinstance(config, dict):
        raise FatalError(f"{path} holds {type(config).__name__}, not a JSON object; {DAMAGED}")
    for key, value in config.items():
        if key.endswith("_file") and value is not None and not is_plain_name(value):
            raise FatalError(
                f"{path}: {key} {value!r:.80} is not the name of a file in {path.parent}; a "
                "predictor reads only its own files"
            )


def check_tokenizer(
    directory: Path, built: BuiltModel, encoder: Encoder, manifest: dict[str, Any]
) -> None:
    """The loaded tokenizer fits what was saved and the backbone it feeds."""
    tokenizer = built.tokenizer
    folder = directory / "tokenizer"
    size = len(tokenizer)
    saved = manifest["encoder"].get("vocabulary")
    if saved is not None and saved != size:
        raise FatalError(
            f"{folder}: the tokenizer has {size} tokens, but predictor.json says it was saved "
            f"with {saved} (encoder.vocabulary); a file of {folder} is missing or altered: "
            "train or save the predictor again"
        )
    backbone = getattr(built.module, "backbone", None)
    embeddings = backbone.get_input_embeddings() if backbone is not None else None
    rows = getattr(embeddings, "num_embeddings", None)
    if isinstance(rows, int) and size > rows:
        raise FatalError(
            f"{folder}: the tokenizer has {size} tokens, but {directory / 'backbone'}'s "
            f"embedding table has {rows} rows; the two do not belong together: {DAMAGED}"
        )
    positions = getattr(getattr(backbone, "config", None), "max_position_embeddings", None)
    length = encoder.input_shape[0]
    if isinstance(positions, int) and length > positions:
        raise FatalError(
            f"{directory / 'predictor.json'}: encoder.max_length {length} is more than the "
            f"{positions} positions of {directory / 'backbone' / 'config.json'}; {DAMAGED}"
        )
