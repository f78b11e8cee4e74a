"""The run flows, one per command that writes a run directory: ``train`` (``tunelab
train``, and the scikit-learn estimators' ``fit``), ``study`` (``tunelab run``) and
``ladder`` (``tunelab ladder``).

A flow sequences the stages below it (data, evaluation, search, ensembles, ladder,
results, report, tracking) and owns its run directory from ``open_run_dir`` to the lock's
release. Each has the same shape::

    flow(cfg, *, out=None, overwrite=False, observer=None, ...) -> its Summary

``out`` is the run directory (default ``runs/NAME``), ``overwrite`` empties it first, and
``observer`` (``tunelab.observer.Observer``) is told what happens. Each flow returns its
own small summary (``TrainSummary``, ``StudySummary``, ``LadderSummary``): what a caller
prints after each differs (a fit's metrics, a study's trials and stop reason, a ladder's
document), and one shared class would carry fields that are empty for two of the three.
Nothing here is imported by the stages: the arrows run from ``cli`` into ``flows`` and
from ``flows`` down.
"""
