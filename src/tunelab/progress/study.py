"""The live view of a study (trial i/N, fold, epoch, current and best score, ETA) and the
summary printed at the end. Off a terminal (a pipe, a log file): a line when each stage
starts (loading data, search, refit, ensemble, report) and when each trial starts and ends,
the running trial's or the refit's epoch at most every ``PLAIN_EVERY_S`` seconds, and the
current state again whenever nothing was printed for that long, so a log never goes silent;
the leaderboard printed whole (full parameter names, no 80-column cut)."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console, RenderableType
from rich.progress import ProgressColumn, Task
from rich.table import Table
from rich.text import Text

from tunelab.config import RunConfig
from tunelab.flows.study import StudySummary
from tunelab.progress.base import Heartbeat, LiveView, PlainLines
from tunelab.results.leaderboard import leaderboard, ranked
from tunelab.results.rundir import RunDir
from tunelab.search.space import params_text
from tunelab.training.log import epoch_status

PLAIN_EVERY_S = 10.0  # off a terminal: the longest silence, and the epoch lines' spacing

# what the leaderboard shows for a value that does not exist (the std of one score)
NOT_AVAILABLE = "n/a"
# the first line of a re-run (flows.rerun): what it does
RERUN_LINES = ("study finished", "study resumed")


class StudyProgress(LiveView):
    """Rich progress over trials (or plain lines): the observer of a study."""

    def __init__(self, cfg: RunConfig, *, console: Console, started: float | None = None) -> None:
        # with a budget, the time left is the budget's (trials x their mean time is not
        # when the budget ends the search); a resumed run learns its end (budget_ends)
        self.budget_end = (started or time.time()) + cfg.budget if cfg.budget else None
        plain = None if console.is_terminal else PlainLines(console, PLAIN_EVERY_S)
        super().__init__(
            "trials",
            total=cfg.search.n_trials,
            console=console,
            plain=plain,
            remaining=True,
            clock=BudgetLeft(lambda: self.budget_end) if cfg.budget else None,
        )
        self.total = cfg.search.n_trials
        self.metric = cfg.train.metric or "score"
        self.best: str = "-"
        self._status = "starting"
        self._stage = "starting"
        self._heartbeat = (
            Heartbeat(self._plain, lambda: self._status, PLAIN_EVERY_S) if self._plain else None
        )
        self._reported: set[int] = set()

    def __enter__(self) -> Self:
        super().__enter__()
        if self._heartbeat is not None:
            self._heartbeat.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
        super().__exit__(kind, exc, tb)

    def budget_ends(self, end: float) -> None:
        """The budget ends at ``end`` (Unix time)."""
        self.budget_end = end

    def stage(self, text: str) -> None:
        """A stage of the run starts (``loading data``, ``refit: trial 3 ...``), or a note
        on the current one (``note: ...``). What a re-run does (``study finished ...``)
        stays on the screen."""
        if text.startswith(RERUN_LINES) and self._plain is None:
            self.print(text)
        if not text.startswith("note:"):
            self._stage = text.split(":")[0]
        self._say(text, now=True)

    def trial_started(self, number: int, params: dict[str, Any]) -> None:
        self._say(f"trial {number} started ({params_text(params)})", now=True)

    def trial_epoch(self, number: int, fold: int, folds: int, record: dict[str, Any]) -> None:
        if self._plain is not None:
            where = f"trial {number}" + (f" fold {fold + 1}/{folds}" if folds > 1 else "")
            if self._stage == "refit":
                where = f"refit of trial {number}"
            metric = next((k for k in (self.metric, "accuracy", "rmse") if k in record), "")
            status = f"{where} epoch {record['epoch'] + 1}  {epoch_status(record, metric)}"
            self._say(f"{status}; best {self.best}")
            return
        value = next((record[k] for k in (self.metric, "accuracy", "rmse") if k in record), None)
        score = f"{value:.4f}" if isinstance(value, float) else "-"
        status = (
            f"trial {number} fold {fold + 1}/{folds} epoch {record['epoch'] + 1} "
            f"score {score}  best {self.best}"
        )
        if self._stage == "refit":
            status = f"refit of trial {number} epoch {record['epoch'] + 1}"
        self.show(status=status)

    def _say(self, line: str, *, now: bool = False) -> None:
        """Off a terminal, print ``line`` (at once, or when the last line is old enough);
        on one, show it in the live view's status."""
        self._status = line
        if self._plain is not None:
            self._plain(line, last=now)
        else:
            self.show(status=line)

    def trial_ended(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._refresh(study)

    def poll(self, study: optuna.Study) -> None:
        """Used while worker processes run the trials."""
        self._refresh(study)

    def _refresh(self, study: optuna.Study) -> None:
        trials = study.get_trials(deepcopy=False)
        done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        best_first = ranked(study)  # the refit's choice, tie-break included
        if best_first:
            self.best = f"{best_first[0].value:.4f} (trial {best_first[0].number})"
        failed = sum(t.state == TrialState.FAIL for t in trials)
        if self._stage == "search":
            self._status = f"search: {done}/{self.total} trials finished, best {self.best}"
        if self._plain is not None:
            for trial in trials:
                if trial.state.is_finished() and trial.number not in self._reported:
                    self._reported.add(trial.number)
                    self._plain(_trial_line(trial, done, self.total, self.best), last=True)
            return
        self.show(completed=min(done, self.total), status=f"best {self.best}; {failed} failed")


class BudgetLeft(ProgressColumn):
    """The time left in the budget (``budget left 0:01:05``), not trials x mean time."""

    def __init__(self, end: Callable[[], float | None]) -> None:
        super().__init__()
        self.end = end

    def render(self, task: Task) -> Text:
        end = self.end()
        if end is None:
            return Text("-:--:--", style="progress.remaining")
        left = int(max(0.0, end - time.time()))
        shown = f"{left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}"
        return Text(f"budget left {shown}", style="progress.remaining")


def _trial_line(trial: FrozenTrial, done: int, total: int, best: str) -> str:
    state = trial.state.name.lower()
    value = f" value {trial.value:.4f}" if trial.value is not None else ""
    reason = trial.user_attrs.get("fail_reason")
    why = f" ({reason})" if reason else ""
    return f"trial {trial.number} {state}{value}{why}; {done}/{total} finished, best {best}"


def study_summary(result: StudySummary, *, terminal: bool, top: int = 10) -> list[RenderableType]:
    """The leaderboard's top rows (a value that does not exist, such as the spread of one
    holdout score, reads ``n/a``; the rows left out are counted) and the final test metrics."""
    board = leaderboard(result.study)
    title = f"tunelab run: {result.run_dir} (stopped: {result.stop_reason})"
    parts: list[RenderableType] = []
    shown = board.head(top)
    if terminal:
        table = Table(title=title, title_justify="left")
        params = [c for c in board.columns if c.startswith("params.")]
        for column in ("trial", "state", "value", "std", *params):
            table.add_column(column.removeprefix("params."))
        for _, row in shown.iterrows():
            cells = [
                _cell(row[c], missing=NOT_AVAILABLE)
                for c in ("trial", "state", "value", "std", *params)
            ]
            table.add_row(*cells)
        parts.append(table)
    elif board.empty:
        parts += [Text(title), Text("no trials ran")]
    else:
        plain = shown.drop(columns=["fail_reason"], errors="ignore").astype(object)
        plain = plain.where(plain.notna(), NOT_AVAILABLE)  # None too, which na_rep misses
        text = plain.to_string(index=False, float_format=lambda v: f"{v:.4g}")
        parts += [Text(title), Text(text)]
    if len(board) > len(shown):
        more = len(board) - len(shown)
        path = RunDir(result.run_dir).leaderboard
        parts.append(Text(f"… {more} more row{'s' if more > 1 else ''}, see {path}"))
    if result.metrics is not None:
        parts.append(_final_table(result.metrics))
    if result.time is not None:
        parts.append(Text(time_line(result.time)))
    return parts


def time_line(spent: dict[str, Any]) -> str:
    """``time: 19.6 s of a 20 s budget: start-up 6.1 s, search 11.2 s, ...`` and the notes."""
    budget, before = spent.get("budget"), spent.get("spent_before")
    of = f" of a {budget:g} s budget" if budget else ""
    if budget and before:  # a resumed run: what was left of the budget
        of = f" of the {budget - before:.0f} s left of a {budget:g} s budget"
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in spent["phases"].items())
    notes = "".join(f"\n  note: {note}" for note in spent.get("notes", []))
    return f"time: {spent['elapsed']:.1f} s{of}: {phases}{notes}"


