"""Stages that run after the final predictor is written (the ensemble's build, the ladder,
the trackers' final scores, the report): one that fails never costs what finished.

Its failure is logged with the traceback (in ``run.log`` for ``tunelab run``), named with
its reason in ``metrics.json`` (``failed_stages``), which the summary and the report show,
and the command exits non-zero; the run's other files stay as they are.

Example::

    stages = LateStages(run)
    stages.attempt("ladder", lambda: run_ladder(cfg, run, params=params))
    stages.conclude(lambda: write_report(run.path))  # failed_stages in metrics.json, report
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tunelab.errors import TunelabError
from tunelab.results.rundir import RunDir, write_json

log = logging.getLogger("tunelab")
T = TypeVar("T")


@dataclass(frozen=True)
class StageFailure:
    """A stage that failed, and why (the error's message)."""

    stage: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"stage": self.stage, "reason": self.reason}


@dataclass
class LateStages:
    """Runs late stages of one run directory and keeps their failures."""

    run: RunDir
    failures: list[StageFailure] = field(default_factory=list)

    def attempt(self, stage: str, call: Callable[[], T], *, fix: str | None = None) -> T | None:
        """``call()``, or None when it raises (Ctrl-C still stops the run); ``fix``: what
        to do about a failure, added to its reason."""
        try:
            return call()
        except Exception as exc:  # a late stage never costs what finished
            self.fail(stage, exc, fix=fix)
            return None

    def fail(self, stage: str, exc: Exception, *, fix: str | None = None) -> None:
        """Record ``stage`` as failed with ``exc`` (logged with its traceback)."""
        reason = str(exc) if isinstance(exc, TunelabError) else f"{type(exc).__name__}: {exc}"
        if fix:
            reason += f"; {fix}"
        # info, not error: the command says it once, and a run without a run.log handler
        # must not print the traceback on the terminal
        log.info("stage %s failed: %s", stage, reason, exc_info=exc)
        self.failures.append(StageFailure(stage, reason))

    def conclude(self, write_report: Callable[[], object]) -> None:
        """Record the failures so far in ``metrics.json``, then write the report (which
        shows them); a report that cannot be written is recorded too."""
        self.record()
        failed = len(self.failures)
        self.attempt("report", write_report, fix=f"try again with: tunelab report {self.run.path}")
        if len(self.failures) > failed:
            self.record()

    def record(self) -> None:
        """Write the failures into ``metrics.json`` (when the run has one)."""
        if not self.failures or not self.run.metrics.is_file():
            return
        metrics: dict[str, Any] = json.loads(self.run.metrics.read_text())
        metrics["failed_stages"] = [failure.to_dict() for failure in self.failures]
        write_json(self.run.metrics, metrics)
