"""The ladder's posterior chances as one bar per step: P(helps), P(equivalent) and
P(hurts) of the Bayesian correlated t-test (``tunelab.ladder.stats``), stacked to 1, so a
cheap ladder that cannot reach a verdict still shows which way each step leans."""

from __future__ import annotations

from typing import Any

from tunelab.report.html import number
from tunelab.report.ladder import Ladder, Rung

CHANCE_COLOURS = {"helps": "#1a7f37", "equivalent": "#9ca3af", "hurts": "#c62828"}


def with_chances(rungs: list[Rung]) -> list[Rung]:
    """The rungs that have all three chances (measured and compared)."""
    return [rung for rung in rungs if rung.chances is not None]


def explanation(ladder: Ladder) -> str:
    """How the verdicts were reached, in one sentence (escaped by the caller)."""
    threshold = ladder.probability_threshold
    if threshold is None:
        return ""
    rope = "its default" if ladder.rope is None else number(ladder.rope)
    return (
        "Verdicts: the Bayesian correlated t-test (Benavoli et al. 2017) gives each step's "
        "chance to help, to change the score by no more than the region of practical "
        f"equivalence (rope: {rope}) or to hurt; a verdict needs a chance of at least "
        f"{number(threshold, 2)}, else it reads 'no evidence'."
    )


def chances_chart(rungs: list[Rung]) -> Any:
    """Horizontal bars, one per step, split into the three chances."""
    import plotly.graph_objects as go

    names = [rung.name for rung in rungs]
    fig = go.Figure()
    for index, (label, colour) in enumerate(CHANCE_COLOURS.items()):
        values = [rung.chances[index] if rung.chances else 0.0 for rung in rungs]
        fig.add_trace(
            go.Bar(
                name=f"P({label})",
                y=names,
                x=values,
                orientation="h",
                marker_color=colour,
                text=[f"{value:.2f}" if value >= 0.08 else "" for value in values],
                textposition="inside",
            )
        )
    fig.update_layout(
        barmode="stack",
        title="How likely each step helps, changes nothing that matters, or hurts",
        xaxis={"range": [0, 1], "title": "posterior probability"},
        yaxis={"autorange": "reversed"},
        height=120 + 40 * len(rungs),
        margin={"l": 220},
    )
    return fig


def chances_text(rung: Rung) -> str:
    """``0.88 / 0.10 / 0.02`` (helps / equivalent / hurts), or "-"."""
    if rung.chances is None:
        return "-"
    return " / ".join(number(chance, 2) for chance in rung.chances)
