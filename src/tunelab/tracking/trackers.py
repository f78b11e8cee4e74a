"""``Tracking``: the trackers a config names, fed from what the run stored.

Each finished trial is sent once: the trackers say which trials they hold already, so a
resumed study, or a study whose trials ran in ``--jobs`` worker processes, sends the
missing ones (``Tracking.on_trial`` after each trial, ``Tracking.finish`` at the end).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tunelab.config import RunConfig
from tunelab.errors import FatalError
from tunelab.observer import Observer
from tunelab.reach import within
from tunelab.registry import TRACKERS
from tunelab.results.artifacts import TrialArtifacts
from tunelab.results.rundir import RunDir, write_json
from tunelab.results.trial_record import record
from tunelab.tracking.outcome import INCOMPLETE, NOT_USED, SENT, STOPPED, TrackerOutcome
from tunelab.tracking.records import (
    FinalRecord,
    Opening,
    Start,
    StartTracker,
    Tracker,
    TrialRecord,
    finite,
)

log = logging.getLogger("tunelab")
KEY_ATTR = "tracking_key"  # study user attribute: which tracker runs belong to this study
FAILURES_BEFORE_OFF = 3  # a tracker failing this many times in a row is switched off
START_SECONDS = 60.0  # the most a tracker's start may take, its check included


class Tracking(Observer):
    """The trackers of one run; every call into them is guarded and bounded in time (see the
    module doc), and what became of each is kept in ``outcomes``. As an observer of a study
    it sends each trial as it ends."""

    def __init__(
        self,
        trackers: list[Tracker],
        *,
        metric: str,
        artifacts: TrialArtifacts | None = None,
        timeout: float = 5.0,
        outcomes: dict[str, TrackerOutcome] | None = None,
        run: RunDir | None = None,
    ) -> None:
        self.trackers = trackers
        self.metric = metric
        self.artifacts = artifacts
        self.timeout = timeout
        self.outcomes = outcomes if outcomes is not None else {}
        self.run = run
        self._failures = dict.fromkeys((t.name for t in trackers), 0)
        self._sent: dict[str, set[int]] = {}

    @classmethod
    def open(
        cls,
        cfg: RunConfig,
        run: RunDir,
        *,
        metric: str,
        study: optuna.Study | None = None,
        artifacts: TrialArtifacts | None = None,
    ) -> Tracking:
        """Start the trackers ``cfg.tracking`` names (none: a Tracking that does nothing).

        Each is checked once, within ``tracking.timeout``; one that cannot start is left out
        when ``tracking.required`` is false (its outcome says why).

        Raises:
            FatalError: a tracker cannot start (its package is missing, its store cannot be
                reached or opened) and ``tracking.required`` is true.
        """
        if not named(cfg):
            return cls([], metric=metric)
        timeout = cfg.tracking.timeout
        trackers: list[Tracker] = []
        outcomes: dict[str, TrackerOutcome] = {}
        for name, start in _starts(cfg, run, study):
            target = start.target
            try:
                start.load()  # a slow first import is no sign of an unreachable store
                # the check inside waits `timeout`; the set-up after it (a new MLflow
                # database makes its tables) may take longer, but never forever
                trackers.append(within(max(START_SECONDS, 2 * timeout), start.start))
                outcomes[name] = TrackerOutcome(target)
            except (FatalError, TimeoutError) as exc:
                problem = _start_problem(name, target, exc)
                if cfg.tracking.required:
                    raise FatalError(
                        f"tracking.{name}: {problem}, or set tracking.required: false to run "
                        "without it"
                    ) from None
                log.warning(
                    "tracking: %s is not used (tracking.required: false): %s", name, problem
                )
                outcomes[name] = TrackerOutcome(target, NOT_USED, problem)
        return cls(
            trackers,
            metric=metric,
            artifacts=artifacts,
            timeout=timeout,
            outcomes=outcomes,
            run=run,
        )

    def trial_ended(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.on_trial(study, trial)

    def on_trial(self, study: optuna.Study, trial: FrozenTrial | None = None) -> None:
        """Send every finished trial that a tracker does not hold yet (an Optuna callback;
        ``trial`` is only the one that just ended)."""
        if not self.trackers:
            return
        finished = study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        )
        for tracker in list(self.trackers):
            sent = self._held(tracker)
            for frozen in sorted(finished, key=lambda t: t.number):
                if sent is None or frozen.number in sent:
                    continue
                record = trial_record(frozen, self.artifacts, self.metric)
                if not self._guard(tracker, f"trial {frozen.number}", tracker.trial, record):
                    break  # the next trial's callback tries again
                sent.add(frozen.number)

    def _held(self, tracker: Tracker) -> set[int] | None:
        if tracker.name not in self._sent:
            held: set[int] = set()
            if not self._guard(
                tracker, "which trials it holds", lambda: held.update(tracker.logged())
            ):
                return None
            self._sent[tracker.name] = held
        return self._sent[tracker.name]

    def final(
        self, metrics: dict[str, Any], *, history: list[dict[str, Any]] | None = None
    ) -> None:
        """Send the final predictor's scores (after the trials, so they come last); then
        add what became of each tracker to ``metrics`` and to the run's ``metrics.json``."""
        record = final_record(metrics, history=history)
        for tracker in list(self.trackers):
            self._guard(tracker, "the final scores", tracker.final, record)
        if self.outcomes:
            metrics["tracking"] = {name: o.to_dict() for name, o in self.outcomes.items()}
            if self.run is not None:
                write_json(self.run.metrics, metrics)

    def _guard(self, tracker: Tracker, what: str, call: Callable[..., Any], *args: Any) -> bool:
        """``call(*args)``, waited for at most ``timeout``. A failure is logged; the tracker
        is switched off after a timeout, or after ``FAILURES_BEFORE_OFF`` failures in a
        row. Returns whether it succeeded."""
        outcome = self.outcomes.setdefault(tracker.name, TrackerOutcome(tracker.name))
        try:
            within(self.timeout, call, *args)
        except Exception as exc:  # a tracker never fails a trial or the run
            self._failures[tracker.name] = self._failures.get(tracker.name, 0) + 1
            failures = self._failures[tracker.name]
            off = isinstance(exc, TimeoutError) or failures >= FAILURES_BEFORE_OFF
            outcome.state = STOPPED if off else INCOMPLETE
            outcome.problem = f"could not record {what} ({_one_line(exc)})"
            log.warning(
                "tracking: %s %s%s",
                tracker.name,
                outcome.problem,
                "; switched off for the rest of this run" if off else "",
            )
            log.info("tracking: %s failed here", tracker.name, exc_info=exc)  # for run.log
            if off:
                self.trackers.remove(tracker)
            return False
        self._failures[tracker.name] = 0
        outcome.state, outcome.problem = SENT, None
        return True


