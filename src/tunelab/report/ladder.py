"""Reading ``ladder.json`` for the report: the steps of both views with their statistics
(the layout is ``tunelab.ladder.document``'s). A step that was skipped, failed or is still
pending shows its reason; a missing number shows as "-".
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
    did_nothing: bool = False

    @property
    def measured(self) -> bool:
        return self.skipped is None and self.mean is not None


@dataclass(frozen=True)
class Ladder:
    metric: str | None
    alpha: float | None
    rungs: list[Rung]
    leave_one_out: list[Rung]
    interval_method: str | None = None

    @property
    def baseline(self) -> Rung | None:
        """The first measured rung."""
        return next((rung for rung in self.rungs if rung.measured), None)


def read_ladder(data: Any) -> Ladder:
    """The ladder in ``data`` (parsed ``ladder.json``, written by ``tunelab.ladder``: see
    ``tunelab.ladder.document`` for its layout).

    Raises:
        ValueError: ``data`` is not a ladder document (the message says what it found).
    """
    if not isinstance(data, dict) or not isinstance(data.get("ladder"), list):
        found = ", ".join(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"not a ladder document: no 'ladder' list (found {found or 'nothing'})")
    others = data.get("leave_one_out")
    return Ladder(
        metric=str(data["metric"]) if data.get("metric") is not None else None,
        alpha=_number(data.get("alpha")),
        rungs=[_rung(item, i) for i, item in enumerate(data["ladder"])],
        leave_one_out=[_rung(item, i) for i, item in enumerate(others)]
        if isinstance(others, list)
        else [],
        interval_method=str(data["interval_method"]) if data.get("interval_method") else None,
    )


def _rung(item: Any, index: int) -> Rung:
    if not isinstance(item, dict):
        return Rung(name=str(item), skipped="not a step of a ladder document")
    status = item.get("status")
    skipped = None
    if status in ("skipped", "failed", "pending", "did nothing"):
        skipped = str(item.get("reason") or status)
    return Rung(
        name=str(item.get("label") or item.get("name") or f"step {index}"),
        mean=_number(item.get("mean")),
        low=_number(item.get("low")),
        high=_number(item.get("high")),
        difference=_number(item.get("difference")),
        difference_low=_number(item.get("difference_low")),
        difference_high=_number(item.get("difference_high")),
        p_value=_number(item.get("p_value")),
        holm_p_value=_number(item.get("p_holm")),
        verdict=str(item["verdict"]) if item.get("verdict") is not None else None,
        seconds=_number(item.get("seconds")),
        skipped=skipped,
        did_nothing=status == "did nothing",
    )


def _number(value: Any) -> float | None:
    """A finite number, or None (JSON null, text, NaN, booleans)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
