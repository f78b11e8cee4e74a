"""Model sources by prefix: builtin:, py:, file:, hf:, st:, timm:, torchvision:."""

from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path
from typing import Any

from torch import nn

from tunelab.config import ModelConfig
from tunelab.models.base import BuiltModel, ModelRequest, RebuildFn, SourceFn
from tunelab.models.classical import rebuild_head
from tunelab.models.lent import Digest, mark_lent
from tunelab.registry import MODEL_REBUILDERS, MODEL_SOURCES

__all__ = ["BuiltModel", "ModelRequest", "build_model", "rebuild_model"]


# sources whose loading reads weights from disk: worth keeping loaded for frozen backbones
_LOADED = ("hf", "st", "timm", "torchvision", "file")
_MEMORY_MODELS = 2
_loaded: OrderedDict[str, tuple[BuiltModel, Digest]] = OrderedDict()


def build_model(
    cfg: ModelConfig, request: ModelRequest, *, share_backbone: bool = False
) -> BuiltModel:
    """Build a fresh model (with pretrained weights where the source has them).

    ``share_backbone``: the caller never changes the backbone's tensors (a frozen backbone
    in eval mode: ``linear_probe``), so a pretrained model loaded earlier in this process
    lends them instead of being read from disk again; the head and every module object
    are new, as from a fresh build.
    """
    prefix, _, value = cfg.source.partition(":")
    source: SourceFn = MODEL_SOURCES.get(prefix, field="model.source")
    if not share_backbone or prefix not in _LOADED:
        return source(value, cfg, request)
    # the head's kind and C are not the backbone's: every trial of a probe study shares it
    key = cfg.model_dump_json(exclude={"head", "head_c"}) + repr(request)
    if key not in _loaded:
        _loaded[key] = (source(value, cfg, request), Digest())
    _loaded.move_to_end(key)
    while len(_loaded) > _MEMORY_MODELS:
        _loaded.popitem(last=False)
    return _lend_backbone(*_loaded[key])


def _lend_backbone(loaded: BuiltModel, digest: Digest) -> BuiltModel:
    """A copy of ``loaded`` whose backbone tensors are the same objects (not copied),
    marked as lent (a predictor stores them once: ``tunelab.results.backbones``)."""
    head = getattr(loaded.module, "head", None)
    own = {id(t) for t in (head.parameters() if isinstance(head, nn.Module) else ())}
    own |= {id(t) for t in (head.buffers() if isinstance(head, nn.Module) else ())}
    memo: dict[int, Any] = {id(loaded.tokenizer): loaded.tokenizer}
    for tensor in [*loaded.module.parameters(), *loaded.module.buffers()]:
        if id(tensor) not in own:
            memo[id(tensor)] = tensor
    module = copy.deepcopy(loaded.module, memo)
    lent = module.state_dict(keep_vars=True)
    mark_lent(module, {name for name, t in lent.items() if id(t) in memo}, digest)
    return BuiltModel(
        module=module,
        tokenizer=loaded.tokenizer,
        spec=copy.deepcopy(loaded.spec),
        notes=list(loaded.notes),
    )


def rebuild_model(spec: dict[str, Any], directory: Path, *, trust_code: bool = False) -> BuiltModel:
    """Rebuild a saved model's architecture (the caller loads the trained weights).

    Args:
        spec: the ``model`` entry of ``predictor.json``.
        directory: the predictor directory (a text model's ``backbone/`` and ``tokenizer/``).
        trust_code: import and call a ``py:`` architecture the spec names (``--trust-code``);
            without it such a spec is refused and nothing is imported.
    """
    rebuild: RebuildFn = MODEL_REBUILDERS.get(
        str(spec.get("kind")), field="predictor.json model.kind"
    )
    built = rebuild(spec, directory, trust_code=trust_code)
    rebuild_head(built.module, spec)  # a scikit-learn head saved as tensors (model.head hgb)
    return built
