"""What ``tunelab train`` shows while it runs, and the summary at the end.

On a terminal: a live bar with the current epoch's numbers. Anywhere else (a log file, CI,
``nohup``), where a live view never shows: one plain line per epoch, at most one a second
(the last epoch always), so ``tunelab train ... > log.txt`` reads top to bottom.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tunelab.training.log import epoch_status

PLAIN_INTERVAL = 1.0  # seconds between plain progress lines


class PlainLines:
    """Prints a line at most every ``interval`` seconds unless told it is the last one."""

    def __init__(self, console: Console, interval: float = PLAIN_INTERVAL) -> None:
        self.console = console
        self.interval = interval
        self._last = 0.0

    def __call__(self, line: str, *, last: bool = False) -> None:
        now = time.monotonic()
        if last or now - self._last >= self.interval:
            self.console.print(line, highlight=False, markup=False, soft_wrap=True)
            self._last = now

    @property
    def quiet_for(self) -> float:
        """Seconds since the last line."""
        return time.monotonic() - self._last


class Heartbeat:
    """Off a terminal, a log never goes silent: while running, prints ``status()`` (with the
    seconds since ``start``) whenever ``lines`` printed nothing for ``every`` seconds, from
    a background thread, so also while data loads or a long epoch runs."""

    def __init__(self, lines: PlainLines, status: Callable[[], str], every: float) -> None:
        self.lines, self.status, self.every = lines, status, every
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tunelab-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self.every / 4)):
            if self.lines.quiet_for >= self.every:
                elapsed = time.monotonic() - self._started
                self.lines(f"[{elapsed:.0f} s] {self.status()}", last=True)


class EpochProgress:
    """A context manager whose call is an epoch callback for ``fit``.

    Args:
        epochs: the maximum number of epochs (the bar's length).
        metric: the selection metric, shown with the losses.
        console: where to draw; quiet consoles draw nothing.
        label: what the bar counts (``epoch``, ``fold 2/5 epoch``).
    """

    def __init__(self, *, epochs: int, metric: str, console: Console, label: str = "epoch") -> None:
        self.metric = metric
        self.epochs = epochs
        self.label = label
        self._plain = None if console.is_terminal else PlainLines(console)
        self._progress = Progress(
            TextColumn(f"[bold]{label}"),
            MofNCompleteColumn(),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            transient=False,
            disable=self._plain is not None,
        )
        self._task = self._progress.add_task("train", total=epochs, status="starting")

    def __enter__(self) -> EpochProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def __call__(self, record: dict[str, Any]) -> None:
        status = epoch_status(record, self.metric)
        if self._plain is not None:
            epoch = record["epoch"] + 1
            self._plain(f"{self.label} {epoch}/{self.epochs}  {status}", last=epoch == self.epochs)
            return
        self._progress.update(self._task, advance=1, status=status)


def summary_table(metrics: dict[str, Any], run_dir: str) -> Table:
    """Validation and test metrics side by side (and the k-fold estimate, when there is one)."""
    table = Table(title=f"tunelab train: {run_dir}", title_justify="left")
    table.add_column("metric")
    table.add_column("validation", justify="right")
    table.add_column("test", justify="right")
    for name, value in metrics["test"].items():
        val = metrics["validation"].get(name)
        table.add_row(
            name, "-" if val is None else f"{val:.4f}", "-" if value is None else f"{value:.4f}"
        )
    interval = metrics["test_interval"]
    best = metrics["best_epoch"]
    kept = f"epoch {best + 1}" if best >= 0 else "averaged weights"
    caption = (
        f"test {interval['metric']} 95% CI [{interval['low']:.4f}, {interval['high']:.4f}] "
        f"({interval['method']}); kept {kept} of {metrics['epochs_run']}, stopped: "
        f"{metrics['stop_reason']}; {metrics['seconds']:.1f}s"
    )
    cv = metrics.get("cross_validation")
    if cv:
        spread = f" ± {cv['std']:.4f}" if cv.get("std") is not None else ""
        caption += (
            f"\n{cv['folds']}-fold {cv['metric']} {cv['mean']:.4f}{spread} (mean ± std over folds)"
        )
    table.caption = caption
    return table


class FoldProgress:
    """The k-fold estimate of ``tunelab train``: one bar over the folds (a plain line per
    epoch, rate-limited, when not on a terminal). Its call is a ``(fold, record)`` hook."""

    def __init__(self, *, folds: int, epochs: int, metric: str, console: Console) -> None:
        self.folds, self.epochs, self.metric = folds, epochs, metric
        self._plain = None if console.is_terminal else PlainLines(console)
        self._progress = Progress(
            TextColumn("[bold]k-fold estimate"),
            MofNCompleteColumn(),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            disable=self._plain is not None,
        )
        self._task = self._progress.add_task("folds", total=folds, status="starting")

    def __enter__(self) -> FoldProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def __call__(self, fold: int, record: dict[str, Any]) -> None:
        where = f"fold {fold + 1}/{self.folds} epoch {record['epoch'] + 1}/{self.epochs}"
        status = f"{where}  {epoch_status(record, self.metric)}"
        if self._plain is not None:
            self._plain(status)
            return
        self._progress.update(self._task, completed=fold, status=status)
