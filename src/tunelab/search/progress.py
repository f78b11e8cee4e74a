"""The live view of a study (trial i/N, fold, epoch, current and best score, ETA) and the
summary printed at the end."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tunelab.config import RunConfig
from tunelab.results.leaderboard import leaderboard
from tunelab.search.run import StudyResult


class StudyProgress:
    """Rich progress over trials; its methods are the study's hooks."""

    def __init__(self, cfg: RunConfig, *, console: Console) -> None:
        self.total = cfg.search.n_trials
        self.metric = cfg.train.metric or "score"
        self.best: str = "-"
        self._progress = Progress(
            TextColumn("[bold]trials"),
            MofNCompleteColumn(),
            BarColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
        )
        self._task = self._progress.add_task("study", total=self.total, status="starting")
        self._shown = -1

    def __enter__(self) -> StudyProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def on_epoch(self, trial: int, fold: int, folds: int, record: dict[str, Any]) -> None:
        value = next((record[k] for k in (self.metric, "accuracy", "rmse") if k in record), None)
        score = f"{value:.4f}" if isinstance(value, float) else "-"
        status = (
            f"trial {trial} fold {fold + 1}/{folds} epoch {record['epoch'] + 1} "
            f"score {score}  best {self.best}"
        )
        self._progress.update(self._task, status=status)

    def on_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._refresh(study)

    def poll(self, study: optuna.Study) -> None:
        """Used while worker processes run the trials."""
        self._refresh(study)

    def _refresh(self, study: optuna.Study) -> None:
        trials = study.get_trials(deepcopy=False)
        done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        if complete:
            best = study.best_trial
            self.best = f"{best.value:.4f} (trial {best.number})"
        failed = sum(t.state == TrialState.FAIL for t in trials)
        self._progress.update(
            self._task, completed=min(done, self.total), status=f"best {self.best}; {failed} failed"
        )
        self._shown = done


def study_summary(result: StudyResult, top: int = 10) -> list[RenderableType]:
    """The leaderboard's top rows and the final test metrics."""
    board = leaderboard(result.study)
    table = Table(
        title=f"tunelab run: {result.run_dir} (stopped: {result.stop_reason})", title_justify="left"
    )
    params = [c for c in board.columns if c.startswith("params.")]
    for column in ("trial", "state", "value", "std", *params):
        table.add_column(column.removeprefix("params."))
    for _, row in board.head(top).iterrows():
        table.add_row(*[_cell(row[c]) for c in ("trial", "state", "value", "std", *params)])
    parts: list[RenderableType] = [table]
    if result.metrics is not None:
        metrics = result.metrics
        final = Table(
            title="refit on all non-test rows, evaluated once on the test rows",
            title_justify="left",
        )
        final.add_column("metric")
        final.add_column("test", justify="right")
        for name, value in metrics["test"].items():
            final.add_row(name, _cell(value))
        interval = metrics["test_interval"]
        final.caption = (
            f"{interval['metric']} 95% CI [{interval['low']:.4f}, "
            f"{interval['high']:.4f}] (bootstrap)"
        )
        parts.append(final)
    return parts


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


__all__ = ["StudyProgress", "study_summary", "time"]
