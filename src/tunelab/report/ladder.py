"""Reading ``ladder.json`` for the report, tolerantly: the ladder stage writes it, and the
report shows whatever of it is there.

What is read (every field optional except a rung's name; a missing value shows as "-")::

    {"metric": "accuracy", "alpha": 0.05,
     "rungs": [                                  # in climbing order; the first is the baseline
       {"name": "baseline",
        "mean": 0.951, "interval": [0.94, 0.96], # the rung's metric over the paired folds
        "difference": 0.012,                     # against the previous measured rung
        "difference_interval": [0.004, 0.02],
        "p_value": 0.01, "holm_p_value": 0.03,   # corrected resampled t-test; Holm-adjusted
        "verdict": "helps",                      # helps | no evidence | hurts
        "seconds": 41.2,                         # what the rung cost
        "skipped": null}],                       # or the reason it did not apply
     "leave_one_out": [ ...rungs of the same shape: the final recipe without one technique,
                        "difference" being final minus without... ]}

An interval may also be ``{"low": ..., "high": ...}``; an estimate may be an object with
``mean``, ``low`` and ``high``. The document may be the list of rungs alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rung:
    """One measured (or skipped) step of the ladder."""

    name: str
    mean: float | None = None
    low: float | None = None
    high: float | None = None
    difference: float | None = None
    difference_low: float | None = None
    difference_high: float | None = None
    p_value: float | None = None
    holm_p_value: float | None = None
    verdict: str | None = None
    seconds: float | None = None
    skipped: str | None = None

    @property
    def measured(self) -> bool:
        return self.skipped is None and self.mean is not None


@dataclass(frozen=True)
class Ladder:
    metric: str | None
    alpha: float | None
    rungs: list[Rung]
    leave_one_out: list[Rung]

    @property
    def baseline(self) -> Rung | None:
        """The first measured rung."""
        return next((rung for rung in self.rungs if rung.measured), None)


def read_ladder(data: Any) -> Ladder:
    """The ladder in ``data`` (parsed ``ladder.json``).

    Raises:
        ValueError: ``data`` holds no list of rungs (the message says what it found).
    """
    if isinstance(data, list):
        data = {"rungs": data}
    if not isinstance(data, dict):
        raise ValueError(f"expected an object with 'rungs', found a {type(data).__name__}")
    rungs = data.get("rungs", data.get("steps"))
    if not isinstance(rungs, list):
        raise ValueError(f"no 'rungs' list (keys: {', '.join(map(str, data)) or 'none'})")
    others = data.get("leave_one_out")
    return Ladder(
        metric=str(data["metric"]) if data.get("metric") is not None else None,
        alpha=_number(data.get("alpha")),
        rungs=[_rung(item, i) for i, item in enumerate(rungs)],
        leave_one_out=[_rung(item, i) for i, item in enumerate(others)]
        if isinstance(others, list)
        else [],
    )


def _rung(item: Any, index: int) -> Rung:
    if not isinstance(item, dict):
        return Rung(name=str(item), skipped="not a measured rung in ladder.json")
    mean, low, high = _estimate(item.get("mean", item.get("score")))
    low, high = _interval(item.get("interval"), low, high)
    difference, d_low, d_high = _estimate(item.get("difference", item.get("delta")))
    d_low, d_high = _interval(item.get("difference_interval"), d_low, d_high)
    return Rung(
        name=str(item.get("name") or item.get("technique") or f"rung {index}"),
        mean=mean,
        low=_number(item.get("low")) if low is None else low,
        high=_number(item.get("high")) if high is None else high,
        difference=difference,
        difference_low=d_low,
        difference_high=d_high,
        p_value=_number(item.get("p_value")),
        holm_p_value=_number(item.get("holm_p_value", item.get("p_holm"))),
        verdict=str(item["verdict"]) if item.get("verdict") is not None else None,
        seconds=_number(item.get("seconds")),
        skipped=_skip_reason(item),
    )


def _skip_reason(item: dict[str, Any]) -> str | None:
    reason = item.get("skipped", item.get("skipped_reason", item.get("skip_reason")))
    if reason is None or reason is False:
        return None
    if reason is True:
        return str(item.get("reason") or "skipped")
    return str(reason)


def _estimate(value: Any) -> tuple[float | None, float | None, float | None]:
    """(mid, low, high) of a number or of an object with mean, low and high."""
    if isinstance(value, dict):
        mid = _number(value.get("mean", value.get("value")))
        return mid, _number(value.get("low")), _number(value.get("high"))
    return _number(value), None, None


def _interval(
    value: Any, low: float | None, high: float | None
) -> tuple[float | None, float | None]:
    if isinstance(value, list | tuple) and len(value) == 2:
        return _number(value[0]), _number(value[1])
    if isinstance(value, dict):
        return _number(value.get("low")), _number(value.get("high"))
    return low, high


def _number(value: Any) -> float | None:
    """A finite number, or None (JSON null, text, NaN, booleans)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
