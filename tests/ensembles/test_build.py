"""The ensemble stage of ``tunelab run``: decided on out-of-fold predictions, saved without
pickle, loaded and refused like any predictor."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from tests.conftest import make_config
from tunelab.config import RunConfig
from tunelab.errors import FatalError
from tunelab.flows.study import run_study
from tunelab.results.artifacts import TrialArtifacts
from tunelab.results.leaderboard import ranked
from tunelab.results.predictor import load_predictor
from tunelab.results.trial_record import record
from tunelab.search.budget import EXIT_TAIL, FIXED_TAIL, Budget

LR = {"type": "float", "low": 1e-3, "high": 3e-1, "log": True}


def study_config(**ensemble: Any) -> RunConfig:
    return make_config(
        data={"source": "sklearn:wine"},
        train={"epochs": 4},
        cv={"strategy": "kfold", "folds": 3},
        search={"n_trials": 4, "sampler": "random", "pruner": "none", "space": {"train.lr": LR}},
        ensemble={"size": 4, **ensemble},
    )


@pytest.fixture(scope="module")
def forced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("forced") / "run"
    run_study(study_config(keep="ensemble"), out=out)
    return out


def test_a_kept_ensemble_is_saved_loaded_and_predicts_identically(forced: Path) -> None:
    metrics = json.loads((forced / "metrics.json").read_text())
    assert metrics["final"] == "ensemble"
    summary = json.loads((forced / "ensemble.json").read_text())
    assert summary["kept"] and summary["metric"] == "log_loss"
    assert sum(m["weight"] for m in summary["members"]) == pytest.approx(1.0)
    difference = summary["test"]["difference"]
    assert difference["low"] <= difference["ensemble_minus_single"] <= difference["high"]
    predictor = load_predictor(forced)
    assert predictor.kind == "ensemble"
    inputs = pd.read_csv(forced / "test_inputs.csv")
    written = pd.read_csv(forced / "test_predictions.csv")
    proba = predictor.predict_proba(inputs)
    probability_columns = [c for c in written.columns if c.startswith("proba_")]
    np.testing.assert_allclose(proba, written[probability_columns].to_numpy(), rtol=1e-9)
    assert metrics["test"]["accuracy"] == pytest.approx(
        float(np.mean(written["prediction"] == written["target"]))
    )


def test_members_are_the_trials_fold_models_without_a_refit(forced: Path) -> None:
    manifest = json.loads((forced / "final" / "predictor.json").read_text())
    member = json.loads((forced / "final" / "member_0" / "predictor.json").read_text())
    assert member["kind"] == "ensemble" and member["method"] == "folds"
    assert len(member["members"]) == 3, "one model per fold"
    assert len(manifest["members"]) >= 1
    assert not list(forced.rglob("*.pkl")) and not list(forced.rglob("*.pickle"))


def test_a_damaged_ensemble_is_refused_and_runs_nothing(forced: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(forced / "final", copy)
    manifest_path = copy / "predictor.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["members"][0] = "../elsewhere"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(FatalError, match="not the name of a file"):
        load_predictor(copy)
    shutil.rmtree(copy)
    shutil.copytree(forced / "final", copy)
    shutil.rmtree(copy / "member_0")
    with pytest.raises(FatalError, match=r"has no predictor\.json"):
        load_predictor(copy)
    shutil.rmtree(copy)
    shutil.copytree(forced / "final", copy)
    marker = tmp_path / "ran"
    fold = copy / "member_0" / "member_0" / "predictor.json"
    spec = json.loads(fold.read_text())
    spec["model"] = {
        "kind": "py",
        "target": "os:system",
        "options": {"command": f"touch {marker}"},
        "input_shape": [13],
        "num_outputs": 3,
    }
    fold.write_text(json.dumps(spec))
    with pytest.raises(FatalError, match="trust"):
        load_predictor(copy)
    assert not marker.exists()


def test_keep_single_keeps_the_best_trial_and_says_why(tmp_path: Path) -> None:
    result = run_study(study_config(keep="single"), out=tmp_path / "run")
    assert result.metrics is not None and result.metrics["final"] == "best trial"
    summary = json.loads((tmp_path / "run" / "ensemble.json").read_text())
    assert not summary["kept"] and "ensemble.keep is single" in summary["reason"]
    assert load_predictor(tmp_path / "run").kind == "model"


def test_stacking_is_fitted_on_the_stored_out_of_fold_predictions_only(tmp_path: Path) -> None:
    result = run_study(study_config(method="stacking", keep="ensemble"), out=tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "ensemble.json").read_text())
    artifacts = TrialArtifacts(tmp_path / "run" / "artifacts")
    by_number = {t.number: t for t in result.study.trials}
    oof = np.stack([artifacts.oof(by_number[m["trial"]]) for m in summary["members"]])
    rows = np.flatnonzero(np.isfinite(oof).all(axis=(0, 2)))
    test = json.loads((tmp_path / "run" / "metrics.json").read_text())["rows"]["test"]
    assert len(rows) == 178 - test, "every non-test row, and no test row"
    from tunelab.evaluation.prepare import prepare

    truth = prepare(study_config()).target.values[rows]
    features = np.concatenate(list(oof[:, rows]), axis=1)
    again = LogisticRegression(C=1.0, max_iter=2000).fit(features, truth)
    np.testing.assert_allclose(summary["stacker"]["coef"], again.coef_, rtol=1e-5, atol=1e-7)


def test_neural_and_tree_members_sit_in_one_ensemble(tmp_path: Path) -> None:
    space = {
        "model.source": {"type": "categorical", "choices": ["builtin:mlp", "sklearn:hgb"]},
        "train.lr": {**LR, "when": {"model.source": "builtin:mlp"}},
    }
    cfg = make_config(
        data={"source": "sklearn:breast_cancer"},
        train={"epochs": 6},
        cv={"strategy": "kfold", "folds": 3},
        search={
            "n_trials": 2,
            "sampler": "grid",
            "pruner": "none",
            "space": {"model.source": space["model.source"]},
        },
        ensemble={"keep": "ensemble", "method": "mean"},
    )
    run_study(cfg, out=tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "final" / "predictor.json").read_text())
    kinds = set()
    for name in manifest["members"]:
        member = json.loads(
            (tmp_path / "run" / "final" / name / "member_0" / "predictor.json").read_text()
        )
        kinds.add(member["kind"])
    assert kinds == {"model", "trees"}
    predictor = load_predictor(tmp_path / "run")
    inputs = pd.read_csv(tmp_path / "run" / "test_inputs.csv")
    assert predictor.predict_proba(inputs).shape == (len(inputs), 2)


def test_equally_accurate_trials_rank_by_out_of_fold_log_loss() -> None:
    study = optuna.create_study(direction="maximize")
    for value, log_loss in ((0.9, 0.30), (0.95, 0.40), (0.95, 0.10), (0.95, 0.20)):
        study.add_trial(
            optuna.trial.create_trial(
                value=value, user_attrs={"cv": {"oof_metrics": {"log_loss": log_loss}}}
            )
        )
    assert [t.number for t in ranked(study)] == [2, 3, 1, 0]


def test_the_budget_leaves_time_for_the_refit_and_the_members() -> None:
    study = optuna.create_study()
    import datetime

    start = datetime.datetime(2026, 1, 1)
    for seconds in (10.0, 12.0, 14.0):
        trial = optuna.trial.create_trial(value=0.5)
        trial.datetime_start, trial.datetime_complete = (
            start,
            start + datetime.timedelta(seconds=seconds),
        )
        study.add_trial(trial)
    budget = Budget(end=1000.0, timeout_end=None, refits_after=3.0, rows_ratio=1.25, folds=5)
    # median trial 12 s; a refit is one fold (12/5) on 1.25x the rows: 3 s; three of them,
    # the fixed tail (test evaluation, report) and the exit, and room for one more trial
    tail = FIXED_TAIL + EXIT_TAIL
    assert budget.stop_time(study.trials) == pytest.approx(1000.0 - tail - 3 * 3.0 - 12.0)
    # a running trial stops by the search's deadline (pruned), the refits by the final one
    assert budget.search_deadline(study.trials) == pytest.approx(1000.0 - tail - 3 * 3.0)
    assert budget.final_deadline == pytest.approx(1000.0 - tail)
    capped = Budget(end=1000.0, timeout_end=900.0, refits_after=3.0, rows_ratio=1.25, folds=5)
    assert capped.stop_time(study.trials) == 900.0
    assert Budget(None, None, 1.0, 1.0, 1).stop_time(study.trials) is None


def test_the_ladder_measures_the_kept_ensemble_on_its_own_splits(forced: Path) -> None:
    from tunelab.ladder.run import run_ladder
    from tunelab.results.rundir import RunDir

    cfg = study_config(keep="ensemble").model_copy(
        update={
            "ladder": study_config().ladder.model_copy(
                update={"folds": 3, "repeats": 1, "leave_one_out": False, "rungs": ["ensemble"]}
            )
        }
    )
    doc = run_ladder(cfg, RunDir(forced), params={"train.lr": 0.01})
    steps = {row["name"]: row for row in doc["ladder"]}
    assert steps["ensemble"]["status"] == "measured", steps["ensemble"]
    assert 0.5 < steps["ensemble"]["mean"] <= 1.0
    assert steps["ensemble"]["compared_to"] == "baseline"


def test_without_a_kept_ensemble_the_ladder_says_so(tmp_path: Path) -> None:
    from tunelab.ladder.run import run_ladder
    from tunelab.results.rundir import open_run_dir

    cfg = study_config().model_copy(
        update={
            "ladder": study_config().ladder.model_copy(
                update={"folds": 2, "repeats": 1, "leave_one_out": False, "rungs": ["ensemble"]}
            )
        }
    )
    doc = run_ladder(cfg, open_run_dir(cfg, tmp_path / "run"))
    steps = {row["name"]: row for row in doc["ladder"]}
    assert steps["ensemble"]["status"] == "skipped"  # not run: the same word as any rung
    assert "no ensemble in this run" in steps["ensemble"]["reason"]


def test_a_candidate_whose_fold_models_were_pruned_is_refit(tmp_path: Path) -> None:
    """Fold models outside the top k are deleted by whichever process ranks them; a later
    ensemble must notice the files are gone, not trust the trial's record of them."""
    cfg = study_config(keep="ensemble", method="mean")
    result = run_study(cfg, out=tmp_path / "run")
    artifacts = TrialArtifacts(tmp_path / "run" / "artifacts")
    trial = ranked(result.study)[0]
    assert artifacts.has_predictors(trial)
    (tmp_path / "run" / "artifacts" / record(trial)["artifacts"]["predictors"]).unlink()
    assert not TrialArtifacts(tmp_path / "run" / "artifacts").has_predictors(trial)
