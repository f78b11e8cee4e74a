"""Where a command's time goes, phase by phase, from the process's start; and the stages
after the search announcing themselves (``tunelab run``'s live view and plain lines).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.observer import Observer

PHASES = ("start-up", "search", "refit", "ensemble", "test evaluation", "report", "ladder")


@dataclass
class Timeline:
    """Where a command's time went: the seconds of each phase, from the command's start.

    Example::

        clock = Timeline(started=process_start() or time.time())
        clock.begin("search")  # start-up ends here
        clock.summary(budget=20)["phases"]["search"]
    """

    started: float
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    _phase: str = "start-up"
    _since: float = field(init=False)

    def __post_init__(self) -> None:
        self._since = self.started

    def begin(self, phase: str) -> None:
        """End the current phase and start ``phase``."""
        now = time.time()
        self.seconds[self._phase] = self.seconds.get(self._phase, 0.0) + now - self._since
        self._phase, self._since = phase, now

    def summary(self, *, budget: float | None) -> dict[str, Any]:
        """``metrics.json``'s ``time``: the budget, the elapsed seconds, each phase's."""
        self.begin(self._phase)
        phases = {name: round(self.seconds.get(name, 0.0), 2) for name in PHASES}
        if "ladder" not in self.seconds:
            phases.pop("ladder")
        return {
            "budget": budget,
            "elapsed": round(time.time() - self.started, 2),
            "phases": phases,
            "notes": list(self.notes),
        }


def process_start() -> float | None:
    """When this process started (Unix time), from ``/proc`` on Linux; None elsewhere.

    The budget's clock starts there, not once tunelab's imports and the data are loaded."""
    try:
        stat = Path("/proc/self/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        ticks = int(stat.rpartition(")")[2].split()[19])  # field 22: starttime
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return None


@dataclass
class Stages:
    """The clock of a ``tunelab run`` and who hears of its stages.

    Attributes:
        observer: told, in words, each stage as it starts (``refit of trial 3 ...``), and
            the refit's epochs.
    """

    clock: Timeline
    observer: Observer = field(default_factory=Observer)

    def enter(self, phase: str, text: str) -> None:
        """Start ``phase`` (one of ``PHASES``), saying ``text``."""
        self.clock.begin(phase)
        self.say(text)

    def say(self, text: str) -> None:
        self.observer.stage(text)

    def note(self, text: str) -> None:
        """What the time budget cut short: in the summary, ``metrics.json`` and the log."""
        self.clock.notes.append(text)
        self.say(f"note: {text}")
