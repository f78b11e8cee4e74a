"""The search space: conditional parameters, validation of trial values, grid values.

Studies here are real Optuna studies on SQLite whose objective only suggests and applies
parameters (no training), so they run in milliseconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import make_config
from tunelab.cli import app
from tunelab.config import ParamSpec, RunConfig, apply_params
from tunelab.errors import ConfigError
from tunelab.registry import SAMPLERS
from tunelab.search.space import grid, grid_size, suggest
from tunelab.search.study import make_storage, open_study

CONDITIONAL = {
    "train.optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]},
    "train.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
    "train.momentum": {
        "type": "float",
        "low": 0.8,
        "high": 0.99,
        "when": {"train.optimizer": "sgd"},
    },
    "train.nesterov": {
        "type": "categorical",
        "choices": [False, True],
        "when": {"train.optimizer": ["sgd"]},
    },
}


def suggest_only_study(
    cfg: RunConfig, db: Path, n_trials: int
) -> tuple[optuna.Study, dict[int, RunConfig]]:
    """A real study on SQLite whose objective suggests and applies the parameters."""
    storage = make_storage(f"sqlite:///{db}", cfg.search)
    study = open_study(cfg, storage, metric="accuracy")
    resolved: dict[int, RunConfig] = {}

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, cfg.search.space, cfg)
        resolved[trial.number] = apply_params(cfg, params)
        return float(params["train.lr"])

    study.optimize(objective, n_trials=n_trials)
    return study, resolved


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_conditional_momentum_is_suggested_only_for_sgd_trials(
    tmp_path: Path, sampler: str
) -> None:
    cfg = make_config(search={"sampler": sampler, "space": CONDITIONAL})
    study, resolved = suggest_only_study(cfg, tmp_path / "study.db", 16)
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 16
    optimizers = {t.params["train.optimizer"] for t in trials}
    assert optimizers == {"adamw", "sgd"}, "16 seeded trials try both optimizers"
    for trial in trials:
        cfg_of_trial = resolved[trial.number]
        if trial.params["train.optimizer"] == "sgd":
            assert set(trial.params) == set(CONDITIONAL)
            assert 0.8 <= trial.params["train.momentum"] <= 0.99
            # the suggested value is what the trial trains with
            assert cfg_of_trial.train.momentum == trial.params["train.momentum"]
            assert cfg_of_trial.train.nesterov == trial.params["train.nesterov"]
        else:
            assert set(trial.params) == {"train.optimizer", "train.lr"}, trial.params
            assert "train.momentum" not in trial.distributions
            # an inactive parameter leaves the base config's value alone
            assert cfg_of_trial.train.momentum == cfg.train.momentum
        assert cfg_of_trial.train.optimizer == trial.params["train.optimizer"]


def test_condition_on_a_fixed_field_uses_the_base_config(tmp_path: Path) -> None:
    space = {
        "train.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
        "train.momentum": {
            "type": "float",
            "low": 0.8,
            "high": 0.99,
            "when": {"train.optimizer": "sgd"},
        },
    }
    adamw = make_config(search={"sampler": "random", "space": space})
    study, _ = suggest_only_study(adamw, tmp_path / "a.db", 4)
    assert all(set(t.params) == {"train.lr"} for t in study.trials)
    sgd = make_config(train={"optimizer": "sgd"}, search={"sampler": "random", "space": space})
    study, _ = suggest_only_study(sgd, tmp_path / "b.db", 4)
    assert all(set(t.params) == {"train.lr", "train.momentum"} for t in study.trials)


def test_int_and_stepped_float_suggestions_stay_on_their_grid(tmp_path: Path) -> None:
    space = {
        "train.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
        "model.width": {"type": "int", "low": 8, "high": 32, "step": 8},
        "regularization.dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.25},
    }
    cfg = make_config(search={"sampler": "random", "space": space})
    study, resolved = suggest_only_study(cfg, tmp_path / "study.db", 10)
    for trial in study.trials:
        assert trial.params["model.width"] in (8, 16, 24, 32)
        assert trial.params["regularization.dropout"] in (0.0, 0.25, 0.5)
        assert 1e-3 <= trial.params["train.lr"] <= 1e-1
        assert resolved[trial.number].model.width == trial.params["model.width"]


def test_apply_params_sets_values_and_validates_them() -> None:
    base = make_config()
    tuned = apply_params(
        base, {"train.lr": 0.05, "regularization.dropout": 0.3, "model.options.hidden": 7}
    )
    assert (tuned.train.lr, tuned.regularization.dropout) == (0.05, 0.3)
    assert tuned.model.options == {"hidden": 7}
    assert base.train.lr == 0.001, "the base config is never changed"
    with pytest.raises(ConfigError) as bad_lr:
        apply_params(base, {"train.lr": -1.0})
    assert "train.lr" in str(bad_lr.value)
    assert "-1.0" in str(bad_lr.value)
    with pytest.raises(ConfigError) as bad_choice:
        apply_params(base, {"train.optimizer": "adagrad"})
    assert "train.optimizer" in str(bad_choice.value)
    assert "adagrad" in str(bad_choice.value)
    with pytest.raises(ConfigError) as unknown:
        apply_params(base, {"train.lrr": 0.1})
    assert "train.lrr: unknown field" in str(unknown.value)
    assert "Did you mean 'lr'?" in str(unknown.value)


def test_unknown_space_field_is_refused_with_did_you_mean() -> None:
    with pytest.raises(ConfigError) as typo:
        make_config(
            search={"space": {"regularisation.dropout": {"type": "float", "low": 0.0, "high": 0.5}}}
        )
    message = str(typo.value)
    assert "'regularisation.dropout' is not a config field" in message
    assert "Did you mean 'regularization.dropout'?" in message
    with pytest.raises(ConfigError) as bad_when:
        make_config(
            search={
                "space": {
                    "train.momentum": {
                        "type": "float",
                        "low": 0.8,
                        "high": 0.99,
                        "when": {"train.optimiser": "sgd"},
                    }
                }
            }
        )
    assert "search.space.train.momentum.when: 'train.optimiser' is not a config field" in str(
        bad_when.value
    )


def test_param_spec_needs_consistent_bounds() -> None:
    with pytest.raises(ConfigError, match="needs low < high"):
        make_config(search={"space": {"train.lr": {"type": "float", "low": 0.1, "high": 0.01}}})
    with pytest.raises(ConfigError, match="non-empty 'choices'"):
        make_config(search={"space": {"train.optimizer": {"type": "categorical"}}})
    with pytest.raises(ConfigError, match="log scale needs low > 0"):
        make_config(
            search={"space": {"train.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}}
        )


def test_grid_lists_every_value_of_finite_parameters() -> None:
    space = {
        "train.optimizer": ParamSpec(type="categorical", choices=["adamw", "sgd"]),
        "model.depth": ParamSpec(type="int", low=1, high=3),
        "model.width": ParamSpec(type="int", low=8, high=32, step=8),
        "regularization.dropout": ParamSpec(type="float", low=0.0, high=0.5, step=0.25),
    }
    values = grid(space)
    assert values == {
        "train.optimizer": ["adamw", "sgd"],
        "model.depth": [1, 2, 3],
        "model.width": [8, 16, 24, 32],
        "regularization.dropout": [0.0, 0.25, 0.5],
    }
    assert all(isinstance(v, int) for v in values["model.width"])
    assert grid_size(space) == 2 * 3 * 4 * 3
    assert grid_size({}) == 1


def test_grid_float_steps_land_exactly_on_the_range() -> None:
    # a user writing low 0.1, high 1.0, step 0.3 means 0.1, 0.4, 0.7 and 1.0: these values
    # end up in best_params.json and in the trial's config, where 1.0000000000000002 is out of
    # range for fields capped at 1 (train.step_gamma, batch_norm.momentum)
    values = grid({"train.step_gamma": ParamSpec(type="float", low=0.1, high=1.0, step=0.3)})
    assert values["train.step_gamma"] == [0.1, 0.4, 0.7, 1.0]
    values = grid({"regularization.dropout": ParamSpec(type="float", low=0.1, high=0.3, step=0.1)})
    assert values["regularization.dropout"] == [0.1, 0.2, 0.3]


def test_grid_sampler_refuses_a_float_without_step() -> None:
    cfg = make_config(
        search={
            "sampler": "grid",
            "space": {
                "train.optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]},
                "train.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
            },
        }
    )
    with pytest.raises(ConfigError) as refused:
        SAMPLERS.get("grid")(cfg)
    message = str(refused.value)
    assert "search.space.train.lr" in message
    assert "step" in message
    assert "search.space.train.optimizer" not in message


def test_tunelab_run_with_grid_over_a_continuous_float_exits_2_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "grid.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "grid",
                "data": {"source": "sklearn:iris"},
                "model": {"source": "builtin:mlp", "width": 8, "depth": 1},
                "train": {"epochs": 1, "threads": 1, "device": "cpu"},
                "search": {
                    "sampler": "grid",
                    "n_trials": 2,
                    "space": {"train.lr": {"type": "float", "low": 0.001, "high": 0.1}},
                },
            }
        )
    )
    result = CliRunner().invoke(
        app, ["run", str(config), "--out", str(tmp_path / "run"), "--quiet"]
    )
    assert result.exit_code == 2, result.output
    assert "search.space.train.lr" in result.output
    assert "Traceback" not in result.output


def test_grid_over_a_conditional_space_never_repeats_a_configuration(tmp_path: Path) -> None:
    """Grid points that differ only in an inactive parameter are the same trial; running
    them again wastes the budget (refusing the combination up front is also fine)."""
    raw_space: dict[str, Any] = {
        "train.optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]},
        "train.momentum": {
            "type": "float",
            "low": 0.8,
            "high": 0.9,
            "step": 0.1,
            "when": {"train.optimizer": "sgd"},
        },
    }
    try:
        cfg = make_config(search={"sampler": "grid", "space": raw_space})
        storage = make_storage(f"sqlite:///{tmp_path / 'study.db'}", cfg.search)
        study = open_study(cfg, storage, metric="accuracy")
    except ConfigError as exc:
        assert "train.momentum" in str(exc)
        return

    def objective(trial: optuna.Trial) -> float:
        suggest(trial, cfg.search.space, cfg)
        return 0.0

    study.optimize(objective, n_trials=10)  # the grid sampler stops when the grid is done
    seen = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(seen) == len(set(seen)), f"configurations evaluated twice: {seen}"
    assert len(seen) == 3  # adamw; sgd with 0.8; sgd with 0.9
