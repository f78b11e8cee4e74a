"""Frozen backbones stored once, by content: ``FOLDER/<digest>.safetensors``.

A linear probe's fold models, kept trials and ensemble members all hold the same frozen
backbone; each predictor folder then stores only what trained (its head) and names the
backbone's digest in ``predictor.json`` (``frozen_backbone``). The store is the artifact
folder's ``backbones/`` for a study's trials (shared by its workers and machines), and the
``backbones/`` folder inside ``final/`` for the final ensemble, so that ``final/`` copied
anywhere still loads. A digest is a file name tunelab makes, never a path read from a file.
"""

from __future__ import annotations

import os
import re
import uuid
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tunelab.errors import FatalError
from tunelab.models.lent import content_digest
from tunelab.results.files import WEIGHTS_LIMIT, checked_size

FOLDER = "backbones"
_DIGEST = re.compile(r"[0-9a-f]{64}")
_MEMORY_BACKBONES = 2
# loaded backbones by digest: every predictor of this process that names one shares its
# tensors (they never change), so fifteen fold models hold one backbone in memory
_memory: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()


class BackboneStore:
    """The frozen backbones in ``folder`` (made when the first one is stored)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, digest: str) -> Path:
        """The file of ``digest``; refused unless it is a digest tunelab writes."""
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise FatalError(
                f"frozen_backbone {digest!r} is not the SHA-256 digest of a stored backbone; "
                "the predictor is damaged: train or save it again"
            )
        return self.folder / f"{digest}.safetensors"

    def put(self, digest: str, tensors: dict[str, torch.Tensor]) -> None:
        """Store ``tensors`` under ``digest`` unless they are there already; the file
        appears whole or not at all (another process may store the same one meanwhile)."""
        target = self.path(digest)
        if target.is_file():
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / f".{digest}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        try:
            state = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
            save_file(state, str(temporary))
            temporary.replace(target)
        finally:
            temporary.unlink(missing_ok=True)

    def load(self, digest: str, *, owner: Path) -> dict[str, torch.Tensor]:
        """The backbone ``digest``, which the predictor in ``owner`` names."""
        if digest in _memory:
            _memory.move_to_end(digest)
            return _memory[digest]
        path = self.path(digest)
        if not path.is_file() or path.is_symlink():
            raise FatalError(
                f"{owner / 'predictor.json'} keeps its frozen backbone apart, in "
                f"{path.parent}, which does not hold {path.name}; copy the whole predictor "
                "folder it belongs to (final/, with its backbones/ folder), not one member"
            )
        checked_size(path, WEIGHTS_LIMIT, "a frozen backbone")
        tensors = read_tensors(path)
        if content_digest(tensors) != digest:  # its name is its content
            raise FatalError(
                f"{path} does not hold the backbone its name says (its content was altered "
                "or damaged); train or save the predictor again"
            )
        _memory[digest] = tensors
        while len(_memory) > _MEMORY_BACKBONES:
            _memory.popitem(last=False)
        return tensors


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, or a clear error for a damaged one."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise FatalError(
            f"{path} is not a readable safetensors file ({exc}); it is truncated or damaged: "
            "train or save the predictor again"
        ) from None
