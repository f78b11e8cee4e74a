"""The resolved config as it applies: which values a run does not use, and the values it uses
instead, written as YAML comments.

Every field has a default, so a resolved config shows values that do not apply:
``model.width: 128`` for a ``file:`` checkpoint that is width 32, ``data.image_size:
[32, 32]`` for scikit-learn's 8x8 grey digits (only ``images:`` folders are resized). Such a
line gets a comment that says so (``# not used: ...``) or what is used instead (``# from
the checkpoint: ...``). The notes are comments, not values, so ``config.yaml`` loads and
resumes exactly as before: what a run compares and replays is unchanged. A field that the
study searches, or that depends on one it searches (``train.momentum`` while
``train.optimizer`` is searched), gets no note.

Example::

    print(annotated_yaml(cfg, Facts(modality="image", example_shape=(1, 8, 8))))
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.config import RunConfig
from tunelab.data.base import RawData

Notes = dict[str, str]


@dataclass(frozen=True)
class Facts:
    """What the run found that the config does not say.

    Attributes:
        modality: the data's (tabular, image, signal, text), when known.
        example_shape: one array example's shape, (C, H, W) or (C, L), when known.
        checkpoint: the architecture spec a ``file:`` checkpoint's metadata holds, if any.
    """

    modality: str | None = None
    example_shape: tuple[int, ...] | None = None
    checkpoint: dict[str, Any] | None = None


def run_facts(cfg: RunConfig, raw: RawData) -> Facts:
    """The facts of a run that has loaded its data."""
    arrays = raw.modality in ("image", "signal")
    shape = tuple(int(n) for n in raw.inputs.shape[1:]) if arrays else None
    return Facts(modality=raw.modality, example_shape=shape, checkpoint=checkpoint_spec(cfg))


def check_facts(cfg: RunConfig) -> Facts:
    """The facts ``tunelab check`` finds cheaply: the data files are looked at (they must
    exist and be readable) and a ``file:`` checkpoint's metadata is read.

    Raises:
        ConfigError, DataError: a file is missing or unreadable, named.
    """
    from tunelab.data.peek import peek_data

    peek = peek_data(cfg.data)
    checkpoint = checkpoint_spec(cfg)
    return Facts(modality=peek.modality, example_shape=peek.example_shape, checkpoint=checkpoint)


def checkpoint_spec(cfg: RunConfig) -> dict[str, Any] | None:
    """The architecture spec in a ``file:`` checkpoint's metadata (None without one, or
    when ``model.architecture`` names the architecture).

    Raises:
        ConfigError: the file is missing, not safetensors, or unreadable.
    """
    prefix, _, value = cfg.model.source.partition(":")
    if prefix != "file" or _searched(cfg, "model.source"):
        return None
    from tunelab.models.local import read_spec, weights_file

    path = weights_file(value)
    return read_spec(path) if cfg.model.architecture is None else None


def write_resolved(path: Path, cfg: RunConfig, raw: RawData) -> None:
    """``config.yaml``: the resolved config with the notes of this run's data and model."""
    path.write_text(annotated_yaml(cfg, run_facts(cfg, raw)))


def notes(cfg: RunConfig, facts: Facts) -> Notes:
    """``{"model.width": "not used: ..."}``: one note per field whose value does not apply
    or is replaced (see the module docstring)."""
    found: Notes = {}
    for rule in RULES:
        found.update(rule(cfg, facts))
    searched = set(cfg.search.space)
    return {field: note for field, note in found.items() if field not in searched}


def annotated_yaml(cfg: RunConfig, facts: Facts) -> str:
    """``cfg.to_yaml()`` with each note as a comment on its field's line."""
    pending, section, lines = notes(cfg, facts), "", []
    for line in cfg.to_yaml().splitlines():
        top = re.match(r"^(\w+):", line)
        field = re.match(r"^  (\w+):", line)
        if top:
            section = top.group(1)
        elif field and (note := pending.get(f"{section}.{field.group(1)}")):
            line = f"{line}  # {note}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _searched(cfg: RunConfig, *fields: str) -> bool:
    return any(field in cfg.search.space for field in fields)


