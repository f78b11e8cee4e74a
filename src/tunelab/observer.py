"""The one way to watch a flow: ``Observer``, whose every method is optional.

As Lightning's ``Callback``: a watcher subclasses ``Observer`` and overrides the events it
cares about; the rest stay no-ops. The live views (``tunelab.progress``), the trackers, the
pruning of a trial, a worker's lines and the tests all watch the same events, and
``Observers`` tells several at once, in order.

Example::

    class Trials(Observer):
        def trial_ended(self, study, trial):
            print(trial.number, trial.state)

    run_study(cfg, observer=Trials())
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the events carry Optuna's objects; nothing here imports Optuna
    import optuna
    from optuna.trial import FrozenTrial

Record = dict[str, Any]  # one epoch: losses, metrics, lr, seconds (``training.loop``)


class Observer:
    """What a flow tells while it runs; subclass it and override what you watch."""

    # -- any flow ---------------------------------------------------------------------------
    def stage(self, text: str) -> None:
        """A stage starts (``loading data``, ``refit: trial 3 ...``), or ``note: ...`` on it."""

    # -- one fit and its k-fold estimate (``tunelab train``) --------------------------------
    def epoch(self, record: Record) -> None:
        """An epoch of the one fit ended."""

    def fold_epoch(self, fold: int, record: Record) -> None:
        """An epoch of ``fold`` (0-based) of the k-fold estimate ended."""

    # -- a study (``tunelab run``, a worker) ------------------------------------------------
    def trial_started(self, number: int, params: dict[str, Any]) -> None:
        """Trial ``number`` starts with ``params`` (config values)."""

    def trial_epoch(self, number: int, fold: int, folds: int, record: Record) -> None:
        """An epoch of a trial's fold ended (the refit's epochs: fold 0 of 1 of its trial).
        May raise ``optuna.TrialPruned`` to stop the trial."""

    def trial_fold(self, number: int, fold: int, score: float) -> None:
        """A trial's fold was scored. May raise ``optuna.TrialPruned``."""

    def trial_ended(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """A trial this process ran finished (complete, pruned or failed)."""

    def poll(self, study: optuna.Study) -> None:
        """Worker processes run the trials: look at the study now."""

    # -- the ablation ladder ----------------------------------------------------------------
    def ladder_planned(self, *, folds: int, reused: int, metric: str) -> None:
        """``folds`` fits are to be trained, ``reused`` were measured by an earlier run."""

    def variant_epoch(self, label: str, fold: int, folds: int, record: Record) -> None:
        """An epoch of ``fold`` of the ladder's variant ``label`` ended."""

    def variant_fold(self, label: str, fold: int, folds: int, score: float) -> None:
        """A fold of a variant was measured and saved."""

    def variant_done(self, label: str, summary: dict[str, Any]) -> None:
        """A variant has all its folds (``summary``: ``ladder.document.variant_summary``)."""


class Observers(Observer):
    """Several observers told each event in the order given."""

    def __init__(self, *observers: Observer | None) -> None:
        self.observers = [o for o in observers if o is not None]

    def stage(self, text: str) -> None:
        for o in self.observers:
            o.stage(text)

    def epoch(self, record: Record) -> None:
        for o in self.observers:
            o.epoch(record)

    def fold_epoch(self, fold: int, record: Record) -> None:
        for o in self.observers:
            o.fold_epoch(fold, record)

    def trial_started(self, number: int, params: dict[str, Any]) -> None:
        for o in self.observers:
            o.trial_started(number, params)

    def trial_epoch(self, number: int, fold: int, folds: int, record: Record) -> None:
        for o in self.observers:
            o.trial_epoch(number, fold, folds, record)

    def trial_fold(self, number: int, fold: int, score: float) -> None:
        for o in self.observers:
            o.trial_fold(number, fold, score)

    def trial_ended(self, study: optuna.Study, trial: FrozenTrial) -> None:
        for o in self.observers:
            o.trial_ended(study, trial)

    def poll(self, study: optuna.Study) -> None:
        for o in self.observers:
            o.poll(study)

    def ladder_planned(self, *, folds: int, reused: int, metric: str) -> None:
        for o in self.observers:
            o.ladder_planned(folds=folds, reused=reused, metric=metric)

    def variant_epoch(self, label: str, fold: int, folds: int, record: Record) -> None:
        for o in self.observers:
            o.variant_epoch(label, fold, folds, record)

    def variant_fold(self, label: str, fold: int, folds: int, score: float) -> None:
        for o in self.observers:
            o.variant_fold(label, fold, folds, score)

    def variant_done(self, label: str, summary: dict[str, Any]) -> None:
        for o in self.observers:
            o.variant_done(label, summary)
