"""``py:module:function`` (your own architecture) and ``file:PATH.safetensors`` (weights).

A ``py:`` function returns an ``nn.Module``; it is called with the entries of
``model.options`` plus ``num_outputs`` and ``input_shape`` where its signature takes them.

A ``file:`` checkpoint holds weights for a builtin or ``py:`` architecture. Checkpoints that
tunelab writes carry the architecture in their safetensors metadata; others need
``model.architecture``. Tensors whose shapes differ (usually the head, when the number of
classes changed) are left freshly initialized and listed in the notes.

A ``py:`` architecture that a file names (a checkpoint's metadata, ``predictor.json``), not
the config, is imported only when the user trusts the file: see ``tunelab.models.trust``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from tunelab.config import ModelConfig
from tunelab.errors import ConfigError
from tunelab.models.base import BuiltModel, ModelRequest
from tunelab.models.builtin import builtin_options, make_builtin
from tunelab.models.trust import NamedInFile, allow_function, allow_named_code, check_module

SPEC_METADATA_KEY = "tunelab.spec"


def _import_module(name: str) -> Any:
    """Import ``name``; a module missing from ``sys.path`` is also looked for in the working
    directory, like ``python -m`` does (the ``tunelab`` script does not put it on the path),
    so that relative ``py:`` names resolve as relative file paths do."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        here = str(Path.cwd())
        top = name.split(".")[0]
        if exc.name != top or here in sys.path or "" in sys.path:
            raise
        sys.path.append(here)  # after installed packages: never shadows them
        return importlib.import_module(name)


def import_function(target: str, *, field: str) -> Any:
    """Import ``module:function`` (or ``module.function``) with a clear error."""
    module_name, sep, attr = target.partition(":")
    if not sep:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"{field}: {target!r} must look like 'package.module:function'")
    try:
        module = _import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"{field}: cannot import module {module_name!r} ({exc}); put {module_name}.py "
            "in the directory tunelab runs in, install it, or add its folder to PYTHONPATH"
        ) from None
    if not hasattr(module, attr):
        raise ConfigError(f"{field}: module {module_name!r} has no attribute {attr!r}")
    return getattr(module, attr)


def call_py_model(target: str, options: dict[str, Any], request: ModelRequest) -> nn.Module:
    """Import and call a ``py:`` architecture named in the user's config."""
    module = _call(import_function(target, field="model.source"), options, request)
    if not isinstance(module, nn.Module):
        raise ConfigError(
            f"model.source: py:{target} returned {type(module).__name__}, not a torch nn.Module"
        )
    return module


def _call(function: Any, options: dict[str, Any], request: ModelRequest) -> Any:
    kwargs = dict(options)
    params = inspect.signature(function).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for name, value in (("num_outputs", request.num_outputs), ("input_shape", request.input_shape)):
        if takes_any or name in params:
            kwargs.setdefault(name, value)
    return function(**kwargs)


def _call_named(
    target: str, options: Any, request: ModelRequest, named_in: NamedInFile
) -> nn.Module:
    """Import and call an architecture named inside a file: only if trusted and allowed."""
    name = allow_named_code(target, options, named_in)
    function = import_function(name, field=f"{named_in.path} ({named_in.part})")
    allow_function(function, target, named_in)
    return check_module(_call(function, options, request), target, named_in)


def make_py(
    target: str,
    options: dict[str, Any],
    request: ModelRequest,
    *,
    named_in: NamedInFile | None = None,
) -> BuiltModel:
    """Build a ``py:`` architecture; ``named_in`` when a file, not the config, names it."""
    if named_in is None:
        module = call_py_model(target, options, request)
    else:
        module = _call_named(target, options, request, named_in)
    spec = {
        "kind": "py",
        "target": target,
        "options": options,
        "input_shape": list(request.input_shape),
        "num_outputs": request.num_outputs,
    }
    return BuiltModel(module=module, spec=spec)


def load_py(target: str, cfg: ModelConfig, request: ModelRequest) -> BuiltModel:
    return make_py(target, dict(cfg.options), request)


def rebuild_py(spec: dict[str, Any], directory: Path, *, trust_code: bool) -> BuiltModel:
    """The architecture ``predictor.json`` names: code, so only with ``trust_code``."""
    named_in = NamedInFile(
        path=str(directory / "predictor.json"),
        part="its model spec",
        trusted=trust_code,
        fix="pass --trust-code (trust_code=True to tunelab.load_predictor)",
    )
    request = ModelRequest(tuple(spec["input_shape"]), spec["num_outputs"], "")
    return make_py(spec["target"], spec.get("options", {}), request, named_in=named_in)


def weights_file(path_text: str) -> Path:
    """The path of a ``file:`` checkpoint, which must be a ``.safetensors`` file."""
    path = Path(path_text)
    if not path.is_file():
        raise ConfigError(f"model.source: weights file {path_text!r} does not exist")
    if path.suffix != ".safetensors":
        raise ConfigError(
            f"model.source: {path_text!r} is not a .safetensors file; tunelab never unpickles "
            "weights. Convert it with safetensors.torch.save_file(model.state_dict(), PATH)"
        )
    return path