def named(cfg: RunConfig) -> list[str]:
    """The trackers ``cfg.tracking`` names: each tracker is the ``tracking:`` field of its
    name."""
    return [name for name in TRACKERS if getattr(cfg.tracking, name) is not None]


def _starts(cfg: RunConfig, run: RunDir, study: optuna.Study | None) -> list[tuple[str, Start]]:
    """(name, how to start it) of each tracker ``cfg.tracking`` names."""
    key = _study_key(study) if study is not None else _stamp()
    opening = Opening(
        label=f"{cfg.name}-{key}",
        key=key,
        role="study" if study is not None else "train",
        run_dir=str(run.path.resolve()),
    )
    starts = []
    for name in named(cfg):
        start: StartTracker = TRACKERS.get(name)
        starts.append((name, start(cfg, opening)))
    return starts


def _start_problem(name: str, target: str, exc: Exception) -> str:
    """Why a tracker could not start, without the ``tracking.NAME:`` its error begins with."""
    if isinstance(exc, TimeoutError):
        return (
            f"{exc} from {target!r}; check that it is up and that the address is right, "
            "or raise tracking.timeout"
        )
    return str(exc).removeprefix(f"tracking.{name}: ")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(exc, TimeoutError):
        return first
    return f"{type(exc).__name__}: {first[:300]}"


def trial_record(trial: FrozenTrial, artifacts: TrialArtifacts | None, metric: str) -> TrialRecord:
    curves: list[list[dict[str, Any]]] = []
    if trial.state == TrialState.COMPLETE and artifacts is not None:
        try:
            curves = artifacts.histories(trial)
        except Exception as exc:  # a deleted artifact: the scores still go
            log.info("tracking: trial %d has no histories (%s)", trial.number, exc)
    if not curves and trial.intermediate_values:
        curves = [
            [
                {"epoch": step, metric: value}
                for step, value in sorted(trial.intermediate_values.items())
            ]
        ]
    return TrialRecord(
        number=trial.number,
        state=trial.state.name.lower(),
        params=dict(trial.params),
        value=trial.value,
        std=record(trial).get("std"),
        fold_scores=[float(s) for s in record(trial).get("fold_scores") or []],
        curves=curves,
        fail_reason=trial.user_attrs.get("fail_reason"),
    )


def final_record(
    metrics: dict[str, Any], *, history: list[dict[str, Any]] | None = None
) -> FinalRecord:
    """The test scores of ``metrics.json`` (and its interval) as flat names."""
    scores = {
        f"test_{name}": float(v) for name, v in (metrics.get("test") or {}).items() if finite(v)
    }
    interval = metrics.get("test_interval") or {}
    for side in ("low", "high"):
        if finite(interval.get(side)):
            scores[f"test_{interval.get('metric')}_{side}"] = float(interval[side])
    cv = metrics.get("cross_validation") or {}
    for name in ("mean", "std"):
        if finite(cv.get(name)):
            scores[f"cv_{cv.get('metric')}_{name}"] = float(cv[name])
    tags = {k: str(metrics[k]) for k in ("best_trial", "stop_reason") if metrics.get(k) is not None}
    return FinalRecord(scores=scores, curves=[history] if history else [], tags=tags)


def _study_key(study: optuna.Study) -> str:
    """The study's tracking key (a start time), made once and kept in the study, so a
    resumed study (or a worker) adds to the same tracker runs and a new one gets its own."""
    key = study.user_attrs.get(KEY_ATTR)
    if not isinstance(key, str):
        key = _stamp()
        study.set_user_attr(KEY_ATTR, key)
    return key


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
