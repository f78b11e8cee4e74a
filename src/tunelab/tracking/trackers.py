"""``Tracking``: the trackers a config names, fed from what the run stored.

Each finished trial is sent once: the trackers say which trials they hold already, so a
resumed study, or a study whose trials ran in ``--jobs`` worker processes, sends the
missing ones (``Tracking.on_trial`` after each trial, ``Tracking.finish`` at the end).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState

from tunelab.config import RunConfig
from tunelab.results.artifacts import TrialArtifacts
from tunelab.results.rundir import RunDir
from tunelab.results.trial_record import record

log = logging.getLogger("tunelab")
KEY_ATTR = "tracking_key"  # study user attribute: which tracker runs belong to this study
FAILURES_BEFORE_OFF = 3  # a tracker failing this many times in a row is switched off


@dataclass(frozen=True)
class TrialRecord:
    """What a tracker gets of one finished trial.

    Attributes:
        state: complete, pruned or fail.
        curves: per fold, the epoch records (``epoch`` from 0, ``train_loss``,
            ``val_loss``, every metric, ``lr``); a pruned trial has the values the pruner
            saw, a failed one none.
    """

    number: int
    state: str
    params: dict[str, Any]
    value: float | None
    std: float | None
    fold_scores: list[float]
    curves: list[list[dict[str, Any]]]
    fail_reason: str | None


@dataclass(frozen=True)
class FinalRecord:
    """The run's final predictor: its test scores (``test_accuracy``, ``test_accuracy_low``
    ...) and, for ``tunelab train``, the fit's epoch records."""

    scores: dict[str, float]
    curves: list[list[dict[str, Any]]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


class Tracker(Protocol):
    """One experiment tracker (``_mlflow.MlflowTracker``, ``_tensorboard.TensorBoardTracker``)."""

    name: str

    def logged(self) -> set[int]:
        """The numbers of the trials it holds already."""
        ...

    def trial(self, record: TrialRecord) -> None: ...

    def final(self, record: FinalRecord) -> None: ...


class Tracking:
    """The trackers of one run; every call into them is guarded (see the module doc)."""

    def __init__(
        self, trackers: list[Tracker], *, metric: str, artifacts: TrialArtifacts | None = None
    ) -> None:
        self.trackers = trackers
        self.metric = metric
        self.artifacts = artifacts
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

        Raises:
            FatalError: a tracker's package is missing or its store cannot be opened.
        """
        if cfg.tracking.mlflow is None and cfg.tracking.tensorboard is None:
            return cls([], metric=metric)
        key = _study_key(study) if study is not None else _stamp()
        label = f"{cfg.name}-{key}"
        trackers: list[Tracker] = []
        if cfg.tracking.mlflow is not None:
            from tunelab.tracking._mlflow import MlflowTracker

            trackers.append(
                MlflowTracker(
                    cfg.tracking.mlflow,
                    experiment=cfg.tracking.experiment or cfg.name,
                    label=label,
                    key=key,
                    role="study" if study is not None else "train",
                    params=flat_config(cfg),
                    tags={"tunelab_run_dir": str(run.path.resolve())},
                )
            )
        if cfg.tracking.tensorboard is not None:
            from tunelab.tracking._tensorboard import TensorBoardTracker

            trackers.append(TensorBoardTracker(Path(cfg.tracking.tensorboard) / label))
        return cls(trackers, metric=metric, artifacts=artifacts)

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

    def final(self, record: FinalRecord) -> None:
        """Send the final predictor's scores (after the trials, so they come last)."""
        for tracker in list(self.trackers):
            self._guard(tracker, "the final scores", tracker.final, record)

    def _guard(self, tracker: Tracker, what: str, call: Callable[..., Any], *args: Any) -> bool:
        """``call(*args)``; a failure is logged, and the tracker is switched off after
        ``FAILURES_BEFORE_OFF`` in a row. Returns whether it succeeded."""
        try:
            call(*args)
        except Exception as exc:  # a tracker never fails a trial or the run
            self._failures[tracker.name] += 1
            off = self._failures[tracker.name] >= FAILURES_BEFORE_OFF
            log.warning(
                "tracking: %s could not record %s (%s: %s)%s",
                tracker.name,
                what,
                type(exc).__name__,
                exc,
                "; switched off for the rest of this run" if off else "",
                exc_info=True,
            )
            if off:
                self.trackers.remove(tracker)
            return False
        self._failures[tracker.name] = 0
        return True


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
        f"test_{name}": float(v) for name, v in (metrics.get("test") or {}).items() if _finite(v)
    }
    interval = metrics.get("test_interval") or {}
    for side in ("low", "high"):
        if _finite(interval.get(side)):
            scores[f"test_{interval.get('metric')}_{side}"] = float(interval[side])
    cv = metrics.get("cross_validation") or {}
    for name in ("mean", "std"):
        if _finite(cv.get(name)):
            scores[f"cv_{cv.get('metric')}_{name}"] = float(cv[name])
    tags = {k: str(metrics[k]) for k in ("best_trial", "stop_reason") if metrics.get(k) is not None}
    return FinalRecord(scores=scores, curves=[history] if history else [], tags=tags)


def flat_config(cfg: RunConfig) -> dict[str, str]:
    """The config as dotted names and text values (what trackers take as parameters)."""
    flat: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            flat[prefix] = str(value)

    walk("", cfg.model_dump(mode="json"))
    return flat


def epoch_values(record: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of an epoch record that trackers draw (not the epoch itself or
    its wall time)."""
    return {
        key: float(value)
        for key, value in record.items()
        if key not in ("epoch", "seconds") and _finite(value)
    }


def _finite(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value == value
        and abs(value) != float("inf")
    )


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
