"""Calibration in the report: the temperature, log loss and ECE before and after (held out
and on the test rows), and the reliability diagram of the test rows, from ``metrics.json``'s
``calibration`` (written by ``evaluation/calibration.py``)."""

from __future__ import annotations

from typing import Any

from tunelab.report.contents import RunContents
from tunelab.report.html import Page, Section, note, number, paragraph, table


def calibration_section(contents: RunContents, page: Page) -> Section:
    section = Section("calibration", "Calibration")
    found = (contents.metrics or {}).get("calibration")
    if not isinstance(found, dict):
        section.parts.append(note("no calibration in this run"))
        return section
    section.parts.append(paragraph(f"calibration: {found.get('setting')}; {found.get('reason')}."))
    rows = [
        [where, stage, number(scores.get("log_loss")), number(scores.get("ece"))]
        for where, key in (("held out", "held_out"), ("test rows", "test"))
        for stage in ("before", "after")
        if isinstance(scores := (found.get(key) or {}).get(stage), dict)
    ]
    if rows:
        header = ["rows", "temperature scaling", "log loss", "ECE"]
        section.parts.append(table(header, rows, numeric=[False, False, True, True]))
    curves = found.get("reliability")
    if isinstance(curves, dict) and page.charts:
        section.parts.append(
            page.figure(
                _reliability(curves),
                caption="test rows: mean confidence of the predicted class against how often "
                "it was right, per confidence bin (the diagonal is perfect calibration)",
            )
        )
    return section


def _reliability(curves: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"dash": "dot"})
    )
    for stage in ("before", "after"):
        curve = curves.get(stage)
        if isinstance(curve, dict):
            fig.add_trace(
                go.Scatter(
                    x=curve.get("confidence"),
                    y=curve.get("accuracy"),
                    mode="lines+markers",
                    name=f"{stage} temperature scaling",
                    text=[f"{int(n)} rows" for n in curve.get("rows", [])],
                )
            )
    fig.update_layout(
        xaxis_title="confidence", yaxis_title="accuracy", height=380, template="plotly_white"
    )
    return fig
