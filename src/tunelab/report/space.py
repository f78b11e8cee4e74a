"""The searched space in the report: each parameter's range or choices and its condition,
and whether it is tunelab's curated auto space (``search.space: auto``) or the user's."""

from __future__ import annotations

from typing import Any

from tunelab.report.contents import RunContents
from tunelab.report.html import paragraph, table


def space_parts(contents: RunContents) -> list[str]:
    """A sentence and a table; nothing when the run searched no space."""
    search = contents.config.get("search")
    if not isinstance(search, dict) or not isinstance(search.get("space"), dict):
        return []
    space: dict[str, Any] = search["space"]
    if not space:
        return []
    whose = (
        "tunelab's auto space for this model family and modality (search.space: auto; "
        "entries the config gave are merged over it)"
        if search.get("auto_space")
        else "the space the config gave (search.space)"
    )
    rows = [
        [name, spec.get("type", ""), _values(spec), _condition(spec.get("when"))]
        for name, spec in space.items()
        if isinstance(spec, dict)
    ]
    return [
        paragraph(f"Searched: {whose}."),
        table(["parameter", "type", "range or choices", "only when"], rows),
    ]


def _values(spec: dict[str, Any]) -> str:
    if spec.get("type") == "categorical":
        return ", ".join(str(choice) for choice in spec.get("choices") or [])
    scale = " (log)" if spec.get("log") else ""
    step = f" step {spec['step']}" if spec.get("step") else ""
    return f"{spec.get('low')} to {spec.get('high')}{scale}{step}"


def _condition(when: Any) -> str:
    if not isinstance(when, dict):
        return ""
    return ", ".join(f"{name} = {value}" for name, value in when.items())