def _model(cfg: RunConfig, facts: Facts) -> Notes:
    model = cfg.model
    prefix = model.source.partition(":")[0]
    if _searched(cfg, "model.source", "model.architecture"):
        return {}
    found: Notes = {}
    if prefix != "hf":
        found["model.pooling"] = f"not used: {_pooling_reader(prefix)}"
    if prefix not in ("timm", "torchvision"):
        found["model.pretrained"] = "not used: timm: and torchvision: models only"
    if prefix != "file" and model.architecture is not None:
        found["model.architecture"] = "not used: only file: checkpoints read it"
    architecture = model.architecture if prefix == "file" else None
    if prefix == "file" and architecture is None and facts.checkpoint is not None:
        found.update(_checkpoint(facts.checkpoint))
    elif prefix not in ("builtin", "file") or (architecture or "").startswith("py:"):
        builder = architecture or model.source
        for field in ("width", "depth"):
            found[f"model.{field}"] = f"not used: builtin models only, not {builder}"
    return found


def _pooling_reader(prefix: str) -> str:
    if prefix == "st":
        return "st: models pool as they were trained"
    return "hf: models only"


def _checkpoint(spec: dict[str, Any]) -> Notes:
    """The architecture a ``file:`` checkpoint names, in place of the config's width/depth."""
    if spec.get("kind") == "builtin":
        options = spec.get("options") or {}
        shown = ", ".join(f"{k} {v}" for k, v in options.items() if k in ("width", "depth"))
        named = f"builtin:{spec.get('name')}" + (f" ({shown})" if shown else "")
        found = {"model.architecture": f"from the checkpoint: {named}"}
        for field in ("width", "depth"):
            if field in options:
                found[f"model.{field}"] = f"not used: the checkpoint's {field} is {options[field]}"
        return found
    named = f"{spec.get('kind')}:{spec.get('target') or spec.get('name')}"
    return {
        "model.architecture": f"from the checkpoint: {named}",
        "model.width": f"not used: the checkpoint's architecture is {named}",
        "model.depth": f"not used: the checkpoint's architecture is {named}",
    }


def _data(cfg: RunConfig, facts: Facts) -> Notes:
    data = cfg.data
    found: Notes = {}
    if data.test_source is not None:
        found["data.test_size"] = "not used: data.test_source gives the test rows"
    if facts.modality is not None and facts.modality != "text":
        found["data.max_length"] = f"not used: {facts.modality} data, not text"
    if data.source.startswith("images:") or facts.modality is None:
        return found  # an images: folder is decoded at image_size, in image_mode
    if facts.modality == "image" and facts.example_shape is not None:
        channels, *size = facts.example_shape
        shown = "x".join(map(str, size))
        found["data.image_size"] = f"not used: the arrays are {shown}, used as they are"
        found["data.image_mode"] = f"not used: the arrays have {_channels(channels)}"
    elif facts.modality != "image":
        for field in ("image_size", "image_mode"):
            found[f"data.{field}"] = f"not used: {facts.modality} data, not images"
    return found


def _channels(count: int) -> str:
    named = {1: "1 channel (grayscale)", 3: "3 channels (rgb)"}
    return named.get(count, f"{count} channels")


def _train(cfg: RunConfig, facts: Facts) -> Notes:
    train = cfg.train
    found: Notes = {}
    if not _searched(cfg, "train.optimizer"):
        if train.optimizer not in ("sgd", "rmsprop"):
            found["train.momentum"] = f"not used: {train.optimizer} has no momentum setting"
        if train.optimizer != "sgd":
            found["train.nesterov"] = f"not used: sgd only, not {train.optimizer}"
    if not _searched(cfg, "train.schedule") and train.schedule != "step":
        for field in ("step_every_epochs", "step_gamma"):
            found[f"train.{field}"] = f"not used: the {train.schedule} schedule"
    return found


RULES: tuple[Callable[[RunConfig, Facts], Notes], ...] = (_model, _data, _train)
