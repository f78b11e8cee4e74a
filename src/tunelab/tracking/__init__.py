"""Experiment trackers (``tracking:`` in the config): MLflow and TensorBoard get each
trial's per-epoch curves, parameters and scores, and the final test metrics.

Trackers read what a trial stored (its histories in the artifact store) after the trial
has finished, so they never run inside the training loop. Every call into a tracker is
bounded in time (``tracking.timeout``, through ``tunelab.reach.within``): a tracker that
fails or hangs is logged and switched off; it never fails a trial or stalls the run. A
tracker that cannot start (its package missing, its store unreachable: checked once, with a
timeout) stops the run before any training, with the fix; with ``tracking.required: false``
the run goes on without it. ``metrics.json``'s ``tracking`` says what became of each.

Example (config)::

    tracking:
      mlflow: sqlite:///mlflow.db
      tensorboard: runs/tensorboard
"""

from tunelab.tracking._mlflow import refuse_unreachable
from tunelab.tracking.outcome import TrackerOutcome, outcome_lines
from tunelab.tracking.records import Tracker
from tunelab.tracking.trackers import Tracking, final_record

__all__ = [
    "Tracker",
    "TrackerOutcome",
    "Tracking",
    "final_record",
    "outcome_lines",
    "refuse_unreachable",
]
