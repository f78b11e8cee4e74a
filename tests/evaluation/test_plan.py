"""One plan per fit: the fitter is chosen from a table, and only a network's plan holds an
encoder and a fresh model."""

from __future__ import annotations

from tests.conftest import make_config
from tunelab.evaluation.fitting import FITTERS, fit_on_rows, fitter_for, plan_fit
from tunelab.evaluation.plan import ModelPlan
from tunelab.evaluation.prepare import prepare


def test_the_first_fitter_that_takes_a_recipe_fits_it() -> None:
    assert list(FITTERS) == ["boosters", "trees", "classical_head", "loop"]
    assert fitter_for(make_config()).name == "loop"
    probe = {"strategy": "linear_probe"}
    head = make_config(model={"head": "logistic"}, finetuning=probe)
    assert fitter_for(head).name == "classical_head"
    trees = make_config(model={"source": "sklearn:hgb", "head": "logistic"}, finetuning=probe)
    assert fitter_for(trees).name == "trees"
    for source in ("lightgbm:gbdt", "xgboost:gbtree"):
        assert fitter_for(make_config(model={"source": source})).name == "boosters"


def test_only_a_networks_plan_builds_an_encoder_and_a_model() -> None:
    cfg = make_config()
    prepared = prepare(cfg)
    rows = prepared.split.train
    plan = plan_fit(cfg, prepared, rows, prepared.split.validation)
    assert isinstance(plan, ModelPlan) and plan.fitter == "loop"
    assert plan.encoder.input_shape == (4,) and not plan.caches_features
    assert plan.scale is None  # classification: targets are not standardized
    trees = make_config(model={"source": "sklearn:hgb"})
    tree_plan = plan_fit(trees, prepare(trees), rows, None)
    assert not isinstance(tree_plan, ModelPlan) and tree_plan.fitter == "trees"


def test_a_fit_is_trained_by_its_plans_fitter() -> None:
    cfg = make_config(model={"source": "sklearn:hgb"}, train={"epochs": 5})
    prepared = prepare(cfg)
    fitted = fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation)
    assert "gradient_boosting" in fitted.predictor.info["techniques"]
    assert len(fitted.result.history) <= 5
