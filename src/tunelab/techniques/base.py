"""What every technique module provides: a spec in the ``TECHNIQUES`` registry.

A technique is a named group of config fields with an off state (``docs/architecture.md``).
Its module registers one ``TechniqueSpec``: the config section it reads, where its set-up
runs among the others, the overrides that switch it off (what the ablation ladder flips),
and ``build``, which returns the plug-in the loop calls (``training/hooks.py``) or None
when it is off.

Example (a whole technique module)::

    class Cutout(Technique):
        name = "cutout"
        def on_batch(self, batch, fit): ...

    TECHNIQUES.register("cutout")(
        TechniqueSpec(name="cutout", order=45, off={"cutout.size": 0}, build=build)
    )
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tunelab.config import RunConfig
from tunelab.registry import Registry
from tunelab.training.hooks import Technique


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
class TechniqueSpec:
    """One technique as the registry knows it.

    Attributes:
        name: its config section (``regularization``).
        order: set-up order among the techniques (a fresh model is re-initialized before
            its layers are frozen, frozen before BN statistics are re-estimated).
        off: dotted config overrides that switch it off.
        build: the plug-in for one fit of ``cfg``, or None when the config has it off.
    """

    name: str
    order: int
    off: dict[str, Any] = field(default_factory=dict)
    build: Callable[[RunConfig, DataFacts], Technique | None] = lambda cfg, facts: None


TECHNIQUES: Registry[TechniqueSpec] = Registry("technique")
