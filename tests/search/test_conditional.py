"""No trial wasted (issue 25): a field that does not apply to the model family a trial samples
is not sampled for it, the leaderboard leaves it empty, and a trial with the effective
settings of an earlier complete trial takes its result instead of training again."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import make_config
from tunelab.cli import app
from tunelab.config import RunConfig
from tunelab.errors import ConfigError
from tunelab.flows.study import run_study
from tunelab.results.leaderboard import ranked
from tunelab.search.applicable import (
    applies,
    check_lines,
    nothing_to_search,
    refuse_empty_space,
)
from tunelab.search.budget import _trial_seconds
from tunelab.search.reuse import settings_key
from tunelab.search.space import suggest

LR = {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}
FAMILIES = {"type": "categorical", "choices": ["builtin:mlp", "sklearn:hgb"]}


def mixed(n_trials: int = 8, **space: Any) -> RunConfig:
    """The issue's study: builtin:mlp against sklearn:hgb, train.lr searched (listed first,
    so the family is not known when the space reaches it unless it is chosen first)."""
    return make_config(
        data={"source": "sklearn:breast_cancer"},
        train={"epochs": 2, "batch_size": 64, "threads": 1, "device": "cpu"},
        search={
            "n_trials": n_trials,
            "sampler": "random",
            "pruner": "none",
            "space": {"train.lr": LR, "model.source": FAMILIES, **space},
        },
        ensemble={"method": "none"},
    )


class Asked:
    """A suggester that picks the given family and records what it is asked."""

    def __init__(self, source: str) -> None:
        self.source, self.asked = source, []  # type: ignore[var-annotated]

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        self.asked.append(name)
        return low

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        self.asked.append(name)
        return low

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.asked.append(name)
        return self.source if name == "model.source" else choices[0]


def test_a_field_the_family_does_not_read_is_not_sampled_for_it() -> None:
    cfg = mixed(**{"model.options.learning_rate": {"type": "float", "low": 0.05, "high": 0.3}})
    trees = Asked("sklearn:hgb")
    assert set(suggest(trees, cfg.search.space, cfg)) == {
        "model.source",
        "model.options.learning_rate",
    }
    assert trees.asked[0] == "model.source"  # the family first, whatever the order
    network = Asked("builtin:mlp")
    assert set(suggest(network, cfg.search.space, cfg)) == {"model.source", "train.lr"}


def test_which_fields_apply_to_which_family() -> None:
    assert not applies("train.lr", "sklearn:hgb")
    assert not applies("regularization.dropout", "sklearn:hgb")
    assert applies("train.epochs", "sklearn:hgb")
    assert applies("early_stopping.patience", "sklearn:hgb")  # Needs.trees_take
    assert applies("model.options.max_depth", "sklearn:hgb")
    assert not applies("model.options.max_depth", "builtin:mlp")
    assert applies("train.lr", "builtin:mlp") and applies("data.image_size", "sklearn:hgb")


def test_settings_compare_as_the_model_sees_them() -> None:
    cfg = mixed()
    trees = settings_key({"model.source": "sklearn:hgb", "train.lr": 0.01}, cfg)
    assert trees == settings_key({"model.source": "sklearn:hgb", "train.lr": 0.05}, cfg)
    assert trees == settings_key({"model.source": "sklearn:hgb"}, cfg)
    first = settings_key({"model.source": "builtin:mlp", "train.lr": 0.01}, cfg)
    assert first != settings_key({"model.source": "builtin:mlp", "train.lr": 0.05}, cfg)
    epochs = make_config(search={"space": {"train.epochs": {"type": "int", "low": 1, "high": 4}}})
    assert settings_key({"train.epochs": 3}, epochs) == settings_key({"train.epochs": 3.0}, epochs)


def test_check_lists_per_family_the_fields_searched_for_it(tmp_path: Path) -> None:
    cfg = mixed(**{"model.options.max_depth": {"type": "int", "low": 2, "high": 6}})
    assert check_lines(cfg) == [
        "searched fields per model family:",
        "  builtin:mlp: train.lr, model.source (not searched for it, does not apply: "
        "model.options.max_depth)",
        "  sklearn:hgb: model.source, model.options.max_depth (not searched for it, does "
        "not apply: train.lr)",
    ]
    path = tmp_path / "mixed.yaml"
    path.write_text(cfg.to_yaml())
    done = CliRunner().invoke(app, ["check", str(path)])
    assert done.exit_code == 0, done.output
    assert "#   sklearn:hgb: model.source, model.options.max_depth" in done.output


def test_an_empty_space_is_an_error_for_tunelab_run(tmp_path: Path) -> None:
    """An empty space is the automatic one by default; with search.auto_space false it is
    refused."""
    assert nothing_to_search(mixed()) is None
    no_auto = make_config(search={"auto_space": False})
    with pytest.raises(ConfigError, match="nothing to search: the space is empty"):
        refuse_empty_space(no_auto)
    only_lr = make_config(model={"source": "sklearn:hgb"}, search={"space": {"train.lr": LR}})
    assert "train.lr does not apply to sklearn:hgb" in (nothing_to_search(only_lr) or "")
    path = tmp_path / "empty.yaml"
    path.write_text(no_auto.to_yaml())
    done = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run")])
    assert done.exit_code == 2, done.output
    assert "nothing to search" in done.output and "Traceback" not in done.output
    assert not (tmp_path / "run").exists()


def test_the_mixed_study_trains_each_distinct_configuration_once(tmp_path: Path) -> None:
    """The issue's 8-trial study: every hgb trial had the same effective settings and was
    trained again, five times. Now one trains and the others take its result."""
    result = run_study(mixed(), out=tmp_path / "run")
    trials = result.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 8
    trees = [t for t in trials if t.params["model.source"] == "sklearn:hgb"]
    assert len(trees) >= 2  # seed 0 of the random sampler draws several
    assert all("train.lr" not in t.params for t in trees)
    trained = [t for t in trees if "reused_from" not in t.user_attrs]
    assert len(trained) == 1
    for copy in trees[1:]:
        assert copy.user_attrs["reused_from"] == trained[0].number
        assert copy.value == trained[0].value
    assert all(t.number not in {c.number for c in trees[1:]} for t in ranked(result.study))
    assert _trial_seconds(trials) > 0.0  # the copies' near-zero times are not counted
    board = pd.read_csv(result.run_dir / "leaderboard.csv")
    tree_rows = board[board["params.model.source"] == "sklearn:hgb"]
    assert tree_rows["params.train.lr"].isna().all()  # not applicable: empty, never a value
    assert sorted(tree_rows["reused_from"].dropna().astype(int)) == [trained[0].number] * (
        len(trees) - 1
    )
    log = (result.run_dir / "run.log").read_text()
    assert f"reuses trial {trained[0].number}'s result" in log
    assert not math.isnan(result.metrics["test"]["accuracy"])  # type: ignore[index]
