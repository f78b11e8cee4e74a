"""What a tracker gets (a finished trial, the final scores), what it must do with them, and
how a tracker module says it is started.

Each tracker is a module ``tracking/_NAME.py`` whose ``start`` function gives the
``Start`` of the tracker ``tracking.NAME`` names (the names: ``tunelab.registry.TRACKERS``);
``trackers.Tracking`` starts and feeds them and knows none by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tunelab.config import RunConfig


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


@dataclass(frozen=True)
class Start:
    """How to start one tracker the config names.

    Attributes:
        target: where it writes (for messages and ``metrics.json``).
        load: imports its package (a slow first import is no sign of an unreachable store).
        start: makes the tracker (its store checked within ``tracking.timeout``).
    """

    target: str
    load: Callable[[], Any]
    start: Callable[[], Tracker]


@dataclass(frozen=True)
class Opening:
    """What every tracker is opened with besides the config.

    Attributes:
        label: the study's (or fit's) run name, ``NAME-KEY``.
        key: marks the tracker runs of this study, so a resumed study finds them.
        role: ``study`` (a parent of trial runs) or ``train``.
        run_dir: the run directory, resolved (a tag on the tracker's run).
    """

    label: str
    key: str
    role: str
    run_dir: str


StartTracker = Callable[[RunConfig, Opening], Start]


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
        if key not in ("epoch", "seconds") and finite(value)
    }


def finite(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value == value
        and abs(value) != float("inf")
    )
