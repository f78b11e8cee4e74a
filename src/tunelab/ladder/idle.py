"""Rungs that cannot change the training, found from the config before anything trains.

Two recipes *resolve to the same training* when their measured fields are equal once every
technique that cannot act in them is reduced to "inactive": a technique is inactive when
its ``build`` returns nothing (it is off) or it declares itself idle for the config
(``Needs.idle``: early stopping whose patience outlasts the epochs and that restores
nothing; weight averaging that starts after the last epoch). A ladder step that resolves to
the same training as the step it is compared with did nothing there: it is reported with
the reason, and not trained (the time it would have taken is saved).

Example::

    for index, reason in idle_reasons(steps, facts, against_first=False).items():
        print(steps[index].label, "did nothing here:", reason)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from tunelab.config import RunConfig
from tunelab.techniques import TECHNIQUES, DataFacts, TechniqueSpec, specs

# config sections that do not change what a variant measures: its name, the study, the
# study's cross-validation (the ladder has its own splits), and the ladder itself
NOT_MEASURED = ("name", "search", "cv", "ladder")
INACTIVE = "inactive"


def measured_fields(cfg: RunConfig) -> dict[str, Any]:
    """The config as JSON values, without the sections that do not change a fit."""
    dumped = cfg.model_dump(mode="json")
    return {k: v for k, v in dumped.items() if k not in NOT_MEASURED}


def flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config values as dotted names (``{"train.lr": 0.01}``)."""
    found: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            found.update(flat(value, f"{prefix}{key}."))
        else:
            found[f"{prefix}{key}"] = value
    return found


def acts(spec: TechniqueSpec, cfg: RunConfig, facts: DataFacts) -> bool:
    """Whether the technique can change a fit of ``cfg`` (on, and not idle)."""
    return spec.needs.idle(cfg) is None and spec.build(cfg, facts) is not None


def resolved(cfg: RunConfig, facts: DataFacts) -> dict[str, Any]:
    """What a fit of ``cfg`` trains with: its measured fields, each technique that cannot
    act reduced to ``inactive`` (its own fields dropped)."""
    fields = flat(measured_fields(cfg))
    for spec in specs():
        if not acts(spec, cfg, facts):
            fields = {name: value for name, value in fields.items() if not spec.owns(name)}
            fields[spec.name] = INACTIVE
    return fields


class Rung(Protocol):
    """What the check reads of a ladder step (``rungs.Step``)."""

    @property
    def name(self) -> str: ...

    @property
    def label(self) -> str: ...

    @property
    def recipe(self) -> RunConfig | None: ...

    @property
    def stage(self) -> object | None: ...


def idle_reasons(steps: Sequence[Rung], facts: DataFacts, *, against_first: bool) -> dict[int, str]:
    """The index of each step that resolves to the same training as the step it is
    compared with (the previous one; the first with ``against_first``), with the reason:
    the ladder marks it idle (its recipe is kept, to say what it switches, and is not
    trained)."""
    idle: dict[int, str] = {}
    reference: tuple[Rung, dict[str, Any]] | None = None
    for index, step in enumerate(steps):
        if step.recipe is None or step.stage is not None:
            continue
        mine = resolved(step.recipe, facts)
        if reference is not None and mine == reference[1]:
            idle[index] = _why(step, reference[0], facts, against_first=against_first)
            continue
        if reference is None or not against_first:
            reference = (step, mine)
    return idle


def _why(step: Rung, reference: Rung, facts: DataFacts, *, against_first: bool) -> str:
    on = reference.recipe if against_first else step.recipe
    assert on is not None
    spec = TECHNIQUES.get(step.name) if step.name in TECHNIQUES else None
    if spec is not None:
        declared = spec.needs.idle(on)
        if declared is not None:
            return declared
    assert reference.recipe is not None and step.recipe is not None
    mine, theirs = flat(measured_fields(step.recipe)), flat(measured_fields(reference.recipe))
    changed = sorted(
        name for name in mine.keys() | theirs.keys() if mine.get(name) != theirs.get(name)
    )
    return (
        f"it resolves to the same training as {reference.label}: no technique that acts "
        f"here reads what it switches ({', '.join(changed)})"
    )


def limits(final: RunConfig, measured: list[TechniqueSpec]) -> list[str]:
    """What the final recipe's epochs are too few for the measured techniques to show
    (each declares it: ``Needs.limited``), one line each."""
    return [
        f"{spec.name}: {why}" for spec in measured if (why := spec.needs.limited(final)) is not None
    ]
