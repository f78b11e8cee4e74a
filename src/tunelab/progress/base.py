"""The one live view: a rich bar on a terminal; anywhere else (a log file, CI, ``nohup``),
where a live view never shows, plain lines at most one a second (or as the view says), so
``tunelab train ... > log.txt`` reads top to bottom."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tunelab.observer import Observer

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


class LiveView(Observer):
    """A context manager drawing ``title  done/total  bar  time  status`` on a terminal; with
    ``plain`` lines instead (off a terminal, or inside another live view) it draws nothing
    and the subclass prints through ``plain``.

    Args:
        title: what the bar counts (``epoch``, ``trials``, ``ladder``).
        total: the bar's length (None: unknown yet).
        console: where to draw; quiet consoles draw nothing.
        plain: the plain lines that replace the bar, or None for the bar.
        remaining: show the time remaining instead of the time elapsed.
    """

    def __init__(
        self,
        title: str,
        *,
        total: int | None,
        console: Console,
        plain: PlainLines | None,
        remaining: bool = False,
    ) -> None:
        self._plain = plain
        self._progress = Progress(
            TextColumn(f"[bold]{title}"),
            MofNCompleteColumn(),
            BarColumn(),
            TimeRemainingColumn() if remaining else TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            disable=plain is not None,
        )
        self._task = self._progress.add_task(title, total=total, status="starting")

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def show(self, **fields: Any) -> None:
        """Update the bar (``advance``, ``completed``, ``total``, ``status``)."""
        self._progress.update(self._task, **fields)

    def print(self, line: str) -> None:
        """A line above the live bar."""
        self._progress.console.print(line, highlight=False, markup=False)
