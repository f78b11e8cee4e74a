"""Which variants the ladder measures, in which order, and why a rung is skipped.

The *final recipe* is the config with the study's best parameters applied. The ladder climbs
to it from the *baseline*: the config's own hyperparameters with every measured technique
switched off (``spec.off``; for transfer learning that is ``strategy: scratch``, so the
baseline shows what pretraining is worth). Each rung switches one more thing on:

    baseline → + tuned → + regularization → + early_stopping → + batch_norm
             → + augmentation → + finetuning → + weight_averaging → + ensemble

The techniques come from the registry (``techniques.specs()``): one added there appears here
without an edit, after those in ``PRACTITIONER_ORDER``. A rung is skipped, with the reason,
when its technique is off in the final recipe or does nothing for this model (what the
technique declares: ``Needs.does_nothing_for``; a tree model takes only the techniques
that declare ``trees_take``); a technique that is not measured (skipped, or left out of
``ladder.rungs``) keeps its final-recipe state in every variant, so the top rung is the
final recipe itself.

Each rung brings its own tuned values: a study's parameter belongs to the technique whose
fields hold it (``spec.fields``: ``regularization.dropout`` arrives on ``+ regularization``),
and the others (``train.lr``, ``train.optimizer``, ``model.depth``) on ``+ tuned
hyperparameters``. A rung whose recipe resolves to the same training as the rung below
(``ladder.idle``: a technique its config leaves nothing to do) is reported as doing nothing,
with the reason, and is not trained.

The leave-one-out view measures the final recipe with each technique switched off in turn.

Example::

    untuned, final = recipes(cfg, params)
    steps = plan(cfg, params, probe).ladder
    [(step.label, step.reason) for step in steps]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tunelab.config import RunConfig, apply_params
from tunelab.errors import ConfigError
from tunelab.ladder.idle import idle_reasons, limits
from tunelab.registry import Registry, did_you_mean
from tunelab.techniques import DataFacts, TechniqueSpec, specs

if TYPE_CHECKING:
    from torch import nn

    from tunelab.evaluation.prepare import Prepared

TUNED = "tuned"
BASELINE = "baseline"
FINAL = "final"

# the order a practitioner climbs (the issue's): names not registered are left out, and a
# technique that is registered but not named here comes after the named ones
PRACTITIONER_ORDER = (
    TUNED,
    "regularization",
    "early_stopping",
    "batch_norm",
    "augmentation",
    "finetuning",
    "weight_averaging",
    "ensemble",
)


@dataclass(frozen=True)
class StageContext:
    """What a stage rung gets to measure itself on top of a recipe.

    Attributes:
        recipe: the recipe of the rung below (the stage acts on top of it).
        prepared: the loaded data.
        splits: the ladder's (train, validation) rows; the stage's scores are per split,
            in this order, so they pair with the other rungs'.
        run_dir: the run directory (the study, its artifacts).
    """

    recipe: RunConfig
    prepared: Prepared
    splits: list[tuple[np.ndarray, np.ndarray]]
    run_dir: Path


@dataclass(frozen=True)
class Stage:
    """A rung that is a stage on top of the recipe rather than a config switch (ensembles).

    This is the extension point for stages built later: register a ``Stage`` whose
    ``measure`` returns one score per split of the context (the stage fitted on that split's
    training rows, scored on its validation rows), and the ladder measures it like any rung.

    Attributes:
        name: its name in ``ladder.rungs``.
        measure: the stage's fold scores, or None while the stage does not exist.
        missing: the reason the rung is skipped while ``measure`` is None.
    """

    name: str
    measure: Callable[[StageContext], Sequence[float]] | None = None
    missing: str = "not available"


STAGES: Registry[Stage] = Registry("ladder stage")


def _ensemble(context: StageContext) -> Sequence[float]:
    from tunelab.ensembles.stage import measure

    return measure(context)


STAGES.register("ensemble")(Stage(name="ensemble", measure=_ensemble))


@dataclass(frozen=True)
class Probe:
    """What the final recipe's freshly built model tells about which rungs apply.

    Attributes:
        facts: what the techniques' ``build`` is given for a fit of the final recipe.
        model: that recipe's freshly built network; None for a tree model.
        trees: for a tree model (``sklearn:hgb``), the techniques it takes (the others
            act on a network's training); None for a network.
    """

    facts: DataFacts
    model: nn.Module | None = None
    trees: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Step:
    """One row of a view: a variant to measure, or a rung skipped with the reason.

    Attributes:
        name: ``baseline``, ``tuned``, a technique's section name, a stage's name; in the
            leave-one-out view ``final`` or the technique switched off.
        label: how tables show it (``+ regularization``, ``without augmentation``).
        recipe: the variant's config; None when skipped.
        reason: why the rung is skipped, or did nothing; None when it is measured.
        stage: the stage measured on top of ``recipe``, for a stage's rung.
        idle: the rung did nothing here: its recipe resolves to the same training as the
            step it is compared with (``reason`` says why); it is not trained.
    """

    name: str
    label: str
    recipe: RunConfig | None = None
    reason: str | None = None
    stage: Stage | None = None
    idle: bool = False


@dataclass(frozen=True)
class Plan:
    """Both views of one ladder (``leave_one_out`` empty when it is switched off), and
    what the ladder's epochs are too few to show (``warnings``)."""

    final: RunConfig
    ladder: list[Step]
    leave_one_out: list[Step]
    warnings: list[str] = field(default_factory=list)


def rung_names(cfg: RunConfig) -> list[str]:
    """The rungs after the baseline: ``ladder.rungs`` checked, or the default order.

    Raises:
        ConfigError: a name that is no rung (the message lists the valid ones).
    """
    valid = _default_order()
    chosen = cfg.ladder.rungs
    if chosen is None:
        return valid
    for name in chosen:
        if name == BASELINE:
            raise ConfigError(
                "ladder.rungs: 'baseline' is always the first rung (every technique off); "
                "list only the rungs after it"
            )
        if name not in valid:
            hint = did_you_mean(name, valid)
            raise ConfigError(
                f"ladder.rungs: got {name!r}, which is no rung; valid: {', '.join(valid)}.{hint}"
            )
    stages = [i for i, name in enumerate(chosen) if name in STAGES]
    if stages and stages[0] < len(chosen) - len(stages):
        raise ConfigError(
            f"ladder.rungs: {chosen[stages[0]]!r} is a stage on top of the recipe, so it comes "
            f"after every recipe rung; move it to the end: {_moved_to_end(chosen)}"
        )
    return list(chosen)


def _moved_to_end(chosen: list[str]) -> list[str]:
    return [n for n in chosen if n not in STAGES] + [n for n in chosen if n in STAGES]


def _default_order() -> list[str]:
    techniques = [spec.name for spec in specs()]
    stages = list(STAGES)
    known = [n for n in PRACTITIONER_ORDER if n == TUNED or n in techniques]
    added = [n for n in techniques if n not in PRACTITIONER_ORDER]
    ordered_stages = [n for n in PRACTITIONER_ORDER if n in stages]
    return [*known, *added, *ordered_stages, *(n for n in stages if n not in ordered_stages)]


def owner(dotted: str) -> str:
    """The rung a tuned parameter arrives on: the technique whose fields hold it
    (``spec.fields``), else ``tuned``."""
    return next((spec.name for spec in specs() if spec.owns(dotted)), TUNED)


def with_tuned(cfg: RunConfig, params: dict[str, Any] | None, rungs: set[str]) -> RunConfig:
    """``cfg`` with the tuned parameters of ``rungs`` (see ``owner``) and ``ladder.epochs``."""
    chosen = {k: v for k, v in (params or {}).items() if owner(k) in rungs}
    if cfg.ladder.epochs is not None:
        chosen["train.epochs"] = cfg.ladder.epochs
    return apply_params(cfg, chosen) if chosen else cfg


def recipes(cfg: RunConfig, params: dict[str, Any] | None) -> tuple[RunConfig, RunConfig]:
    """(untuned, final): the config with every tuned parameter but the ``tuned`` rung's
    (see ``owner``), and with every one; both with ``ladder.epochs`` when it is set."""
    techniques = {spec.name for spec in specs()}
    return with_tuned(cfg, params, techniques), with_tuned(cfg, params, {*techniques, TUNED})


def switched_off(cfg: RunConfig, names: Sequence[str]) -> RunConfig:
    """``cfg`` with the named techniques' off states applied."""
    overrides: dict[str, Any] = {}
    for spec in specs():
        if spec.name in names:
            overrides.update(spec.off)
    return apply_params(cfg, overrides) if overrides else cfg


def skip_reason(spec: TechniqueSpec, final: RunConfig, probe: Probe) -> str | None:
    """Why the technique's rung is skipped for the final recipe, or None when it is measured."""
    if probe.trees is not None and spec.name not in probe.trees:
        return (
            f"{final.model.source} is a tree model: {_title(spec.name)} acts on a network's "
            f"training (trees take {', '.join(map(_title, probe.trees)) or 'none'})"
        )
    if switched_off(final, [spec.name]) == final:
        fields = ", ".join(f"{name}: {_plain(value)}" for name, value in spec.off.items())
        return f"off in the final recipe ({fields})"
    if spec.build(final, probe.facts) is None:
        return f"nothing of {spec.name} is switched on in the final recipe"
    return spec.needs.does_nothing_for(final, probe.model)


def plan(cfg: RunConfig, params: dict[str, Any] | None, probe: Probe) -> Plan:
    """The steps of both views (pure: nothing is trained).

    Args:
        cfg: the config, with its ``ladder`` section.
        params: the study's best parameters (dotted names), or None without a study.
        probe: what the final recipe's model tells (see ``Probe``).

    Raises:
        ConfigError: ``ladder.rungs`` names no rung.
    """
    names = rung_names(cfg)
    untuned, final = recipes(cfg, params)
    by_name = {spec.name: spec for spec in specs()}
    reasons = {
        name: skip_reason(spec, final, probe) for name, spec in by_name.items() if name in names
    }
    reasons[TUNED] = _tuned_skip_reason(params, untuned, final) if TUNED in names else None
    measured = [name for name in names if name in by_name and reasons[name] is None]
    ladder = _climb(cfg, params, names, measured, reasons)
    leave_one_out = (
        _leave_one_out(names, untuned, final, reasons) if cfg.ladder.leave_one_out else []
    )
    if probe.trees is None:  # a tree model's epochs are boosting rounds: nothing to resolve
        ladder = _mark_idle(ladder, probe.facts, against_first=False)
        leave_one_out = _mark_idle(leave_one_out, probe.facts, against_first=True)
        warnings = limits(final, [by_name[name] for name in measured])
    else:
        warnings = []
    return Plan(final=final, ladder=ladder, leave_one_out=leave_one_out, warnings=warnings)


def _tuned_skip_reason(
    params: dict[str, Any] | None, untuned: RunConfig, final: RunConfig
) -> str | None:
    if params is None:
        return (
            "no study: nothing was tuned (tunelab run measures the ladder after its study; "
            "or pass --params best_params.json)"
        )
    if untuned == final:
        return "the study's best values change no hyperparameter outside the techniques' fields"
    return None


def _climb(
    cfg: RunConfig,
    params: dict[str, Any] | None,
    names: list[str],
    measured: list[str],
    reasons: dict[str, str | None],
) -> list[Step]:
    """The baseline, then one step per rung: a rung brings its technique's off fields back
    to the final recipe's and its own tuned values (``owner``)."""
    held = {spec.name for spec in specs() if spec.name not in measured}  # as in the final
    if TUNED not in names or reasons[TUNED] is not None:
        held.add(TUNED)
    climbed: set[str] = set()
    recipe = switched_off(with_tuned(cfg, params, held), measured)
    steps = [Step(BASELINE, BASELINE, recipe=recipe)]
    for name in names:
        label = "+ tuned hyperparameters" if name == TUNED else f"+ {_title(name)}"
        if name in STAGES:
            stage = STAGES.get(name)
            if stage.measure is None:
                steps.append(Step(name, label, reason=stage.missing))
            else:
                steps.append(Step(name, label, recipe=recipe, stage=stage))
            continue
        reason = reasons[name]
        if reason is not None:
            steps.append(Step(name, label, reason=reason))
            continue
        climbed.add(name)
        below = [n for n in measured if n not in climbed]
        recipe = switched_off(with_tuned(cfg, params, held | climbed), below)
        steps.append(Step(name, label, recipe=recipe))
    return steps


def _leave_one_out(
    names: list[str], untuned: RunConfig, final: RunConfig, reasons: dict[str, str | None]
) -> list[Step]:
    steps = [Step(FINAL, "final recipe", recipe=final)]
    for name in names:
        if name in STAGES:
            continue  # a stage acts on top of the recipe; the recipe is what is taken apart
        if name == TUNED:
            label = "without tuned hyperparameters"
            recipe = untuned
        else:
            label = f"without {_title(name)}"
            recipe = switched_off(final, [name])
        reason = reasons[name]
        steps.append(Step(name, label, reason=reason) if reason else Step(name, label, recipe))
    return steps


def _title(name: str) -> str:
    return name.replace("_", " ")


def _plain(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _mark_idle(steps: list[Step], facts: DataFacts, *, against_first: bool) -> list[Step]:
    """``steps`` with each that does nothing here marked idle, with the reason."""
    idle = idle_reasons(steps, facts, against_first=against_first)
    return [
        replace(step, reason=idle[index], idle=True) if index in idle else step
        for index, step in enumerate(steps)
    ]
