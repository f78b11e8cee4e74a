"""``py:module:function`` (your own architecture) and ``file:PATH.safetensors`` (weights).

A ``py:`` function returns an ``nn.Module``; it is called with the entries of
``model.options`` plus ``num_outputs`` and ``input_shape`` where its signature takes them.

A ``file:`` checkpoint holds weights for a builtin or ``py:`` architecture. Checkpoints that
tunelab writes carry the architecture in their safetensors metadata; others need
``model.architecture``. Tensors whose shapes differ (usually the head, when the number of
classes changed) are left freshly initialized and listed in the notes.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from tunelab.config import ModelConfig
from tunelab.errors import ConfigError
from tunelab.models.base import MODEL_REBUILDERS, MODEL_SOURCES, BuiltModel, ModelRequest
from tunelab.models.builtin import builtin_options, make_builtin

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
    function = import_function(target, field="model.source")
    kwargs = dict(options)
    params = inspect.signature(function).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for name, value in (("num_outputs", request.num_outputs), ("input_shape", request.input_shape)):
        if takes_any or name in params:
            kwargs.setdefault(name, value)
    module = function(**kwargs)
    if not isinstance(module, nn.Module):
        raise ConfigError(
            f"model.source: py:{target} returned {type(module).__name__}, not a torch nn.Module"
        )
    return module


def make_py(target: str, options: dict[str, Any], request: ModelRequest) -> BuiltModel:
    module = call_py_model(target, options, request)
    spec = {
        "kind": "py",
        "target": target,
        "options": options,
        "input_shape": list(request.input_shape),
        "num_outputs": request.num_outputs,
    }
    return BuiltModel(module=module, spec=spec)


@MODEL_SOURCES.register("py")
def load_py(target: str, cfg: ModelConfig, request: ModelRequest) -> BuiltModel:
    return make_py(target, dict(cfg.options), request)


@MODEL_REBUILDERS.register("py")
def rebuild_py(spec: dict[str, Any], directory: Path) -> BuiltModel:
    request = ModelRequest(tuple(spec["input_shape"]), spec["num_outputs"], "")
    return make_py(spec["target"], spec["options"], request)


@MODEL_SOURCES.register("file")
def load_file_weights(path_text: str, cfg: ModelConfig, request: ModelRequest) -> BuiltModel:
    path = Path(path_text)
    if not path.is_file():
        raise ConfigError(f"model.source: weights file {path_text!r} does not exist")
    if path.suffix != ".safetensors":
        raise ConfigError(
            f"model.source: {path_text!r} is not a .safetensors file; tunelab never unpickles "
            "weights. Convert it with safetensors.torch.save_file(model.state_dict(), PATH)"
        )
    saved = read_spec(path)
    built = _architecture(saved, cfg, request, path_text)
    notes = load_matching(built.module, load_file(str(path)), origin=path_text)
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
        return make_py(saved["target"], saved["options"], request)
    raise ConfigError(
        f"model.source: {path!r} holds a {saved['kind']!r} model; load it with that source"
    )


def read_spec(path: Path) -> dict[str, Any] | None:
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    text = metadata.get(SPEC_METADATA_KEY)
    return json.loads(text) if text else None


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
