"""The techniques as plug-ins: every module in this package registers one technique.

``build_techniques(cfg, facts)`` returns the active ones in set-up order; the training loop
calls their hooks without knowing any of them. Adding a technique is adding a module here
(and its config section): modules are found by walking the package, so nothing else is
edited.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from torch import nn

from tunelab.config import RunConfig
from tunelab.techniques.base import TECHNIQUES, DataFacts, FoldOutcome, Needs, TechniqueSpec
from tunelab.training.hooks import Technique

__all__ = [
    "TECHNIQUES",
    "DataFacts",
    "FoldOutcome",
    "Needs",
    "TechniqueSpec",
    "after_fit",
    "backbone_frozen",
    "build_techniques",
    "describe",
    "model_request",
    "specs",
    "why_features_change",
]

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")


def specs() -> list[TechniqueSpec]:
    """Every registered technique, in set-up order."""
    return sorted((TECHNIQUES.get(name) for name in TECHNIQUES), key=lambda s: s.order)


def build_techniques(cfg: RunConfig, facts: DataFacts) -> list[Technique]:
    """The plug-ins of the techniques that ``cfg`` has on, in set-up order.

    Raises:
        ConfigError: a setting that does not fit the data (e.g. an augmentation for
            another modality; the message names those that fit).
    """
    built = (spec.build(cfg, facts) for spec in specs())
    return [technique for technique in built if technique is not None]


def describe(active: list[Technique], events: list[str]) -> dict[str, Any]:
    """For ``metrics.json``: each technique's settings in force ("off" when it is off), and
    what the techniques did."""
    on = {technique.name: technique.describe() for technique in active}
    block: dict[str, Any] = {spec.name: on.get(spec.name, "off") for spec in specs()}
    block["events"] = list(events)
    return block


# -- what the techniques declare (``Needs``), asked by the stages that must not name them ----


def model_request(cfg: RunConfig) -> dict[str, Any]:
    """The ``ModelRequest`` fields the techniques build the model with (head dropout, BN
    layers, fresh weights)."""
    fields: dict[str, Any] = {}
    for spec in specs():
        fields.update(spec.needs.model_request(cfg))
    return fields


def after_fit(model: nn.Module) -> None:
    """What the trained model needs before it is saved (LoRA adapters merged)."""
    for spec in specs():
        spec.needs.after_fit(model)


def backbone_frozen(cfg: RunConfig) -> str | None:
    """``"always"`` when the backbone never trains, ``"until_unfrozen"`` when it trains
    only after some epochs, else None."""
    return next((how for spec in specs() if (how := spec.needs.freezes_backbone(cfg))), None)


def why_features_change(cfg: RunConfig, model: nn.Module, *, head_only: bool) -> str | None:
    """Why the backbone's features of a row change from epoch to epoch (a technique that
    changes the raw inputs or the backbone), so they cannot be cached; None when no active
    technique does."""
    return next(
        (why for spec in specs() if (why := spec.needs.changes_inputs(cfg, model, head_only))),
        None,
    )
