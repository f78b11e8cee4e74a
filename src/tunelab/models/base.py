"""What every model source returns, and the registry of sources.

A source builds an ``nn.Module`` that maps a batch of encoded inputs to ``num_outputs``
values (class logits or regression outputs). Models have two parts, ``backbone`` and
``head``, so that transfer-learning strategies can treat them differently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from tunelab.config import ModelConfig


@dataclass(frozen=True)
class ModelRequest:
    """What the data and the run ask of the model.

    Attributes:
        input_shape: shape of one encoded example.
        num_outputs: classes, or 1 for regression.
        modality: tabular, image, signal or text.
        dropout: head dropout (regularization.dropout).
        batch_norm: BN layers inside builtin models (batch_norm.enabled).
        head_batch_norm: BatchNorm1d before the head (batch_norm.head).
        scratch: the weights are re-initialized after building (finetuning.strategy
            scratch), so pretrained weights lend only their architecture.
        trust_code: code named inside a file (a checkpoint's ``tunelab.spec`` metadata) may
            be imported and called: the user passed ``--trust-code``. A ``py:`` name in the
            config itself never needs it.
    """

    input_shape: tuple[int, ...]
    num_outputs: int
    modality: str
    dropout: float = 0.0
    batch_norm: bool = True
    head_batch_norm: bool = False
    scratch: bool = False
    trust_code: bool = False

    def head_spec(self) -> dict[str, Any]:
        return {"dropout": self.dropout, "batch_norm": self.head_batch_norm}


@dataclass
class BuiltModel:
    """A freshly built model.

    Attributes:
        module: the network; ``module(*features)`` returns (batch, num_outputs).
        tokenizer: a Hugging Face tokenizer for text models, else None.
        spec: JSON-able facts needed to rebuild the same architecture at predict time
            (without pretrained weights; the trained state dict is loaded on top).
        notes: what loading did worth telling the user (e.g. weights skipped for a new head).
    """

    module: nn.Module
    tokenizer: Any = None
    spec: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def save_extras(self, directory: Path) -> None:
        """Write what ``rebuild`` needs besides the state dict (tokenizer, backbone config)."""
        saver = getattr(self.module, "save_extras", None)
        if callable(saver):
            saver(directory)
        if self.tokenizer is not None:
            save_tokenizer(self.tokenizer, directory / "tokenizer")


# the files of the tokenizer saved last: the fold models of a study share one tokenizer,
# and writing its files again is much faster than saving it again
_saved_tokenizer: list[tuple[Any, dict[str, bytes]]] = []


def save_tokenizer(tokenizer: Any, folder: Path) -> None:
    """``tokenizer.save_pretrained(folder)``, from the files of its last save when it is
    the same tokenizer object."""
    if _saved_tokenizer and _saved_tokenizer[0][0] is tokenizer:
        for name, data in _saved_tokenizer[0][1].items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        return
    tokenizer.save_pretrained(str(folder))
    files = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    _saved_tokenizer[:] = [(tokenizer, files)]


SourceFn = Callable[[str, ModelConfig, ModelRequest], BuiltModel]


class RebuildFn(Protocol):
    """Rebuild the architecture from spec + the files in the predictor directory (no
    pretrained weights; the caller loads the trained state dict). ``trust_code``: code the
    spec names may be imported (``--trust-code``); rebuilders that name none ignore it."""

    def __call__(
        self, spec: dict[str, Any], directory: Path, *, trust_code: bool
    ) -> BuiltModel: ...
