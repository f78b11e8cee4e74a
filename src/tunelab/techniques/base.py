"""What every technique module provides: a spec in the ``TECHNIQUES`` registry.

A technique is a named group of config fields with an off state (``docs/architecture.md``).
Its module registers one ``TechniqueSpec``: the config section it reads, where its set-up
runs among the others, the overrides that switch it off (what the ablation ladder flips),
and ``build``, which returns the plug-in the loop calls (``training/hooks.py``) or None
when it is off.

It also declares what it needs (``Needs``): whether it changes a row's inputs every epoch (so
a frozen backbone's features cannot be computed once), what the model is built with, what
the model needs after training, for which models it does nothing, and when its config
leaves it nothing to do. The feature cache, fitting and the ladder ask these declarations
and name no technique, so a new technique is this one module plus its config section.

Example (a whole technique module)::

    class Cutout(Technique):
        name = "cutout"
        def on_batch(self, batch, fit): ...

    TECHNIQUES.register("cutout")(
        TechniqueSpec(
            name="cutout", order=45, off={"cutout.size": 0}, build=build,
            needs=Needs(changes_inputs=lambda cfg, model, head_only: "cutout.size masks "
                        "the raw inputs every epoch"),
        )
    )
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tunelab.config import RunConfig
from tunelab.registry import Registry
from tunelab.training.hooks import Technique

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class DataFacts:
    """What the techniques may need to know about the data and the built model.

    Attributes:
        task: binary, multiclass or regression.
        modality: tabular, image, signal or text.
        encoder: the fitted encoder (channel statistics, numeric columns).
        tokenizer: text models' tokenizer, else None.
    """

    task: str
    modality: str
    encoder: Any = None
    tokenizer: Any = None


@dataclass(frozen=True)
class FoldOutcome:
    """How one fold's training went, as the ladder recorded it.

    Attributes:
        epochs: the epochs trained.
        kept_epochs: the epochs up to the weights the fit ended with.
        stop_reason: why training stopped (``patience_exhausted``, ``max_epochs``, ...).
    """

    epochs: int
    kept_epochs: int
    stop_reason: str | None


def _nothing(*args: Any) -> None:
    return None


def _no_fields(cfg: RunConfig) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Needs:
    """What a technique needs of a fit; every answer defaults to "nothing".

    Attributes:
        changes_inputs: ``(cfg, model, head_only)``: why, as configured, the inputs the
            backbone sees (or the backbone itself) change from epoch to epoch, so its
            features cannot be computed once and cached; ``head_only`` is true when only
            the head trains on them (a linear probe), where feature-level changes still
            apply to the cached features. None when they can be cached.
        freezes_backbone: ``cfg``: ``"always"`` when the backbone never trains,
            ``"until_unfrozen"`` when it trains only after some epochs, else None.
        model_request: ``cfg``: the fields of ``models.ModelRequest`` the model is built
            with for this technique (head dropout, BN layers, fresh weights).
        after_fit: ``model``: what the trained model needs before it is saved (adapters
            merged into the weights).
        does_nothing_for: ``(cfg, model)``: why the technique does nothing for this model
            (None for a tree model, which builds no network), or None when it acts.
        idle: ``cfg``: why the technique, though switched on, cannot change this training
            (e.g. a patience longer than ``train.epochs``), or None. The ladder reports such
            a rung as doing nothing without training it.
        idle_after: ``(cfg, outcomes)``: why, judging by how its folds trained, the
            technique did nothing (early stopping that never stopped and kept the last
            epoch), or None.
        limited: ``cfg``: why ``train.epochs`` is too few for the technique to show all it
            does (it still acts in part), with the epochs that would be enough; or None.
        trees_take: boosted trees read the technique's settings (the others act on a
            network's training).
        fields: the dotted prefixes of the config fields that belong to the technique: its
            ladder rung switches them, tuned values included. Default: its section.
    """

    changes_inputs: Callable[[RunConfig, nn.Module, bool], str | None] = _nothing
    freezes_backbone: Callable[[RunConfig], str | None] = _nothing
    model_request: Callable[[RunConfig], dict[str, Any]] = _no_fields
    after_fit: Callable[[nn.Module], None] = _nothing
    does_nothing_for: Callable[[RunConfig, nn.Module | None], str | None] = _nothing
    idle: Callable[[RunConfig], str | None] = _nothing
    idle_after: Callable[[RunConfig, list[FoldOutcome]], str | None] = _nothing
    limited: Callable[[RunConfig], str | None] = _nothing
    trees_take: bool = False
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class TechniqueSpec:
    """One technique as the registry knows it.

    Attributes:
        name: its config section (``regularization``).
        order: set-up order among the techniques (a fresh model is re-initialized before
            its layers are frozen, frozen before BN statistics are re-estimated).
        off: dotted config overrides that switch it off.
        build: the plug-in for one fit of ``cfg``, or None when the config has it off.
        needs: what it needs of a fit (see ``Needs``).
    """

    name: str
    order: int
    off: dict[str, Any] = field(default_factory=dict)
    build: Callable[[RunConfig, DataFacts], Technique | None] = lambda cfg, facts: None
    needs: Needs = field(default_factory=Needs)

    @property
    def fields(self) -> tuple[str, ...]:
        """The dotted prefixes of the config fields its ladder rung switches."""
        return self.needs.fields or (self.name,)

    def owns(self, dotted: str) -> bool:
        """Whether the config field ``dotted`` (``regularization.dropout``) belongs to it."""
        return any(dotted == prefix or dotted.startswith(prefix + ".") for prefix in self.fields)


TECHNIQUES: Registry[TechniqueSpec] = Registry("technique")
