"""What a search space would only reveal after trials had run, checked before the study.

- A ``when:`` condition must be satisfiable: its values among the parent's choices (or in its
  range), or, for a parent that is not searched before it, equal to the config's value;
  otherwise the parameter is silently never searched.
- Every value a trial can draw (a range's bounds, every choice) must pass the field's own
  validation (the pydantic schema), with the parameter's condition applied; otherwise the
  trials that draw it fail one by one and the study stops on them.

Checks that involve other fields (``model.head: logistic`` needs ``linear_probe``) are left
to the trials: another searched field may make the combination valid.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from tunelab.config import ParamSpec, RunConfig, set_dotted
from tunelab.errors import ConfigError


def space_problems(cfg: RunConfig) -> list[str]:
    """One line per problem of ``search.space`` (empty when none)."""
    problems: list[str] = []
    earlier: dict[str, ParamSpec] = {}
    for name, spec in cfg.search.space.items():
        for parent, wanted in (spec.when or {}).items():
            problem = _never_met(cfg, name, parent, wanted, earlier)
            if problem:
                problems.append(problem)
        condition = {parent: _first(wanted) for parent, wanted in (spec.when or {}).items()}
        for label, value in _samples(spec):
            refused = _refused(cfg, name, {**condition, name: value})
            if refused:
                problems.append(
                    f"search.space.{name}: {label} {value!r} is not a valid {name} ({refused}); "
                    f"every trial that draws it would fail: keep the {label} within what "
                    f"{name} accepts"
                )
        earlier[name] = spec
    return problems


def _first(wanted: Any) -> Any:
    return wanted[0] if isinstance(wanted, list) and wanted else wanted


def _samples(spec: ParamSpec) -> list[tuple[str, Any]]:
    """The values that stand for everything the parameter can take."""
    if spec.type == "categorical":
        return [("choice", choice) for choice in spec.choices or []]
    assert spec.low is not None and spec.high is not None
    if spec.type == "int":
        return [("low", int(spec.low)), ("high", int(spec.high))]
    return [("low", spec.low), ("high", spec.high)]


def _never_met(
    cfg: RunConfig, name: str, parent: str, wanted: Any, earlier: dict[str, ParamSpec]
) -> str | None:
    """Why ``name``'s condition ``parent: wanted`` can never hold, or None."""
    allowed = wanted if isinstance(wanted, list) else [wanted]
    spec = earlier.get(parent)
    where = f"search.space.{name}.when: {parent}"
    if spec is None:  # not searched before: the condition reads the config's value
        value = _config_value(cfg, parent)
        if value in allowed:
            return None
        searched_later = parent in cfg.search.space
        return (
            f"{where} is {'searched after ' + name if searched_later else 'not searched'} "
            f"and is {value!r} in this config, not {_shown(allowed)}, so {name} would never "
            f"be searched; {'list ' + parent + ' first' if searched_later else 'search it'} "
            f"or set the condition to {value!r}"
        )
    if spec.type == "categorical":
        missing = [v for v in allowed if v not in (spec.choices or [])]
        if missing:
            return (
                f"{where}: {_shown(missing)} is not among its choices "
                f"({', '.join(map(repr, spec.choices or []))}), so {name} would never be "
                "searched for it; name one of the choices"
            )
        return None
    outside = [
        v
        for v in allowed
        if not isinstance(v, int | float) or not spec.low <= v <= spec.high  # type: ignore[operator]
    ]
    if outside:
        return (
            f"{where}: {_shown(outside)} is outside its range [{spec.low}, {spec.high}], so "
            f"{name} would never be searched for it; use a value in the range"
        )
    return None


def _shown(values: list[Any]) -> str:
    return repr(values[0]) if len(values) == 1 else repr(values)


def _config_value(cfg: RunConfig, dotted: str) -> Any:
    value: Any = cfg.model_dump(mode="json")
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _refused(cfg: RunConfig, name: str, values: dict[str, Any]) -> str | None:
    """What ``name``'s own validation says of ``values`` applied to ``cfg``, or None."""
    raw = cfg.model_dump(mode="json")
    try:
        for dotted, value in values.items():
            set_dotted(raw, dotted, value, what=f"search.space.{name}")
    except ConfigError as exc:
        return "; ".join(exc.problems)
    try:
        RunConfig.model_validate(raw)
    except ValidationError as exc:
        parts = tuple(name.split("."))
        own = [e for e in exc.errors() if tuple(map(str, e["loc"]))[: len(parts)] == parts]
        if own:
            return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in own)
    return None
