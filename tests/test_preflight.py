"""No late surprises: what a run's later stages would refuse is refused by ``tunelab check``
and before ``tunelab run`` trains anything (exit 2, one message per problem)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import make_config
from tunelab.cli import app
from tunelab.errors import ConfigError
from tunelab.flows.study import run_study

runner = CliRunner()
OPTIMIZER = {"type": "categorical", "choices": ["adamw", "sgd"]}
MOMENTUM = {"type": "float", "low": 0.5, "high": 0.95}
DROPOUT = {"type": "float", "low": 0.1, "high": 0.5}


def write(tmp_path: Path, **sections: object) -> Path:
    config = {
        "name": "pre",
        "data": {"source": "sklearn:iris"},
        "model": {"source": "builtin:mlp", "width": 8, "depth": 1},
        "train": {"epochs": 2, "threads": 1},
        "search": {"n_trials": 2, "sampler": "random", "pruner": "none"},
        **sections,
    }
    path = tmp_path / "pre.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))  # the space in order
    return path


# (settings, what the message must name): each passed `tunelab check` and failed only
# after the study (or never said anything)
REFUSED = {
    "ensemble metric of the other task": (
        {"ensemble": {"metric": "rmse"}},
        "ensemble.metric: 'rmse' does not apply to multiclass",
    ),
    "log loss on a regression": (
        {"data": {"source": "sklearn:diabetes"}, "ensemble": {"metric": "log_loss"}},
        "ensemble.metric: 'log_loss' does not apply to regression",
    ),
    "a rung that does not exist": (
        {"ladder": {"rungs": ["tuned", "bogus"]}},
        "ladder.rungs: got 'bogus', which is no rung",
    ),
    "a condition on a value that is no choice": (
        {
            "search": {
                "space": {
                    "train.optimizer": OPTIMIZER,
                    "train.momentum": {**MOMENTUM, "when": {"train.optimizer": "sgdd"}},
                }
            }
        },
        "search.space.train.momentum.when: train.optimizer: 'sgdd' is not among its choices",
    ),
    "a condition on a field that is not searched and never has that value": (
        {"search": {"space": {"train.momentum": {**MOMENTUM, "when": {"train.optimizer": "sgd"}}}}},
        "train.optimizer is not searched and is 'adamw' in this config, not 'sgd'",
    ),
    "a bound outside the field's range": (
        {"search": {"space": {"regularization.dropout": {**DROPOUT, "high": 1.5}}}},
        "search.space.regularization.dropout: high 1.5 is not a valid regularization.dropout",
    ),
    "a choice the field refuses": (
        {"search": {"space": {"train.optimizer": {**OPTIMIZER, "choices": ["adamw", "lion"]}}}},
        "search.space.train.optimizer: choice 'lion' is not a valid train.optimizer",
    ),
    "a bound refused only under its condition": (
        {
            "search": {
                "space": {
                    "train.optimizer": OPTIMIZER,
                    "train.momentum": {
                        "type": "float",
                        "low": 0.5,
                        "high": 1.5,
                        "when": {"train.optimizer": "sgd"},
                    },
                }
            }
        },
        "search.space.train.momentum: high 1.5 is not a valid train.momentum",
    ),
}


UP_FRONT = ["ensemble metric of the other task", "a rung that does not exist"]


@pytest.mark.parametrize("case", list(REFUSED))
def test_check_refuses_what_a_later_stage_would(tmp_path: Path, case: str) -> None:
    settings, message = REFUSED[case]
    result = runner.invoke(app, ["check", str(write(tmp_path, **settings))])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("case", UP_FRONT)
def test_run_refuses_it_before_training(tmp_path: Path, case: str) -> None:
    settings, message = REFUSED[case]
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write(tmp_path, **settings)), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert not (out / "artifacts").exists() or not any((out / "artifacts").iterdir())
    assert not (out / "leaderboard.csv").exists(), "no trial ran"


def test_the_task_of_the_loaded_target_is_checked_before_the_study(tmp_path: Path) -> None:
    """``data.task: auto``: ``tunelab run`` knows the task once the data is loaded, before
    any trial, and refuses there (it once died with a KeyError after the study)."""
    cfg = make_config(
        data={"source": "sklearn:diabetes"},
        search={"n_trials": 1},
        ensemble={"metric": "log_loss"},
    )
    with pytest.raises(ConfigError, match=r"ensemble\.metric: 'log_loss' does not apply"):
        run_study(cfg, out=tmp_path / "run")
    assert not list((tmp_path / "run" / "artifacts").glob("*"))


def test_a_valid_conditional_space_passes(tmp_path: Path) -> None:
    space = {
        "train.optimizer": OPTIMIZER,
        "train.momentum": {**MOMENTUM, "when": {"train.optimizer": ["sgd", "adamw"]}},
        "train.nesterov": {"type": "categorical", "choices": [True, False]},
        "model.depth": {"type": "int", "low": 1, "high": 3},
    }
    result = runner.invoke(app, ["check", str(write(tmp_path, search={"space": space}))])
    assert result.exit_code == 0, result.output
