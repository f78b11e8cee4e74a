"""A frozen backbone's tensors lent to many models unchanged, and the digest of their
content, so that a predictor stores them once (``tunelab.results.backbones``).

A model built with ``share_backbone`` (a linear probe), or loaded from a store of frozen
backbones, is marked with the tensors it was lent. ``frozen_part`` gives them back only
while the model still holds exactly those tensors, unchanged (an in-place update, such as
an optimizer step or merged LoRA weights, raises a tensor's version): anything that
trained is never mistaken for the frozen backbone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch
from torch import nn

_ATTRIBUTE = "_tunelab_lent"


@dataclass
class Digest:
    """The content digest of one set of lent tensors, computed once and shared by every
    model they are lent to."""

    value: str | None = None


@dataclass
class Lent:
    """The tensors a model was lent (by state-dict name) and their versions when lent."""

    tensors: dict[str, torch.Tensor]
    versions: dict[str, int]
    digest: Digest = field(default_factory=Digest)


def mark_lent(module: nn.Module, names: set[str], digest: Digest | None = None) -> None:
    """Record that ``module``'s tensors ``names`` are lent, unchanged, as they are now."""
    state = module.state_dict(keep_vars=True)
    tensors = {name: state[name] for name in names}
    versions = {name: tensor._version for name, tensor in tensors.items()}
    setattr(module, _ATTRIBUTE, Lent(tensors, versions, digest or Digest()))


def frozen_part(module: nn.Module) -> tuple[str, dict[str, torch.Tensor]] | None:
    """The digest and tensors (by state-dict name) of the frozen backbone ``module`` was
    lent, or None when it was lent none or any of them changed since."""
    lent = getattr(module, _ATTRIBUTE, None)
    if not isinstance(lent, Lent) or not lent.tensors:
        return None
    state = module.state_dict(keep_vars=True)
    for name, tensor in lent.tensors.items():
        if state.get(name) is not tensor or tensor._version != lent.versions[name]:
            return None
    if lent.digest.value is None:
        lent.digest.value = content_digest(lent.tensors)
    return lent.digest.value, lent.tensors


def content_digest(tensors: dict[str, torch.Tensor]) -> str:
    """A SHA-256 of the tensors' names, types, shapes and bytes."""
    hasher = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        hasher.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}\0".encode())
        hasher.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return hasher.hexdigest()