def load_file_weights(path_text: str, cfg: ModelConfig, request: ModelRequest) -> BuiltModel:
    path = weights_file(path_text)
    saved = read_spec(path)
    built = _architecture(saved, cfg, request, path_text)
    notes = load_matching(built.module, load_file(str(path)), origin=path_text)
    if request.scratch:
        # the tensors still load (a checkpoint that fits nothing fails here all the same),
        # but the scratch strategy re-initializes them before training: none is used
        notes = [
            f"finetuning.strategy scratch: {path_text} gives the architecture; its weights "
            "are re-initialized, not used"
        ]
    built.notes.extend(notes)
    return built


def _architecture(
    saved: dict[str, Any] | None, cfg: ModelConfig, request: ModelRequest, path: str
) -> BuiltModel:
    if cfg.architecture is not None:
        prefix, _, value = cfg.architecture.partition(":")
        if prefix == "builtin":
            return make_builtin(value, builtin_options(cfg), request)
        return make_py(value, dict(cfg.options), request)
    if saved is None:
        raise ConfigError(
            f"model.architecture: {path!r} has no tunelab metadata, so the architecture is "
            "unknown; set model.architecture to e.g. 'builtin:mlp' or 'py:pkg.module:build'"
        )
    if saved["kind"] == "builtin":
        # batch_norm.enabled is honoured even when the checkpoint differs: the tensors that
        # still fit load, the rest are listed as newly initialized (so BN can be ablated)
        built = make_builtin(saved["name"], saved["options"], request)
        if saved.get("batch_norm", request.batch_norm) != request.batch_norm:
            built.notes.append(
                f"batch_norm.enabled is {request.batch_norm} but {path} was trained with "
                f"{saved.get('batch_norm')}; its BN tensors are not used"
            )
        return built
    if saved["kind"] == "py":
        target = str(saved.get("target"))
        named_in = _named_in_checkpoint(path, target, trusted=request.trust_code)
        return make_py(target, saved.get("options", {}), request, named_in=named_in)
    raise ConfigError(
        f"model.source: {path!r} holds a {saved['kind']!r} model; load it with that source"
    )


def _named_in_checkpoint(path: str, target: str, *, trusted: bool) -> NamedInFile:
    return NamedInFile(
        path=path,
        part="its tunelab.spec metadata",
        trusted=trusted,
        fix=(
            "pass --trust-code to tunelab train (trust_code=True to "
            "tunelab.flows.train.train), or name it in your config: "
            f"model.architecture: py:{target}"
        ),
    )


def check_checkpoint_code(cfg: ModelConfig, *, trust_code: bool) -> None:
    """Refuse, before a run starts, a checkpoint whose metadata names code that may not run
    (not trusted, or in the standard library).

    Building the model refuses it too; this only says so before a run directory exists,
    so that the same command with ``--trust-code`` can follow. Nothing is imported.
    """
    prefix, _, value = cfg.source.partition(":")
    path = Path(value)
    if prefix != "file" or cfg.architecture is not None:
        return
    if not path.is_file() or path.suffix != ".safetensors":
        return  # building the model says what is wrong with it
    saved = read_spec(path)
    if saved is not None and saved["kind"] == "py":
        target = str(saved.get("target"))
        named_in = _named_in_checkpoint(value, target, trusted=trust_code)
        allow_named_code(target, saved.get("options", {}), named_in)


def read_spec(path: Path) -> dict[str, Any] | None:
    """The architecture spec tunelab stores in a checkpoint's metadata, if any."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (OSError, SafetensorError) as exc:
        raise ConfigError(
            f"model.source: {path} is not a readable safetensors file ({exc}); it is damaged "
            "or not safetensors: write it again with safetensors.torch.save_file"
        ) from None
    text = metadata.get(SPEC_METADATA_KEY)
    if not text:
        return None
    try:
        spec = json.loads(text)
    except json.JSONDecodeError:
        spec = None
    if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str):
        raise ConfigError(
            f"model.source: {path}'s {SPEC_METADATA_KEY} metadata is not a tunelab "
            f"architecture spec ({_clip(text)}); set model.architecture to say what it holds"
        )
    return spec


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_matching(module: nn.Module, state: dict[str, torch.Tensor], *, origin: str) -> list[str]:
    """Copy every tensor whose name and shape match; report the rest."""
    own = module.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ConfigError(
            f"model.source: no tensor in {origin!r} matches the architecture "
            f"(it has {len(state)} tensors, e.g. {next(iter(state), 'none')!r}); check "
            "model.architecture and its options (width, depth)"
        )
    module.load_state_dict(usable, strict=False)
    skipped = sorted(set(own) - set(usable))
    notes = [f"loaded {len(usable)}/{len(own)} tensors from {origin}"]
    if skipped:
        notes.append(
            f"newly initialized (shape or name differs): {', '.join(skipped[:6])}"
            + (" ..." if len(skipped) > 6 else "")
        )
    return notes
