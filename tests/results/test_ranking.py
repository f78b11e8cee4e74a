"""One answer to "which model": the one ranking (``results.leaderboard.ranked``) that live
progress, the refit, the ensemble's best single trial and the report all name."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import yaml
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.results.leaderboard import ranked, tie_break


def planted(direction: str, *trials: tuple[float, dict[str, Any]]) -> optuna.Study:
    study = optuna.create_study(direction=direction)
    study.set_user_attr("metric", "accuracy" if direction == "maximize" else "rmse")
    for value, cv in trials:
        study.add_trial(optuna.trial.create_trial(value=value, user_attrs={"cv": cv}))
    return study


def test_ties_go_to_the_proper_score_then_the_fold_spread_and_only_then_trial_order() -> None:
    study = planted(
        "maximize",
        (0.95, {"oof_metrics": {"log_loss": 0.30}, "std": 0.02}),
        (0.95, {"oof_metrics": {"log_loss": 0.20}, "std": 0.05}),
        (0.95, {"oof_metrics": {"log_loss": 0.20}, "std": 0.01}),  # steadier, same log loss
        (0.90, {"oof_metrics": {"log_loss": 0.10}, "std": 0.00}),
        (0.95, {"oof_metrics": {"log_loss": 0.20}, "std": 0.01}),  # a full tie: trial order
        (0.9499999999999998, {"oof_metrics": {"log_loss": 0.25}}),  # the same mean, in floats
    )
    assert [t.number for t in ranked(study)] == [2, 4, 1, 5, 0, 3]


def test_a_regression_tie_is_broken_by_out_of_fold_rmse() -> None:
    study = planted(
        "maximize",  # r2
        (0.8, {"oof_metrics": {"rmse": 3.0, "r2": 0.8}}),
        (0.8, {"oof_metrics": {"rmse": 2.5, "r2": 0.8}}),
    )
    assert [t.number for t in ranked(study)] == [1, 0]


def test_a_best_chosen_by_tie_break_says_so_and_which_score_decided() -> None:
    study = planted(
        "maximize",
        (0.95, {"oof_metrics": {"log_loss": 0.34}, "std": 0.02}),
        (0.90, {"oof_metrics": {"log_loss": 0.10}}),
        (0.95, {"oof_metrics": {"log_loss": 0.21}, "std": 0.02}),
    )
    assert tie_break(study) == (
        "trials 0 and 2 tie on accuracy 0.9500; trial 2 ranks first by out-of-fold log_loss "
        "0.2100 against 0.3400 for trial 0"
    )
    spread = planted(
        "maximize",
        (0.95, {"oof_metrics": {"log_loss": 0.2}, "std": 0.05}),
        (0.95, {"oof_metrics": {"log_loss": 0.2}, "std": 0.01}),
    )
    assert "by its fold spread, std 0.0100 against 0.0500 for trial 0" in str(tie_break(spread))
    first = planted("maximize", (0.95, {"oof_metrics": {"log_loss": 0.1}}), (0.95, {}))
    assert tie_break(first) is None, "trial order would have chosen the same trial"


def wine_like_csv(path: Path) -> Path:
    """Three well-separated classes with string labels: every recipe is 100% accurate on
    every fold, so the trials tie on accuracy and the tie-break decides."""
    rng = np.random.default_rng(0)
    names = ["barolo", "grignolino", "barbera"]
    rows = []
    for k, name in enumerate(names):
        centre = np.zeros(4)
        centre[k] = 12.0
        for x in centre + rng.normal(size=(30, 4)):
            rows.append({**{f"f{i}": float(v) for i, v in enumerate(x)}, "cultivar": name})
    pd.DataFrame(rows).sample(frac=1.0, random_state=0).to_csv(path, index=False)
    return path


def test_progress_refit_ensemble_line_and_report_name_the_same_trial(tmp_path: Path) -> None:
    data = wine_like_csv(tmp_path / "wine.csv")
    config = {
        "name": "wine",
        "data": {"source": f"csv:{data}", "target": "cultivar"},
        "model": {"source": "sklearn:hgb", "options": {"min_samples_leaf": 2}},
        "train": {"epochs": 8, "threads": 1},
        "cv": {"strategy": "kfold", "folds": 5},
        "search": {
            "n_trials": 6,
            "sampler": "random",
            "pruner": "none",
            "space": {"model.options.learning_rate": {"type": "float", "low": 0.02, "high": 0.5}},
        },
    }
    (tmp_path / "wine.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(tmp_path / "wine.yaml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    refit = metrics["best_trial"]
    board = pd.read_csv(out / "leaderboard.csv")
    assert (board["value"] == 1.0).sum() >= 2, "the case needs a tie on accuracy"
    assert refit != 0, "the tie-break must pick another trial than trial order does"
    progress = re.findall(r"best 1\.0000 \(trial (\d+)\)", result.output)
    assert progress and int(progress[-1]) == refit, "live progress names the refit's trial"
    ensemble = json.loads((out / "ensemble.json").read_text())
    assert ensemble["best_single_trial"] == refit
    assert f"the best single trial (trial {refit})" in result.output  # the ensemble line
    assert int(board["trial"].iloc[0]) == refit  # the leaderboard
    report = (out / "report.html").read_text()
    assert f"trial {refit}, mean of 5 folds" in report  # the report's best single trial
    said = f"trial {refit} ranks first by out-of-fold log_loss"
    assert metrics["best_trial_tie_break"].count(said) == 1
    assert result.output.count(said) == 1, "the tie-break is said once"
