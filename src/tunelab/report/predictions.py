"""The final predictor on the test rows: a confusion matrix (classification) or residuals
(regression), from ``test_predictions.csv``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tunelab.report.contents import RunContents
from tunelab.report.html import Page, Section, no_charts, note, table

PROBA = "proba_"


def predictions_section(contents: RunContents, page: Page) -> Section:
    section = Section("predictions", "Test predictions")
    frame = contents.predictions
    if frame is None or frame.empty or not {"target", "prediction"} <= set(frame.columns):
        section.parts.append(note("no test predictions in this run (no final predictor)"))
        return section
    task = (contents.metrics or {}).get("task")
    classification = (
        task != "regression" if task else any(c.startswith(PROBA) for c in frame.columns)
    )
    if classification:
        section.parts += confusion_parts(frame, page)
    else:
        section.parts += residual_parts(frame, page)
    return section


def class_order(frame: pd.DataFrame) -> list[str]:
    """The classes in the predictor's order (its probability columns), then any other
    label seen in the target or the predictions."""
    classes = [c[len(PROBA) :] for c in frame.columns if c.startswith(PROBA)]
    seen = pd.concat([frame["target"], frame["prediction"]]).astype(str).unique().tolist()
    return classes + sorted(set(seen) - set(classes))


def confusion_parts(frame: pd.DataFrame, page: Page) -> list[str]:
    classes = class_order(frame)
    index = {label: i for i, label in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=int)
    for truth, predicted in zip(
        frame["target"].astype(str), frame["prediction"].astype(str), strict=True
    ):
        counts[index[truth], index[predicted]] += 1
    correct = int(np.trace(counts))
    parts = [
        f"<p>{correct} of {len(frame)} test rows predicted correctly. Rows: the true class; "
        "columns: the predicted class.</p>"
    ]
    if page.charts:
        parts.append(page.figure(_heatmap(counts, classes)))
        return parts
    rows = [[label, *counts[i].tolist()] for i, label in enumerate(classes)]
    parts.append(
        table(["true \\ predicted", *classes], rows, numeric=[False, *[True] * len(classes)])
    )
    return parts


def _heatmap(counts: np.ndarray, classes: list[str]) -> Any:
    import plotly.graph_objects as go

    # category axes: class names such as "1" and "10" stay names, never numbers
    fig = go.Figure(
        go.Heatmap(
            z=counts,
            x=classes,
            y=classes,
            text=counts.astype(str),
            texttemplate="%{text}",
            colorscale="Blues",
            hovertemplate="true %{y}<br>predicted %{x}<br>%{z} rows<extra></extra>",
        )
    )
    side = min(900, 260 + 28 * len(classes))
    fig.update_layout(
        xaxis={"title": "predicted", "type": "category"},
        yaxis={"title": "true", "type": "category", "autorange": "reversed"},
        height=side,
        width=side + 120,
    )
    return fig


def residual_parts(frame: pd.DataFrame, page: Page) -> list[str]:
    truth = pd.to_numeric(frame["target"], errors="coerce").to_numpy(dtype=float)
    predicted = pd.to_numeric(frame["prediction"], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(truth) & np.isfinite(predicted)
    if not ok.any():
        return [note("test_predictions.csv holds no numeric target and prediction")]
    truth, predicted = truth[ok], predicted[ok]
    residual = truth - predicted
    summary = table(
        ["test rows", "mean residual", "residual std", "largest |residual|"],
        [
            [
                len(truth),
                f"{residual.mean():.4g}",
                f"{residual.std():.4g}",
                f"{np.abs(residual).max():.4g}",
            ]
        ],
        numeric=[True] * 4,
    )
    if not page.charts:
        return [summary, no_charts()]
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("predicted against true", "residual (true - predicted)")
    )
    fig.add_scatter(x=truth, y=predicted, mode="markers", name="rows", row=1, col=1)
    low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
    fig.add_scatter(
        x=[low, high],
        y=[low, high],
        mode="lines",
        name="perfect",
        line={"dash": "dot"},
        row=1,
        col=1,
    )
    fig.add_scatter(x=predicted, y=residual, mode="markers", name="residual", row=1, col=2)
    fig.add_hline(y=0, line_dash="dot", row=1, col=2)
    fig.update_xaxes(title_text="true", row=1, col=1)
    fig.update_yaxes(title_text="predicted", row=1, col=1)
    fig.update_xaxes(title_text="predicted", row=1, col=2)
    fig.update_layout(height=400, showlegend=False)
    return [summary, page.figure(fig)]
