"""Distillation (``ensemble.distill: true``): one fast student learns a kept ensemble.

After the ensemble is chosen, a student with the best trial's recipe trains on the
ensemble's predictions for the training rows (its probabilities as soft targets; its values
for regression), stopping early on the validation rows' true labels. It replaces the
ensemble as ``final/`` only when its validation score is within
``ensemble.distill_tolerance`` of the ensemble's out-of-fold score on the selection metric
(both are scored on rows their models did not train on); otherwise the ensemble stays and
the notes say why. Either way ``metrics.json``'s ``ensemble.distillation`` gives the
ensemble, the student and the best single trial on the test rows, each with its inference
time per row.

A LightGBM or XGBoost student regresses on the ensemble's probability of the positive class
(the logistic loss on it: its raw scores stay logits) or on its values; a multiclass tree
student and an ``sklearn:hgb`` one are not trained: the ensemble stays, with that reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tunelab.config import RunConfig
from tunelab.data import take
from tunelab.data.prepare import Target
from tunelab.evaluation.fitting import fit_on_rows
from tunelab.evaluation.holdout import test_outputs
from tunelab.evaluation.prepare import Prepared
from tunelab.evaluation.trees import is_tree_model
from tunelab.results.predictor import AnyPredictor
from tunelab.training.metrics import GREATER_IS_BETTER, compute_metrics


@dataclass(frozen=True)
class SoftTarget(Target):
    """The target with a teacher's predictions for some rows: what a student trains on
    there (``soft``: one row per dataset row, NaN where the teacher gave none)."""

    soft: np.ndarray = field(default_factory=lambda: np.zeros((0, 1)), repr=False)

    def training_values(self, rows: np.ndarray, scale: tuple[float, float] | None) -> np.ndarray:
        taught = self.soft[rows]
        if not np.isfinite(taught).all():  # the validation rows: their true labels
            return super().training_values(rows, scale)
        if scale is None:  # class probabilities: cross-entropy takes them as targets
            return np.asarray(taught, np.float32)
        return np.asarray((taught[:, 0] - scale[0]) / scale[1], np.float32)


@dataclass
class Student:
    """The trained student (None when none was trained) and what ``metrics.json`` says."""

    predictor: AnyPredictor | None
    record: dict[str, Any]


def distill(
    recipe: RunConfig,
    prepared: Prepared,
    teacher: AnyPredictor,
    *,
    teacher_score: float | None,
) -> Student:
    """Train the student on ``teacher``'s predictions and decide whether it is kept.

    Args:
        recipe: the best trial's config (the student's recipe).
        teacher_score: the ensemble's out-of-fold score on the selection metric.
    """
    metric, tolerance = prepared.metric, recipe.ensemble.distill_tolerance
    base = {"metric": metric, "tolerance": tolerance, "ensemble_out_of_fold": teacher_score}
    tree = is_tree_model(recipe)
    if tree and (
        recipe.model.source.startswith("sklearn:") or prepared.target.task == "multiclass"
    ):
        why = (
            f"the best trial is a tree model ({recipe.model.source}) on a "
            f"{prepared.target.task} task; tree students are LightGBM or XGBoost on binary or "
            "regression tasks"
        )
        return Student(None, {**base, "kept": False, "reason": why})
    if teacher_score is None:
        why = "the ensemble has no out-of-fold score to compare a student with"
        return Student(None, {**base, "kept": False, "reason": why})
    train_rows, validation_rows = prepared.split.train, prepared.split.validation
    taught = test_outputs(teacher, take(prepared.raw.inputs, train_rows))
    soft = np.full((len(prepared.target.values), prepared.target.num_outputs), np.nan)
    soft[train_rows] = taught.reshape(len(train_rows), -1)
    target = prepared.target
    student_target = SoftTarget(
        task=target.task, values=target.values, classes=target.classes, soft=soft
    )
    fitted = fit_on_rows(
        recipe, replace(prepared, target=student_target), train_rows, validation_rows
    )
    score = float(fitted.result.final[metric])
    better = GREATER_IS_BETTER[metric]
    kept = score >= teacher_score - tolerance if better else score <= teacher_score + tolerance
    verdict = "within" if kept else "not within"
    reason = (
        f"the student's validation {metric} {score:.4f} is {verdict} {tolerance:g} of the "
        f"ensemble's out-of-fold {teacher_score:.4f}: "
        + ("the student is the final predictor" if kept else "the ensemble stays")
    )
    record = {**base, "kept": kept, "student_validation": score, "reason": reason}
    return Student(fitted.predictor, record)


def side_by_side(prepared: Prepared, predictors: dict[str, AnyPredictor]) -> dict[str, Any]:
    """Each predictor's metrics on the test rows and its inference time per row (µs,
    best of three)."""
    rows = prepared.split.test
    inputs = take(prepared.raw.inputs, rows)
    truth, task = prepared.target.values[rows], prepared.target.task
    found: dict[str, Any] = {}
    for name, predictor in predictors.items():
        outputs, best = test_outputs(predictor, inputs), float("inf")
        for _ in range(3):
            started = time.perf_counter()
            test_outputs(predictor, inputs)
            best = min(best, time.perf_counter() - started)
        found[name] = {
            **compute_metrics(task, truth, outputs),
            "us_per_row": 1e6 * best / max(1, len(rows)),
        }
    return found


def distill_stage(
    recipe: RunConfig,
    prepared: Prepared,
    ensemble: AnyPredictor,
    single: AnyPredictor,
    summary: dict[str, Any],
) -> AnyPredictor:
    """The final predictor after distillation (the student when kept, else ``ensemble``);
    records what happened in ``summary["distillation"]`` (and ``summary["final"]``)."""
    reference = ((summary.get("comparisons") or {}).get("user_metric") or {}).get("ensemble")
    student = distill(recipe, prepared, ensemble, teacher_score=reference)
    record = student.record
    if student.predictor is not None:
        compared = {"ensemble": ensemble, "student": student.predictor, "best_single": single}
        record["test"] = side_by_side(prepared, compared)
    summary["distillation"] = record
    if record["kept"] and student.predictor is not None:
        summary["final"] = "distilled student"
        return student.predictor
    return ensemble
