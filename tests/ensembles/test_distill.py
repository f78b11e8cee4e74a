"""``ensemble.distill``: one student learns a kept ensemble, and replaces it only when its
validation score is within the tolerance of the ensemble's out-of-fold score."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_config
from tests.evaluation.test_boosters import two_trial_study
from tunelab.config import apply_params
from tunelab.ensembles.distill import SoftTarget, distill
from tunelab.evaluation.prepare import prepare
from tunelab.flows.study import run_study
from tunelab.progress.study import distillation_lines
from tunelab.results.predictor import load_predictor


def study(tmp_path: Path, tolerance: float) -> tuple[Path, dict[str, Any]]:
    cfg = two_trial_study("train.lr", [0.003, 0.01], distill=True, distill_tolerance=tolerance)
    out = tmp_path / "run"
    run_study(cfg, out=out)
    return out, json.loads((out / "metrics.json").read_text())


def test_a_student_within_the_tolerance_becomes_the_final_predictor(tmp_path: Path) -> None:
    out, metrics = study(tmp_path, tolerance=1.0)
    record = metrics["ensemble"]["distillation"]
    assert record["kept"] and metrics["final"] == "distilled student", record
    assert "the student is the final predictor" in record["reason"]
    test = record["test"]
    assert set(test) == {"ensemble", "student", "best_single"}
    assert all(row["us_per_row"] > 0 and 0 <= row["accuracy"] <= 1 for row in test.values())
    manifest = json.loads((out / "final" / "predictor.json").read_text())
    assert manifest["kind"] == "model"  # one network, not the ensemble's members
    inputs = pd.read_csv(out / "test_inputs.csv")
    assert load_predictor(out).predict_proba(inputs).shape == (len(inputs), 2)
    assert test["student"]["accuracy"] == metrics["test"]["accuracy"]
    report = (out / "report.html").read_text()
    assert "distillation: the student" in report and "us_per_row" in report
    lines = distillation_lines(record, metrics["test_interval"])
    assert lines[0].startswith("distillation: the student's validation accuracy")
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "ensemble",
        "student",
        "best single",
    ]


def test_a_student_outside_the_tolerance_leaves_the_ensemble(tmp_path: Path) -> None:
    cfg = make_config(data={"source": "sklearn:breast_cancer"}, train={"epochs": 1})
    cfg = apply_params(cfg, {"ensemble.distill_tolerance": 0.0})
    prepared = prepare(cfg)
    teacher = _teacher(cfg, prepared)
    student = distill(cfg, prepared, teacher, teacher_score=1.0)  # nothing is within 0 of 1.0
    assert student.predictor is not None
    assert not student.record["kept"]
    assert "the ensemble stays" in student.record["reason"]
    assert student.record["student_validation"] < 1.0


def test_an_hgb_recipe_is_not_distilled_and_says_why() -> None:
    cfg = make_config(data={"source": "sklearn:breast_cancer"}, model={"source": "sklearn:hgb"})
    prepared = prepare(cfg)
    student = distill(cfg, prepared, _teacher(cfg, prepared), teacher_score=0.9)
    assert student.predictor is None and not student.record["kept"]
    assert "tree model (sklearn:hgb)" in student.record["reason"]


@pytest.mark.parametrize("source", ["lightgbm:gbdt", "xgboost:gbtree"])
def test_a_boosted_student_regresses_on_the_teacher_s_probabilities(source: str) -> None:
    pytest.importorskip(source.partition(":")[0])
    cfg = make_config(
        data={"source": "sklearn:breast_cancer"}, model={"source": source}, train={"epochs": 200}
    )
    prepared = prepare(cfg)
    teacher = _teacher(cfg, prepared)
    student = distill(cfg, prepared, teacher, teacher_score=0.5)
    assert student.predictor is not None and student.predictor.kind == "booster"
    assert student.record["kept"], student.record
    inputs = prepared.raw.inputs.iloc[prepared.split.train]
    taught, learned = teacher.predict_proba(inputs)[:, 1], student.predictor.predict_proba(inputs)
    assert np.abs(learned[:, 1] - taught).mean() < 0.05  # it follows the teacher's probabilities
    assert np.allclose(learned.sum(axis=1), 1.0)


def test_the_student_trains_on_the_teacher_s_probabilities_and_validates_on_labels() -> None:
    values = np.array([0, 1, 1, 0])
    soft = np.full((4, 2), np.nan)
    soft[:2] = [[0.3, 0.7], [0.9, 0.1]]
    target = SoftTarget(task="binary", values=values, classes=["a", "b"], soft=soft)
    np.testing.assert_allclose(target.training_values(np.array([0, 1]), None), soft[:2])
    assert target.training_values(np.array([2, 3]), None).tolist() == [1, 0]


def _teacher(cfg: Any, prepared: Any) -> Any:
    from tunelab.evaluation.fitting import fit_on_rows

    recipe = apply_params(cfg, {"model.source": "builtin:mlp"})
    return fit_on_rows(recipe, prepared, prepared.split.train, prepared.split.validation).predictor