def distillation_lines(record: dict[str, Any] | None, interval: dict[str, Any] | None) -> list[str]:
    """``ensemble.distill``'s verdict, and the three predictors on the test rows with their
    inference time per row."""
    if not record:
        return []
    lines = [f"distillation: {record['reason']}"]
    metric = (interval or {}).get("metric") or record.get("metric")
    for name, found in (record.get("test") or {}).items():
        lines.append(
            f"  {name.replace('_', ' ')}: test {metric} {_cell(found.get(metric))}, "
            f"{found['us_per_row']:.1f} µs per row"
        )
    return lines


def _final_table(metrics: dict[str, Any]) -> Table:
    ensemble = metrics.get("ensemble") or {}
    compared = ensemble.get("test")
    if metrics.get("final") == "ensemble":
        used = [m["trial"] for m in ensemble.get("members", []) if m["weight"] > 0]
        title = (
            f"final: {ensemble['method']} ensemble of trials {', '.join(map(str, used))}, "
            "evaluated once on the test rows"
        )
    elif metrics.get("final") == "distilled student":
        title = (
            f"final: one student distilled from the {ensemble['method']} ensemble, evaluated "
            "once on the test rows"
        )
    else:
        title = "final: the best trial refit on all non-test rows, evaluated once on the test rows"
    final = Table(title=title, title_justify="left")
    final.add_column("metric")
    final.add_column("test", justify="right")
    if compared:
        final.add_column("best single trial", justify="right")
    for name, value in metrics["test"].items():
        row = [name, _cell(value)]
        if compared:
            row.append(_cell(compared["best_single"].get(name)))
        final.add_row(*row)
    interval = metrics["test_interval"]
    lines = [
        f"{interval['metric']} 95% CI [{interval['low']:.4f}, {interval['high']:.4f}] "
        f"({interval['method']})"
    ]
    if compared:
        d = compared["difference"]
        lines.append(
            f"ensemble - single {d['metric']}: {d['ensemble_minus_single']:+.4f}, 95% CI "
            f"[{d['low']:+.4f}, {d['high']:+.4f}] (paired bootstrap)"
        )
    if metrics.get("best_trial_tie_break"):  # said once, here
        lines.append(f"best trial by tie-break: {metrics['best_trial_tie_break']}")
    if ensemble.get("reason"):
        lines.append(f"ensemble: {ensemble['reason']}")
    lines += distillation_lines(ensemble.get("distillation"), metrics.get("test_interval"))
    final.caption = "\n".join(lines)
    return final


def _cell(value: Any, *, missing: str = "-") -> str:
    if value is None or (isinstance(value, float) and value != value):
        return missing
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
