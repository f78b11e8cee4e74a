"""Rungs that cannot change the training (known from the config, nothing trained), what
each rung switches, and what the ladder's epochs are too few to show."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import make_config
from tunelab.config import RunConfig
from tunelab.evaluation.prepare import prepare
from tunelab.ladder.idle import flat, measured_fields
from tunelab.ladder.run import probe
from tunelab.ladder.rungs import Plan, Step, owner, plan, recipes
from tunelab.techniques import TECHNIQUES, FoldOutcome, TechniqueSpec
from tunelab.training.hooks import Technique


def planned(cfg: RunConfig, params: dict[str, Any] | None = None) -> Plan:
    prepared = prepare(cfg)
    _, final = recipes(cfg, params)
    return plan(cfg, params, probe(final, prepared, prepared.split.train))


def by_name(steps: list[Step]) -> dict[str, Step]:
    return {step.name: step for step in steps}


def switched(steps: list[Step]) -> dict[str, dict[str, Any]]:
    """What each measured rung changes from the measured rung below it."""
    out: dict[str, dict[str, Any]] = {}
    below: dict[str, Any] | None = None
    for step in steps:
        if step.recipe is None or step.stage is not None:
            continue
        fields = flat(measured_fields(step.recipe))
        if below is not None:
            out[step.name] = {k: v for k, v in fields.items() if below.get(k) != v}
        below = fields
    return out


def test_early_stopping_that_cannot_stop_within_the_epochs_is_idle_without_training() -> None:
    cfg = make_config(
        early_stopping={"patience": 6, "restore_best": False},
        ladder={"epochs": 5, "rungs": ["regularization", "early_stopping"]},
    )
    steps = planned(cfg)
    rung = by_name(steps.ladder)["early_stopping"]
    assert rung.idle  # not trained (see test_run)
    assert rung.reason == (
        "early stopping cannot stop within 5 epochs (patience 6: 8 epochs or more let it), "
        "and restore_best is false"
    )
    assert by_name(steps.leave_one_out)["early_stopping"].idle
    assert not by_name(steps.ladder)["regularization"].idle
    # at 8 epochs it can stop once: measured
    assert not by_name(
        planned(
            cfg.model_copy(update={"ladder": cfg.ladder.model_copy(update={"epochs": 8})})
        ).ladder
    )["early_stopping"].idle


def test_early_stopping_that_can_only_restore_is_measured_with_a_warning() -> None:
    cfg = make_config(early_stopping={"patience": 6, "restore_best": True}, ladder={"epochs": 5})
    steps = planned(cfg)
    assert not by_name(steps.ladder)["early_stopping"].idle
    assert steps.warnings == [
        "early_stopping: early stopping cannot stop within 5 epochs (patience 6: 8 epochs or "
        "more let it); its rung measures restore_best alone"
    ]


def test_weight_averaging_that_starts_after_the_last_epoch_is_idle() -> None:
    cfg = make_config(weight_averaging={"method": "swa", "start_epoch": 5}, ladder={"epochs": 5})
    rung = by_name(planned(cfg).ladder)["weight_averaging"]
    assert rung.idle
    assert rung.reason == (
        "weight averaging starts at epoch 5, after the 5 epochs trained: nothing is averaged"
    )
    assert not by_name(planned(make_config(weight_averaging={"method": "swa"})).ladder)[
        "weight_averaging"
    ].idle


def test_regularization_with_every_value_zero_is_idle() -> None:
    zero = {"dropout": 0.0, "weight_decay": 0.0}
    rung = by_name(planned(make_config(regularization=zero)).ladder)["regularization"]
    assert rung.idle and "every regularization value is zero" in str(rung.reason)


def test_each_technique_gets_its_own_tuned_values_on_its_own_rung() -> None:
    cfg = make_config(augmentation={"noise": 0.1})
    params = {
        "train.lr": 0.02,
        "train.optimizer": "sgd",
        "train.batch_size": 16,
        "train.schedule": "constant",
        "regularization.dropout": 0.3,
        "augmentation.noise": 0.2,
    }
    steps = planned(cfg, params)
    changes = switched(steps.ladder)
    assert changes["tuned"] == {
        "train.lr": 0.02,
        "train.optimizer": "sgd",
        "train.batch_size": 16,
        "train.schedule": "constant",
    }
    assert changes["regularization"] == {
        "regularization.enabled": True,
        "regularization.dropout": 0.3,
    }
    assert changes["augmentation"] == {"augmentation.enabled": True, "augmentation.noise": 0.2}
    base = steps.ladder[0].recipe
    assert base is not None and base.regularization.dropout == cfg.regularization.dropout
    assert owner("regularization.dropout") == "regularization" and owner("model.depth") == "tuned"


def test_a_rung_that_resolves_to_the_training_below_did_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # "headdrop" switches the head dropout, which only regularization reads: with
    # regularization off, its rung trains exactly what the baseline trains
    spec = TechniqueSpec(
        name="headdrop",
        order=90,
        off={"regularization.dropout": 0.0},
        build=lambda cfg, facts: Nothing(),
    )
    monkeypatch.setitem(TECHNIQUES._items, spec.name, spec)
    cfg = make_config(
        regularization={"enabled": False, "dropout": 0.3},
        ladder={"rungs": ["headdrop"], "leave_one_out": False},
    )
    rung = by_name(planned(cfg).ladder)["headdrop"]
    assert rung.idle
    assert rung.reason == (
        "it resolves to the same training as baseline: no technique that acts here reads "
        "what it switches (regularization.dropout)"
    )
    on = make_config(regularization={"dropout": 0.3}, ladder=cfg.ladder.model_dump())
    assert not by_name(planned(on).ladder)["headdrop"].idle


class Nothing(Technique):
    name = "headdrop"


def test_early_stopping_that_never_stopped_says_so_from_its_folds() -> None:
    spec = TECHNIQUES.get("early_stopping")
    cfg = make_config(train={"epochs": 10}, early_stopping={"patience": 6})
    never = [FoldOutcome(epochs=10, kept_epochs=10, stop_reason="max_epochs")] * 3
    assert spec.needs.idle_after(cfg, never) == (
        "early stopping never triggered: 10 epochs, patience 6, and every fold's best epoch "
        "was its last (restore_best kept it)"
    )
    kept_earlier = [*never[:2], FoldOutcome(epochs=10, kept_epochs=7, stop_reason="max_epochs")]
    assert spec.needs.idle_after(cfg, kept_earlier) is None
    stopped = [*never[:2], FoldOutcome(epochs=8, kept_epochs=8, stop_reason="patience_exhausted")]
    assert spec.needs.idle_after(cfg, stopped) is None


def test_trees_skip_the_epoch_checks() -> None:
    cfg = make_config(early_stopping={"patience": 6, "restore_best": False}, ladder={"epochs": 5})
    prepared = prepare(cfg)
    params = {"model.source": "sklearn:hgb"}
    _, final = recipes(cfg, params)
    found = probe(final, prepared, prepared.split.train)
    steps = plan(cfg, params, found)
    assert not by_name(steps.ladder)["early_stopping"].idle and steps.warnings == []


def test_the_readme_says_what_each_rung_switches_as_the_techniques_declare() -> None:
    from pathlib import Path

    from tunelab.techniques import specs

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text().splitlines()
    for spec in specs():
        label = f"| + {spec.name.replace('_', ' ')} | `"
        row = next((line for line in readme if line.startswith(label)), None)
        assert row is not None, f"README's rung table has no row for {spec.name}"
        for prefix in spec.fields:
            assert f"`{prefix}.*`" in row
        for dotted, value in spec.off.items():
            shown = str(value).lower() if isinstance(value, bool) else str(value)
            assert f"{dotted.split('.', 1)[1]}: {shown}" in row, (spec.name, dotted)
