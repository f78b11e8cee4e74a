"""Every named choice is declared once, in ``tunelab.registry``: the config's allowed values
are the registries' names, each name leads to its implementation, and dispatching by name
leaves no import circle behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest

from tests.test_architecture import PACKAGE, imports_of
from tunelab import registry
from tunelab.config import (
    EnsembleConfig,
    ModelConfig,
    TrackingConfig,
    TrainConfig,
    load_config,
)
from tunelab.errors import ConfigError, FatalError

NAMED = [
    registry.OPTIMIZERS,
    registry.SCHEDULES,
    registry.METRIC_FUNCTIONS,
    registry.POOLINGS,
    registry.CLASSICAL_HEADS,
    registry.ENSEMBLE_METHODS,
    registry.PREDICTOR_KINDS,
    registry.TRACKERS,
]


@pytest.mark.parametrize("named", NAMED, ids=lambda r: r.kind)
def test_every_name_leads_to_its_implementation(named: registry.Registry[Any]) -> None:
    for name in named:
        assert callable(named.get(name)) or hasattr(named.get(name), "fit"), name


def allowed(section: type[Any], field: str) -> set[str]:
    return set(get_args(section.model_fields[field].annotation))


def test_the_configs_allowed_values_are_the_registries_names() -> None:
    assert allowed(TrainConfig, "optimizer") == set(registry.OPTIMIZERS)
    assert allowed(TrainConfig, "schedule") == set(registry.SCHEDULES)
    assert allowed(ModelConfig, "pooling") == set(registry.POOLINGS)
    assert allowed(ModelConfig, "head") == {"linear", *registry.CLASSICAL_HEADS}
    assert allowed(EnsembleConfig, "method") == {*registry.ENSEMBLE_METHODS, "none"}
    assert set(registry.TRACKERS) <= set(TrackingConfig.model_fields)
    assert set(registry.METRIC_FUNCTIONS) == set(registry.METRICS)


def test_each_predictor_class_writes_a_kind_that_loads() -> None:
    from tunelab.results.boosters import BoosterPredictor
    from tunelab.results.ensemble import EnsemblePredictor
    from tunelab.results.predictor import Predictor
    from tunelab.results.trees import TreePredictor

    classes = (Predictor, TreePredictor, BoosterPredictor, EnsemblePredictor)
    kinds = {cls.kind for cls in classes}
    assert kinds == set(registry.PREDICTOR_KINDS)


def test_a_bad_choice_keeps_its_message_and_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("data: {source: 'sklearn:iris'}\nmodel: {source: 'builtin:mlp'}\n")
    with pytest.raises(ConfigError) as found:
        load_config(path, overrides=["train.optimizer=adamx"])
    assert "train.optimizer: got 'adamx'; Input should be 'sgd', 'adam', 'adamw' or 'rmsprop'" in (
        str(found.value)
    )
    with pytest.raises(ConfigError, match=r"train\.optimizer: unknown optimizer 'adamx'.*'adam"):
        registry.OPTIMIZERS.get("adamx", field="train.optimizer")


def test_the_config_lists_metrics_in_their_declared_order(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("data: {source: 'sklearn:iris'}\nmodel: {source: 'builtin:mlp'}\n")
    with pytest.raises(ConfigError) as found:
        load_config(path, overrides=["train.metric=acuracy"])
    assert f"valid: {', '.join(registry.METRICS)}. Did you mean 'accuracy'?" in str(found.value)
    assert registry.METRICS[0] == "accuracy" and registry.METRICS[-1] == "r2"


@pytest.mark.parametrize("kind", ["forest", ["model"]])
def test_an_unknown_predictor_kind_is_refused_with_the_known_ones(
    tmp_path: Path, kind: Any
) -> None:
    from tunelab.results.predictor import load_predictor

    manifest = {
        "format": 1,
        "kind": kind,
        "task": "binary",
        "classes": [0, 1],
        "modality": "tabular",
        "input_columns": ["a"],
        "info": {},
    }
    (tmp_path / "predictor.json").write_text(json.dumps(manifest))
    known = r"is not a predictor kind tunelab knows \(booster, ensemble, "
    with pytest.raises(FatalError, match=known):
        load_predictor(tmp_path)


def test_the_config_imports_no_training_code() -> None:
    """config.py sits below training/: metric names come from the registry."""
    names = imports_of(PACKAGE / "config.py")
    bad = {name for name in names if name.startswith("tunelab.training")}
    assert not bad, sorted(bad)
    code = "import sys, tunelab.config; print('torch' in sys.modules, 'numpy' in sys.modules)"
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert shown.stdout.split() == ["False", "False"]


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("results/predictor.py", ("results.ensemble", "results.trees", "results.model_checks")),
        ("tracking/trackers.py", ("tracking._mlflow", "tracking._tensorboard")),
        ("tracking/_mlflow.py", ("tracking.trackers",)),
        ("tracking/_tensorboard.py", ("tracking.trackers",)),
    ],
)
def test_kinds_dispatch_by_name_without_an_import_circle(
    importer: str, imported: tuple[str, ...]
) -> None:
    """The loaders of predictor kinds and the trackers are reached through their registries;
    nested imports count."""
    names = imports_of(PACKAGE / importer)
    bad = {n for n in names if n.startswith(tuple(f"tunelab.{m}" for m in imported))}
    assert not bad, f"{importer} imports {sorted(bad)}"
