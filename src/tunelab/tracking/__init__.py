"""Experiment trackers (``tracking:`` in the config): MLflow and TensorBoard get each
trial's per-epoch curves, parameters and scores, and the final test metrics.

Trackers read what a trial stored (its histories in the artifact store) after the trial
has finished, so they never run inside the training loop. A tracker that fails is logged
and switched off; it never fails a trial or the run. A tracker that cannot start (its
package missing, its store unreachable) stops the run before any training, with the fix.

Example (config)::

    tracking:
      mlflow: sqlite:///mlflow.db
      tensorboard: runs/tensorboard
"""

from tunelab.tracking.trackers import Tracker, Tracking, final_record

__all__ = ["Tracker", "Tracking", "final_record"]
