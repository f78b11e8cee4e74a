"""The ablation ladder as a waterfall: each rung's bar starts at the previous rung's mean
and rises (or falls) by the paired difference, with the difference's interval and the
verdict; the rungs' own means and intervals are drawn over it. A table holds every number,
skipped rungs with their reasons, and the leave-one-out view."""

from __future__ import annotations

from typing import Any

from tunelab.report.contents import RunContents
from tunelab.report.html import Page, Section, no_charts, note, number, paragraph, table
from tunelab.report.ladder import Ladder, Rung

VERDICT_COLOURS = {"helps": "#1a7f37", "hurts": "#c62828"}
OTHER_COLOUR = "#9ca3af"


def ladder_section(contents: RunContents, page: Page) -> Section:
    section = Section("ladder", "What helped: the ablation ladder")
    ladder = contents.ladder
    if ladder is None:
        section.parts.append(note("no ladder in this run"))
        return section
    metric = ladder.metric or contents.metric or "score"
    if ladder.alpha is not None:
        section.parts.append(
            f"<p>Verdicts at alpha {number(ladder.alpha, 3)}: paired differences on the same "
            "folds, corrected resampled t-test, Holm-adjusted across steps.</p>"
        )
    if ladder.interval_method:
        section.parts.append(paragraph(f"Intervals: {ladder.interval_method}."))
    measured = [rung for rung in ladder.rungs if rung.measured]
    if page.charts and measured:
        section.parts.append(page.figure(waterfall(measured, metric)))
    elif not page.charts:
        section.parts.append(no_charts())
    section.parts.append(rung_table(ladder.rungs, metric))
    if ladder.leave_one_out:
        section.parts.append("<h3>leave one out: the final recipe without each technique</h3>")
        section.parts.append(rung_table(ladder.leave_one_out, metric))
    return section


def waterfall(rungs: list[Rung], metric: str) -> Any:
    """Floating bars from the previous rung's mean by each step's difference (coloured by
    verdict, with the difference's interval), over the rungs' means and intervals."""
    import plotly.graph_objects as go

    names = [rung.name for rung in rungs]
    bases, steps, plus, minus, colours, labels = [], [], [], [], [], []
    previous: float | None = None
    for rung in rungs:
        assert rung.mean is not None
        step = rung.difference
        if step is None:
            step = rung.mean - previous if previous is not None else 0.0
        base = rung.mean - step
        bases.append(base)
        steps.append(step)
        plus.append(_gap(rung.difference_high, step))
        minus.append(_gap(step, rung.difference_low))
        colours.append(VERDICT_COLOURS.get(rung.verdict or "", OTHER_COLOUR))
        labels.append(_bar_label(rung, previous is None))
        previous = rung.mean
    fig = go.Figure()
    fig.add_bar(
        x=names,
        y=steps,
        base=bases,
        marker_color=colours,
        text=labels,
        textposition="outside",
        error_y={"type": "data", "symmetric": False, "array": plus, "arrayminus": minus},
        name="step (paired difference)",
    )
    fig.add_scatter(
        x=names,
        y=[rung.mean for rung in rungs],
        mode="markers",
        marker={"color": "#1d2433", "size": 8},
        error_y={
            "type": "data",
            "symmetric": False,
            "array": [_gap(r.high, r.mean) for r in rungs],
            "arrayminus": [_gap(r.mean, r.low) for r in rungs],
        },
        name=f"rung mean {metric}",
    )
    fig.update_layout(
        yaxis_title=metric,
        xaxis_type="category",
        height=440,
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def _gap(high: float | None, low: float | None) -> float:
    return max(0.0, high - low) if high is not None and low is not None else 0.0


def _bar_label(rung: Rung, first: bool) -> str:
    if first:
        return "baseline"
    parts = [f"{rung.difference:+.4f}" if rung.difference is not None else ""]
    if rung.verdict:
        parts.append(rung.verdict)
    return " ".join(p for p in parts if p)


def rung_table(rungs: list[Rung], metric: str) -> str:
    header = [
        "rung",
        f"mean {metric}",
        "interval",
        "difference",
        "difference interval",
        "p",
        "p (Holm)",
        "seconds",
        "verdict",
    ]
    rows: list[list[str]] = []
    classes: list[str] = []
    for rung in rungs:
        if rung.skipped is not None:
            word = "did nothing here" if rung.did_nothing else "skipped"
            rows.append([rung.name, "-", "-", "-", "-", "-", "-", "-", f"{word}: {rung.skipped}"])
            classes.append("")
            continue
        rows.append(
            [
                rung.name,
                number(rung.mean),
                _interval(rung.low, rung.high),
                f"{rung.difference:+.4f}" if rung.difference is not None else "-",
                _interval(rung.difference_low, rung.difference_high),
                number(rung.p_value, 4),
                number(rung.holm_p_value, 4),
                number(rung.seconds, 1),
                rung.verdict or "-",
            ]
        )
        classes.append(rung.verdict if rung.verdict in VERDICT_COLOURS else "")
    numeric = [False, True, True, True, True, True, True, True, False]
    return table(header, rows, numeric=numeric, classes=classes)


def _interval(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "-"
    return f"[{number(low)}, {number(high)}]"


__all__ = ["Ladder", "ladder_section", "rung_table", "waterfall"]
