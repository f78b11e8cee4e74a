"""Learning curves: training against validation loss, and the metric, per epoch, with the
epoch whose weights each fit kept (early stopping's restore point), so over-fitting is
visible: the validation loss turning up while the training loss keeps falling."""

from __future__ import annotations

import logging
from typing import Any

from tunelab.report.contents import RunContents
from tunelab.report.html import Page, Section, no_charts, note
from tunelab.results.leaderboard import ranked
from tunelab.results.trial_record import record

log = logging.getLogger("tunelab")
CURVE_TRIALS = 3  # best trials whose curves are drawn
COLOURS = ("#2f5bd3", "#d97706", "#059669", "#9333ea", "#dc2626", "#0891b2", "#65a30d")


def curves_section(contents: RunContents, page: Page) -> Section:
    section = Section("curves", "Learning curves")
    if not page.charts:
        section.parts.append(no_charts())
        return section
    metric = contents.metric or "score"
    drawn = 0
    if contents.study is not None and contents.artifacts is not None:
        for trial in ranked(contents.study)[:CURVE_TRIALS]:
            try:
                histories = contents.artifacts.histories(trial)
            except Exception as exc:  # a deleted or damaged artifact: say so, draw the rest
                section.parts.append(note(f"trial {trial.number}: no histories ({exc})"))
                continue
            kept = [int(e) for e in record(trial).get("best_epochs") or []]
            title = f"trial {trial.number} (value {trial.value:.4f})"
            section.parts.append(page.figure(curves_figure(histories, kept, metric, title)))
            drawn += 1
    elif contents.history:
        best = (contents.metrics or {}).get("best_epoch")
        kept = [best + 1] if isinstance(best, int) and best >= 0 else []
        title = "the final fit (validation rows)"
        section.parts.append(page.figure(curves_figure([contents.history], kept, metric, title)))
        drawn += 1
    if drawn:
        section.parts.append(
            note(
                "stars: the epoch whose weights each fit kept (early stopping restores them); "
                "one colour per fold"
            )
        )
    else:
        section.parts.append(note("no per-epoch histories in this run"))
    return section


def curves_figure(
    histories: list[list[dict[str, Any]]], kept: list[int], metric: str, title: str
) -> Any:
    """Loss (train dashed, validation solid) and the metric per epoch, one colour per fold.

    Args:
        histories: per fold, the epoch records (``epoch`` counts from 0).
        kept: per fold, the epochs trained up to the weights it kept (the star).
    """
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", metric), horizontal_spacing=0.1)
    for fold, history in enumerate(histories):
        colour = COLOURS[fold % len(COLOURS)]
        label = f"fold {fold}" if len(histories) > 1 else "fit"
        epochs = [int(r.get("epoch", i)) + 1 for i, r in enumerate(history)]
        for key, column, dash in (
            ("train_loss", 1, "dash"),
            ("val_loss", 1, "solid"),
            (metric, 2, "solid"),
        ):
            values = [_value(r.get(key)) for r in history]
            if all(v is None for v in values):
                continue
            name = {"train_loss": "train loss", "val_loss": "validation loss"}.get(key, key)
            fig.add_scatter(
                x=epochs,
                y=values,
                mode="lines",
                name=f"{label}: {name}",
                legendgroup=label,
                line={"color": colour, "dash": dash},
                row=1,
                col=column,
            )
            if key != "train_loss" and fold < len(kept) and kept[fold] in epochs:
                at = epochs.index(kept[fold])
                fig.add_scatter(
                    x=[kept[fold]],
                    y=[values[at]],
                    mode="markers",
                    marker={"symbol": "star", "size": 13, "color": colour},
                    name=f"{label}: kept epoch {kept[fold]}",
                    legendgroup=label,
                    showlegend=False,
                    row=1,
                    col=column,
                )
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(title=title, height=380, legend={"font": {"size": 11}})
    return fig


def _value(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value == value else None
