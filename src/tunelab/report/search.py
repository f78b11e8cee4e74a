"""The study: leaderboard, Optuna's own figures, and the fold scores of the best trials."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from tunelab.report.contents import RunContents
from tunelab.report.html import Page, Section, no_charts, note, number, table
from tunelab.report.space import space_parts
from tunelab.results.leaderboard import ranked
from tunelab.results.trial_record import record

log = logging.getLogger("tunelab")
LEADERBOARD_ROWS = 50  # the csv has them all
FOLD_TRIALS = 10  # best trials whose fold scores are drawn


def leaderboard_section(contents: RunContents) -> Section:
    section = Section("leaderboard", "Leaderboard")
    frame = contents.leaderboard
    if frame is None or frame.empty:
        section.parts.append(note("no leaderboard in this run (tunelab train runs no study)"))
        return section
    shown = frame.head(LEADERBOARD_ROWS).astype(object)
    for column in shown.columns:  # counts read back as floats (NaN rows): show them as counts
        values = pd.to_numeric(frame[column], errors="coerce").dropna()
        if frame[column].dtype.kind == "f" and len(values) and (values % 1 == 0).all():
            counts = [int(v) if v == v else None for v in frame[column].head(LEADERBOARD_ROWS)]
            shown[column] = pd.Series(counts, index=shown.index, dtype=object)
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    rows = [[_cell(v) for v in row] for row in shown.itertuples(index=False)]
    section.parts.append(table(list(shown.columns), rows, numeric=numeric))
    if len(frame) > LEADERBOARD_ROWS:
        section.parts.append(
            note(f"the best {LEADERBOARD_ROWS} of {len(frame)} trials; all are in leaderboard.csv")
        )
    return section


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return number(value) if isinstance(value, float) else str(value)


# (study, metric name) -> one of Optuna's plotly figures
PlotMaker = Callable[[optuna.Study, str], Any]


def _history(study: optuna.Study, metric: str) -> Any:
    return optuna.visualization.plot_optimization_history(study, target_name=metric)


def _importances(study: optuna.Study, metric: str) -> Any:
    return optuna.visualization.plot_param_importances(study, target_name=metric)


def _parallel(study: optuna.Study, metric: str) -> Any:
    return optuna.visualization.plot_parallel_coordinate(study, target_name=metric)


def _intermediate(study: optuna.Study, metric: str) -> Any:
    return optuna.visualization.plot_intermediate_values(study)


def study_section(contents: RunContents, page: Page) -> Section:
    """Optuna's optimization history, parameter importances, parallel coordinates and
    intermediate values; a short note where a figure is not possible for this study."""
    section = Section("search", "The search")
    study = contents.study
    if study is None:
        section.parts.append(note("no study in this run"))
        return section
    section.parts += space_parts(contents)
    if not page.charts:
        section.parts.append(no_charts())
        return section
    metric = contents.metric or "objective value"
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    searched = {name for trial in complete for name in trial.params}
    reported = any(t.intermediate_values for t in study.get_trials(deepcopy=False))
    # (title, figure, why it cannot be drawn or None) in the order the page shows them
    plots: list[tuple[str, PlotMaker, str | None]] = [
        ("optimization history", _history, None if complete else "no complete trial yet"),
        ("parameter importances", _importances, _importances_missing(complete, searched)),
        ("parallel coordinates", _parallel, None if searched else "the study searched nothing"),
        (
            "intermediate values (per epoch; what the pruner judged)",
            _intermediate,
            None
            if reported
            else "no trial reported intermediate values (with "
            "search.pruner: none, epochs are reported at most once a second; the learning "
            "curves below show every epoch)",
        ),
    ]
    for title, make, missing in plots:
        section.parts.append(f"<h3>{title}</h3>")
        if missing is not None:
            section.parts.append(note(f"not drawn: {missing}"))
            continue
        section.parts.append(_optuna_figure(page, make, study, metric, title))
    return section


def _importances_missing(
    complete: list[optuna.trial.FrozenTrial], searched: set[str]
) -> str | None:
    if len(complete) < 2:
        return f"importances need at least 2 complete trials; this study has {len(complete)}"
    if not searched:
        return "the study searched no parameters"
    return None


def _optuna_figure(
    page: Page, make: PlotMaker, study: optuna.Study, metric: str, title: str
) -> str:
    try:
        with warnings.catch_warnings():  # few trials: Optuna warns, the page says it plainly
            warnings.simplefilter("ignore")
            fig = make(study, metric)
    except Exception as exc:  # one figure Optuna cannot draw must not lose the report
        log.info("report: no %s figure: %s", title, exc)
        return note(f"not drawn: {type(exc).__name__}: {exc}")
    fig.update_layout(height=420)
    return page.figure(fig)


def folds_section(contents: RunContents, page: Page) -> Section:
    """The fold scores of the best trials (a study) or of the cross-validated recipe
    (``tunelab train`` with ``cv.strategy: kfold``): how far one estimate can be trusted."""
    section = Section("folds", "Fold scores")
    metric = contents.metric or "score"
    scores = _fold_scores(contents)
    if not scores:
        section.parts.append(
            note("no fold scores in this run (a study's trials, or tunelab train with cv: kfold)")
        )
        return section
    if all(len(values) == 1 for values in scores.values()):
        section.parts.append(
            note(
                "holdout: each trial has one validation score; cv.strategy: kfold gives k "
                "scores per trial and their spread"
            )
        )
    rows = [
        [label, len(values), number(_mean(values)), *(number(v) for v in values)]
        for label, values in scores.items()
    ]
    width = max(len(values) for values in scores.values())
    header = ["", "folds", f"mean {metric}", *(f"fold {i}" for i in range(width))]
    section.parts.append(table(header, rows, numeric=[False, True, True, *[True] * width]))
    if page.charts and width > 1:
        import plotly.graph_objects as go

        fig = go.Figure(
            [
                go.Box(y=values, name=label, boxpoints="all", jitter=0.3, pointpos=0)
                for label, values in scores.items()
            ]
        )
        fig.update_layout(yaxis_title=metric, showlegend=False, height=380)
        section.parts.append(page.figure(fig, caption="each point is one fold's score"))
    return section


def _fold_scores(contents: RunContents) -> dict[str, list[float]]:
    if contents.study is not None:
        return {
            f"trial {trial.number}": [float(s) for s in record(trial).get("fold_scores") or []]
            for trial in ranked(contents.study)[:FOLD_TRIALS]
            if record(trial).get("fold_scores")
        }
    folds = contents.folds or (contents.metrics or {}).get("cross_validation")
    if isinstance(folds, dict) and isinstance(folds.get("scores"), list):
        return {"cross-validation": [float(s) for s in folds["scores"]]}
    return {}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
