"""The ensemble as a rung of the ablation ladder: what combining the study's trials adds.

On each of the ladder's splits, every member recipe of the run's kept ensemble is fitted on
the split's training rows and predicts its validation rows; the predictions are combined
with the ensemble's weights (or stacker) and scored, so the rung pairs with the others fold
by fold. Caveat: the weights were chosen on the study's out-of-fold predictions, which
include these validation rows (the members are refit per split, the weights are not).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from tunelab.config import apply_params
from tunelab.errors import TunelabError
from tunelab.evaluation.crossval import cross_validate
from tunelab.results.ensemble import LinearStacker, combine
from tunelab.results.rundir import RunDir
from tunelab.training.metrics import compute_metrics


class StageUnavailable(TunelabError):
    """The run has nothing for this rung to measure (say why)."""


def measure(context: Any) -> list[float]:
    """One score per ladder split of the run's kept ensemble (see the module docstring)."""
    path = RunDir(context.run_dir).ensemble
    if not path.is_file():
        raise StageUnavailable("no ensemble in this run (tunelab run builds one after a study)")
    summary = json.loads(path.read_text())
    if not summary.get("kept"):
        raise StageUnavailable(f"the run kept no ensemble: {summary.get('reason')}")
    stacker = LinearStacker.from_dict(summary["stacker"]) if summary.get("stacker") else None
    members = [m for m in summary["members"] if stacker is not None or m["weight"] > 0]
    weights = np.asarray([m["weight"] for m in members], np.float64)
    weights = weights / weights.sum()
    prepared, task = context.prepared, context.prepared.target.task
    scores = []
    for split in context.splits:
        outputs = []
        for member in members:
            recipe = apply_params(context.recipe, member["params"])
            cv = cross_validate(recipe, prepared, [split])
            outputs.append(cv.oof[split[1]])
        combined = combine(np.stack(outputs), weights, stacker)
        predicted = combined[:, 0] if task == "regression" else combined
        truth = prepared.target.values[split[1]]
        scores.append(compute_metrics(task, truth, predicted)[prepared.metric])
    return scores
