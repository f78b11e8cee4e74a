"""What became of each tracker in a run: ``metrics.json``'s ``tracking``, printed after the
run and shown in the report.

Example (``metrics.json``)::

    "tracking": {"mlflow": {"target": "http://127.0.0.1:5998", "state": "not used",
                            "problem": "cannot reach 'http://127.0.0.1:5998' (...)"}}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SENT, INCOMPLETE, STOPPED, NOT_USED = "sent", "incomplete", "stopped", "not used"


@dataclass
class TrackerOutcome:
    """Attributes:
    target: where the tracker writes (the MLflow URI, the TensorBoard folder).
    state: ``sent`` (everything), ``incomplete`` (its last call failed; it stayed on),
        ``stopped`` (switched off during the run; it holds what came before), ``not used``
        (it could not be reached before training, and ``tracking.required`` is false).
    problem: the failure, in one line; None when everything was sent.
    """

    target: str
    state: str = SENT
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def outcome_lines(tracking: Any) -> list[str]:
    """One line per tracker of ``metrics.json``'s ``tracking`` (nothing when absent)."""
    if not isinstance(tracking, dict):
        return []
    lines = []
    for name, outcome in tracking.items():
        if not isinstance(outcome, dict):
            continue
        target, state, problem = outcome.get("target"), outcome.get("state"), outcome.get("problem")
        if state == NOT_USED:
            lines.append(
                f"tracking: {name} was not used, the run went on without it "
                f"(tracking.required: false): {problem}"
            )
        elif state == STOPPED:
            lines.append(
                f"tracking: {name} ({target}) was switched off during the run: {problem}; "
                "it holds only what was sent before"
            )
        elif state == INCOMPLETE:
            lines.append(f"tracking: {name} ({target}) missed the end of the run: {problem}")
        else:
            lines.append(f"tracking: {name} ({target}) got everything")
    return lines
