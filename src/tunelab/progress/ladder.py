"""The ladder while it measures: a live bar over the folds to train (a terminal), else one
plain line per finished variant."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from tunelab.ladder.show import interval_text, time_text
from tunelab.progress.base import LiveView, PlainLines
from tunelab.training.log import epoch_status


class LadderProgress(LiveView):
    """A live bar over the folds to train (a terminal), else one line per finished variant.

    Args:
        console: where to draw; quiet consoles draw nothing.
        live: draw the bar on a terminal; False prints lines only (inside another live
            view, such as ``tunelab run``'s).
    """

    def __init__(self, *, console: Console, live: bool = True) -> None:
        plain = PlainLines(console) if not (live and console.is_terminal) else None
        super().__init__("ladder", total=None, console=console, plain=plain)
        self.console, self.metric = console, ""
        self._done = 0

    def ladder_planned(self, *, folds: int, reused: int, metric: str) -> None:
        self.metric = metric
        self.show(total=folds)
        if reused:
            self._say(f"ladder: {reused} folds already measured in ladder.json, {folds} to train")

    def variant_epoch(self, label: str, fold: int, folds: int, record: dict[str, Any]) -> None:
        status = f"{label}  fold {fold + 1}/{folds}  epoch {record['epoch'] + 1}"
        if self.metric:
            status += f"  {epoch_status(record, self.metric)}"
        self.show(status=status)

    def variant_fold(self, label: str, fold: int, folds: int, score: float) -> None:
        self._done += 1
        self.show(completed=self._done)

    def variant_done(self, label: str, summary: dict[str, Any]) -> None:
        line = f"ladder: {label}"
        if summary.get("mean") is not None:
            interval = interval_text(summary["mean"], summary["low"], summary["high"])
            line += f"  {self.metric or 'score'} {interval}"
        if summary.get("seconds") is not None:
            line += f"  {time_text(summary['seconds'], summary.get('seconds_per_epoch'))}"
        self._say(line)

    def _say(self, line: str) -> None:
        if self._plain is not None:
            self._plain(line, last=True)
        else:
            self.print(line)
