"""The search space: a pure function from an Optuna trial (or fixed values) to parameters.

``suggest`` never trains; ``tunelab.config.apply_params`` turns parameters into a validated
config. Best parameters therefore replay without a study:
``tunelab train CONFIG --params runs/NAME/best_params.json``.
"""

from __future__ import annotations

import itertools
from typing import Any, Protocol

import numpy as np

from tunelab.config import ParamSpec, RunConfig, choice_from_stored, stored_choice
from tunelab.errors import ConfigError


class Suggester(Protocol):
    """The part of ``optuna.Trial`` that ``suggest`` uses."""

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


def active(spec: ParamSpec, chosen: dict[str, Any], base: RunConfig) -> bool:
    """Whether a conditional parameter applies, given the values chosen so far."""
    for name, wanted in (spec.when or {}).items():
        value = chosen[name] if name in chosen else lookup(base, name)
        allowed = wanted if isinstance(wanted, list) else [wanted]
        if value not in allowed:
            return False
    return True


def suggest(trial: Suggester, space: dict[str, ParamSpec], base: RunConfig) -> dict[str, Any]:
    """Suggest every active parameter of ``space``, in order; inactive ones are not asked
    for, so a trial never carries an orphan parameter."""
    chosen: dict[str, Any] = {}
    for name, spec in space.items():
        if not active(spec, chosen, base):
            continue
        if spec.type == "categorical":
            assert spec.choices is not None
            # Optuna stores choices as plain values: a list (an image size) goes in as its
            # JSON text, so storage, importances and the dashboard can handle it
            picked = trial.suggest_categorical(name, [stored_choice(c) for c in spec.choices])
            chosen[name] = choice_from_stored(picked, spec.choices)
        elif spec.type == "int":
            assert spec.low is not None and spec.high is not None
            chosen[name] = trial.suggest_int(
                name, int(spec.low), int(spec.high), step=int(spec.step or 1), log=spec.log
            )
        else:
            assert spec.low is not None and spec.high is not None
            chosen[name] = trial.suggest_float(
                name, spec.low, spec.high, step=spec.step, log=spec.log
            )
    return chosen


def lookup(cfg: RunConfig, dotted: str) -> Any:
    value: Any = cfg
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else getattr(value, part)
    return value


def grid(space: dict[str, ParamSpec]) -> dict[str, list[Any]]:
    """The values of each parameter for the grid sampler (categorical, int, or stepped float)."""
    values: dict[str, list[Any]] = {}
    for name, spec in space.items():
        if spec.when:
            raise ConfigError(
                f"search.space.{name}: the grid sampler cannot search a conditional ('when') "
                "parameter without repeating configurations; use sampler random or tpe"
            )
        if spec.type == "categorical":
            values[name] = [stored_choice(c) for c in spec.choices or []]
        elif spec.type == "int" or spec.step is not None:
            assert spec.low is not None and spec.high is not None
            step = spec.step or 1
            count = int(np.floor((spec.high - spec.low) / step + 1e-9)) + 1
            points = [spec.low + i * step for i in range(count)]
            values[name] = [
                round(p) if spec.type == "int" else min(round(p, 12), spec.high) for p in points
            ]
        else:
            raise ConfigError(
                f"search.space.{name}: the grid sampler needs a finite set of values; give it "
                "'choices', make it an int, or add a 'step'"
            )
    return values


def grid_size(space: dict[str, ParamSpec]) -> int:
    return len(list(itertools.product(*grid(space).values()))) if space else 1


def params_text(params: dict[str, Any]) -> str:
    """``train.lr=0.00312, model.depth=2``: a trial's parameters in one line."""
    return ", ".join(
        f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in params.items()
    )
