"""Rungs that cannot change the training, found from the config before anything trains.

Two recipes *resolve to the same training* when their measured fields are equal once every
technique that cannot act in them is reduced to "inactive": a technique is inactive when
its ``build`` returns nothing (it is off) or it declares itself idle for the config
(``Needs.idle``: early stopping whose patience outlasts the epochs and that restores
nothing; weight averaging that starts after the last epoch). A ladder step that resolves to
the same training as the step it is compared with did nothing there: it is reported with
the reason, and not trained (the time it would have taken is saved).

Example::

    steps = idle_steps(steps, facts, against_first=False)
    [(step.label, step.reason) for step in steps if step.idle]
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from tunelab.config import RunConfig
from tunelab.techniques import TECHNIQUES, DataFacts, TechniqueSpec, specs

if TYPE_CHECKING:
    from tunelab.ladder.rungs import Step

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


def idle_steps(steps: list[Step], facts: DataFacts, *, against_first: bool) -> list[Step]:
    """``steps`` with each one that resolves to the same training as the step it is
    compared with (the previous one; the first with ``against_first``) marked idle, with
    the reason (its recipe is kept, to say what it switches, and is not trained)."""
    out: list[Step] = []
    reference: tuple[Step, dict[str, Any]] | None = None
    for step in steps:
        if step.recipe is None or step.stage is not None:
            out.append(step)
            continue
        mine = resolved(step.recipe, facts)
        if reference is not None and mine == reference[1]:
            why = _why(step, reference[0], facts, against_first=against_first)
            out.append(dataclasses.replace(step, reason=why, idle=True))
            continue
        out.append(step)
        if reference is None or not against_first:
            reference = (step, mine)
    return out


def _why(step: Step, reference: Step, facts: DataFacts, *, against_first: bool) -> str:
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
