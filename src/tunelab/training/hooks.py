"""What a technique can do to a training run: the one protocol the loop calls.

A technique (regularization, batch norm, augmentation, ...) subclasses ``Technique`` and
overrides only the hooks it needs; the loop calls each hook on every active technique, in
order, and knows none of them by name (as Lightning's trainer knows its callbacks). The
techniques themselves live in ``tunelab.techniques``; this module is the small set of types
they share with the loop, so neither package imports the other's internals.

The hooks, in the order the loop calls them::

    setup(fit)                       a fresh model, before the optimizer exists
    on_epoch_start(fit)              after model.train(), before the epoch's first batch
    on_batch(batch, fit) -> batch    a training batch (augment, mix)
    loss_term(outputs, batch, fit)   added to the batch's loss (L1)
    after_step(fit)                  after every optimizer step (EMA)
    on_epoch_end(record, fit)        the epoch's record is complete; may return a stop reason
    on_fit_end(fit)                  training is over (restore the best or averaged weights)
    describe()                       what it did, for metrics.json
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from tunelab.training.batching import Batches

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Features = tuple[torch.Tensor, ...]


@dataclass
class Batch:
    """One training batch as the techniques see it.

    Attributes:
        features: the model is called as ``model(*features)``.
        target: class codes or (standardized) regression targets.
        loss: set by a technique that changes what the batch is judged against (mixup
            mixes two targets): ``loss(outputs, loss_fn)``; None means
            ``loss_fn(outputs, target)``.
    """

    features: Features
    target: torch.Tensor
    loss: Callable[[torch.Tensor, LossFn], torch.Tensor] | None = None


@dataclass
class Held:
    """Weights the model holds at the end of training that came from one epoch."""

    epoch: int
    outputs: np.ndarray | None


@dataclass
class FitState:
    """The state of one training run, shared by the loop and the techniques.

    Set by the loop: ``model``, ``train``, ``device``, ``metric``, ``has_validation``,
    ``epochs``; later ``optimizer``, ``epoch`` and ``outputs`` (the validation outputs of
    the last epoch, float32 numpy, or None). Techniques adjust the optimizer settings in
    ``setup`` (``loss_fn``, ``weight_decay``, ``grad_clip``, ``lr_scales``), record what
    they did with ``note``, and say at the end which weights the model holds (``held``)
    or that they changed them (``weights_changed``).

    A technique that drives training itself (lr-find's sweep) reads ``loss``, the last
    training batch's loss (detached), in ``after_step``; sets ``schedule`` in ``setup``
    (the learning rate of each optimizer step, in place of ``train.schedule``); and sets
    ``stop`` to a reason to end training after the current step.
    """

    model: nn.Module
    train: Batches
    device: torch.device
    loss_fn: LossFn
    metric: str
    has_validation: bool
    epochs: int
    weight_decay: float = 0.0
    grad_clip: float | None = None
    lr_scales: dict[int, float] = field(default_factory=dict)
    optimizer: torch.optim.Optimizer | None = None
    epoch: int = -1
    outputs: np.ndarray | None = field(default=None, repr=False)
    held: Held | None = None
    monitor: str | None = None
    weights_changed: bool = False
    events: list[str] = field(default_factory=list)
    add_trainable: Callable[[list[nn.Parameter], float], None] | None = None
    loss: torch.Tensor | None = field(default=None, repr=False)
    schedule: Callable[[int], float] | None = None
    stop: str | None = None

    def note(self, event: str) -> None:
        """Record what a technique did (``history.json`` and ``metrics.json`` show it)."""
        self.events.append(event if self.epoch < 0 else f"epoch {self.epoch}: {event}")


class Technique:
    """Base class of every technique; each hook is a no-op until overridden.

    Attributes:
        name: the technique's config section (``regularization``, ``weight_averaging``).
    """

    name: ClassVar[str] = "technique"

    def setup(self, fit: FitState) -> None:
        """Change the fresh model and the optimizer settings before training."""

    def on_epoch_start(self, fit: FitState) -> None:
        """Called after ``model.train()`` at the start of every epoch."""

    def on_batch(self, batch: Batch, fit: FitState) -> Batch:
        """Transform a training batch (never a validation batch)."""
        return batch

    def loss_term(self, outputs: torch.Tensor, batch: Batch, fit: FitState) -> torch.Tensor | None:
        """A term added to the batch's training loss, or None."""
        return None

    def after_step(self, fit: FitState) -> None:
        """Called after every optimizer step."""

    def on_epoch_end(self, record: dict[str, Any], fit: FitState) -> str | None:
        """Look at the finished epoch; return a stop reason to end training."""
        return None

    def on_fit_end(self, fit: FitState) -> None:
        """Training is over; change the final weights if this technique owns them."""

    def describe(self) -> dict[str, Any]:
        """The settings in force and what happened, for ``metrics.json``."""
        return {}


def overriding(techniques: list[Technique], hook: str) -> list[Technique]:
    """The techniques that override ``hook`` (the loop skips the no-op calls per batch)."""
    default = getattr(Technique, hook)
    return [t for t in techniques if getattr(type(t), hook) is not default]
