"""Which variants the ladder measures, and why a rung is skipped (nothing is trained here)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from torch import nn

from tests.conftest import make_config
from tunelab.config import RunConfig, config_from_dict
from tunelab.errors import ConfigError
from tunelab.evaluation.prepare import prepare
from tunelab.ladder.run import probe
from tunelab.ladder.rungs import Plan, plan, recipes, rung_names
from tunelab.techniques import TECHNIQUES, TechniqueSpec
from tunelab.techniques.finetuning import has_pretrained_weights
from tunelab.training.hooks import Technique


def planned(cfg: RunConfig, params: dict[str, Any] | None = None, **facts: Any) -> Plan:
    prepared = prepare(cfg)
    _, final = recipes(cfg, params)
    found = probe(final, prepared, prepared.split.train)
    return plan(cfg, params, dataclasses.replace(found, **facts))


def reasons(steps: Plan) -> dict[str, str | None]:
    return {step.name: step.reason for step in steps.ladder}


def test_the_default_ladder_climbs_in_the_practitioners_order() -> None:
    cfg = make_config(augmentation={"noise": 0.1})
    steps = planned(cfg)
    assert [step.name for step in steps.ladder] == [
        "baseline",
        "tuned",
        "regularization",
        "early_stopping",
        "batch_norm",
        "augmentation",
        "finetuning",
        "weight_averaging",
        "ensemble",
    ]
    why = reasons(steps)
    assert "no study" in str(why["tuned"])
    assert "builtin:mlp has no pretrained weights" in str(why["finetuning"])
    assert why["weight_averaging"] == "off in the final recipe (weight_averaging.method: none)"
    assert why["ensemble"] is None, "measured from the run's ensemble.json when it has one"
    measured = [s.name for s in steps.ladder if s.reason is None]
    assert measured == [
        "baseline",
        "regularization",
        "early_stopping",
        "batch_norm",
        "augmentation",
        "ensemble",
    ]


def test_the_baseline_has_every_measured_technique_off_and_the_top_is_the_final_recipe() -> None:
    cfg = make_config(augmentation={"noise": 0.1})
    steps = planned(cfg)
    base = steps.ladder[0].recipe
    assert base is not None
    assert not base.regularization.enabled and not base.early_stopping.enabled
    assert not base.batch_norm.enabled and not base.augmentation.enabled
    # finetuning does not apply to a fresh model: held at the final recipe's strategy, not
    # re-initialized ("scratch") in the baseline only
    assert base.finetuning.strategy == "full"
    top = [step for step in steps.ladder if step.recipe is not None][-1]
    assert top.recipe == steps.final == cfg
    # each rung switches exactly its own technique on
    regularization = steps.ladder[2].recipe
    assert regularization is not None and regularization.regularization.enabled
    assert not regularization.early_stopping.enabled


def test_with_pretrained_weights_the_baseline_trains_from_scratch() -> None:
    cfg = config_from_dict(
        {
            "data": {"source": "sklearn:digits"},
            "model": {"source": "file:examples/pretrained/strokes_cnn2d.safetensors"},
            "train": {"epochs": 1, "threads": 1, "device": "cpu"},
        }
    )
    steps = planned(cfg)
    base = steps.ladder[0].recipe
    assert base is not None and base.finetuning.strategy == "scratch"
    assert reasons(steps)["finetuning"] is None
    finetuning = next(s for s in steps.ladder if s.name == "finetuning")
    assert finetuning.recipe is not None and finetuning.recipe.finetuning.strategy == "full"


def test_tuned_hyperparameters_are_a_rung_and_tuned_technique_fields_come_with_them() -> None:
    cfg = make_config(augmentation={"noise": 0.1})
    params = {"train.lr": 0.02, "regularization.dropout": 0.3}
    steps = planned(cfg, params)
    base, tuned = steps.ladder[0].recipe, steps.ladder[1].recipe
    assert base is not None and tuned is not None
    assert base.train.lr == cfg.train.lr and tuned.train.lr == 0.02
    assert not tuned.regularization.enabled  # the technique comes on at its own rung
    assert steps.final.regularization.dropout == 0.3 and steps.final.train.lr == 0.02
    only_techniques = planned(cfg, {"regularization.dropout": 0.3})
    assert "change no hyperparameter outside" in str(reasons(only_techniques)["tuned"])


def test_rungs_can_be_chosen_and_reordered() -> None:
    cfg = make_config(
        augmentation={"noise": 0.1}, ladder={"rungs": ["augmentation", "regularization"]}
    )
    steps = planned(cfg)
    assert [s.name for s in steps.ladder] == ["baseline", "augmentation", "regularization"]
    base = steps.ladder[0].recipe
    assert base is not None
    assert not base.augmentation.enabled and not base.regularization.enabled
    assert base.early_stopping.enabled  # not on the ladder: as in the final recipe
    assert [s.name for s in steps.leave_one_out] == ["final", "augmentation", "regularization"]


def test_leave_one_out_switches_each_technique_off_in_turn() -> None:
    cfg = make_config(augmentation={"noise": 0.1})
    steps = planned(cfg)
    by_name = {step.name: step for step in steps.leave_one_out}
    assert by_name["final"].recipe == steps.final
    without = by_name["batch_norm"].recipe
    assert without is not None and not without.batch_norm.enabled
    assert without.regularization.enabled and without.augmentation.enabled
    assert by_name["weight_averaging"].reason is not None
    off = planned(make_config(ladder={"leave_one_out": False}))
    assert off.leave_one_out == []


def test_batch_norm_does_not_apply_to_a_model_without_bn_layers() -> None:
    cfg = make_config()
    assert planned(cfg).ladder[4].reason is None  # builtin:mlp has BN layers
    no_bn = nn.Linear(4, 3)  # what the final recipe's model would be without BN layers
    why = reasons(planned(cfg, model=no_bn))["batch_norm"]
    assert why == "the model has no batch-norm layers and batch_norm.head is false"
    head = make_config(batch_norm={"head": True})
    assert reasons(planned(head, model=no_bn))["batch_norm"] is None


def test_augmentation_with_nothing_set_is_skipped() -> None:
    why = reasons(planned(make_config()))["augmentation"]
    assert why == "nothing of augmentation is switched on in the final recipe"


@pytest.mark.parametrize(
    ("source", "pretrained", "expected"),
    [
        ("builtin:mlp", True, False),
        ("py:mymodule:build", True, False),
        ("file:weights.safetensors", True, True),
        ("hf:some/model", True, True),
        ("timm:resnet18", True, True),
        ("timm:resnet18", False, False),
    ],
)
def test_which_models_have_pretrained_weights(
    source: str, pretrained: bool, expected: bool
) -> None:
    model = make_config().model.model_copy(update={"source": source, "pretrained": pretrained})
    assert has_pretrained_weights(model) is expected


def test_a_bad_rung_name_says_which_are_valid() -> None:
    cfg = make_config(ladder={"rungs": ["regularisation"]})
    with pytest.raises(ConfigError, match="Did you mean 'regularization'"):
        rung_names(cfg)
    with pytest.raises(ConfigError, match="'baseline' is always the first rung"):
        rung_names(make_config(ladder={"rungs": ["baseline", "tuned"]}))
    with pytest.raises(ConfigError, match=r"move it to the end: \['tuned', 'ensemble'\]"):
        rung_names(make_config(ladder={"rungs": ["ensemble", "tuned"]}))
    with pytest.raises(ConfigError, match=r"ladder\.rungs: .*more than once"):
        make_config(ladder={"rungs": ["tuned", "tuned"]})


def test_the_ladder_section_cannot_be_searched() -> None:
    with pytest.raises(ConfigError, match=r"'ladder\.folds' cannot change from trial to trial"):
        make_config(search={"space": {"ladder.folds": {"type": "int", "low": 2, "high": 5}}})


class Marker(Technique):
    name = "label_noise_guard"


def test_a_technique_added_to_the_registry_gets_rungs_without_editing_the_ladder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = TechniqueSpec(
        name="label_noise_guard",
        order=70,
        off={"regularization.label_smoothing": 0.0},
        build=lambda cfg, facts: Marker() if cfg.regularization.label_smoothing else None,
    )
    monkeypatch.setitem(TECHNIQUES._items, spec.name, spec)
    names = rung_names(make_config())
    assert names[-2:] == ["label_noise_guard", "ensemble"]  # after the known techniques
    steps = planned(make_config(regularization={"label_smoothing": 0.1}))
    added = next(step for step in steps.ladder if step.name == "label_noise_guard")
    assert added.reason is None and added.label == "+ label noise guard"
    base = steps.ladder[0].recipe
    assert base is not None and base.regularization.label_smoothing == 0.0
    assert "label_noise_guard" in [step.name for step in steps.leave_one_out]
