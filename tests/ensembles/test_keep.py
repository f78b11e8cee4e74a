"""The keep rule: an ensemble is kept only when it is not worse than the leaderboard's best
single trial on the user's metric, and better on the proper score by more than the noise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import FrozenTrial

from tests.conftest import make_config
from tunelab.data import RawData
from tunelab.ensembles.build import decide
from tunelab.ensembles.keep import compare
from tunelab.evaluation.prepare import prepare_rows
from tunelab.flows.study import run_study
from tunelab.results.artifacts import TrialArtifacts
from tunelab.results.ensemble import combine
from tunelab.training.metrics import compute_metrics

CLASSES = 3


class PlantedArtifacts(TrialArtifacts):
    """Out-of-fold predictions planted per trial number (no files)."""

    def __init__(self, oof: dict[int, np.ndarray]) -> None:
        self.planted = oof

    def oof(self, trial: FrozenTrial) -> np.ndarray:
        return self.planted[trial.number]


def dominated_case(rng: np.random.Generator, rows: int, members: int) -> tuple[Any, ...]:
    """Member 0 is the most accurate but hedges its bets (a poor log loss); the others are
    less accurate and confident, so their log loss is better: mixing them in improves the
    log loss while it costs accuracy, the trap a log-loss-only rule falls into."""
    truth = rng.integers(0, CLASSES, rows)
    oof = np.empty((members, rows, CLASSES))
    accuracy = [rng.uniform(0.9, 1.0), *rng.uniform(0.6, 0.85, members - 1)]
    for m in range(members):
        right = rng.random(rows) < accuracy[m]
        picked = np.where(right, truth, (truth + rng.integers(1, CLASSES, rows)) % CLASSES)
        confidence = rng.uniform(0.36, 0.5) if m == 0 else rng.uniform(0.75, 0.97)
        oof[m] = (1 - confidence) / (CLASSES - 1)
        oof[m, np.arange(rows), picked] = confidence
    return truth, oof


def planted_study(truth: np.ndarray, oof: np.ndarray) -> optuna.Study:
    """Trials valued by their out-of-fold accuracy (the user's metric), as a study stores."""
    study = optuna.create_study(direction="maximize")
    for member in oof:
        scores = compute_metrics("multiclass", truth, member)
        cv = {"oof_metrics": scores, "std": 0.01}
        study.add_trial(optuna.trial.create_trial(value=scores["accuracy"], user_attrs={"cv": cv}))
    return study


def prepared_for(truth: np.ndarray) -> Any:
    raw = RawData(
        inputs=np.zeros((len(truth), 2), np.float32),
        target=np.asarray([f"c{t}" for t in truth], dtype=object),
        modality="tabular",
        origin="planted",
    )
    cfg = make_config(train={"metric": "accuracy"})
    return prepare_rows(cfg, raw, test_rows=np.zeros(0, dtype=np.int64))


@pytest.mark.parametrize("method", ["greedy", "mean", "weighted", "stacking"])
def test_auto_never_keeps_a_mix_worse_on_the_users_metric(method: str) -> None:
    """Seeded planted cases (a property test without a generator library): wherever one
    member dominates on accuracy, ``keep: auto`` keeps nothing less accurate out of fold."""
    rng = np.random.default_rng(27)
    kept = 0
    for case in range(25):
        truth, oof = dominated_case(rng, rows=int(rng.integers(60, 200)), members=4)
        prepared = prepared_for(truth)
        assert np.array_equal(prepared.target.values, truth)  # c0 < c1 < c2: same codes
        cfg = make_config(ensemble={"method": method, "size": 4}, train={"metric": "accuracy"})
        artifacts = PlantedArtifacts(dict(enumerate(oof)))
        decision = decide(cfg, prepared, planted_study(truth, oof), artifacts)
        assert decision.choice is not None
        best = compute_metrics("multiclass", truth, oof[0])["accuracy"]
        # out of fold: the blend on these rows (for stacking, its cross-validated estimate)
        mixed = compute_metrics("multiclass", truth, decision.choice.predictions)["accuracy"]
        if decision.kept:
            kept += 1
            assert mixed >= best - 1e-12, f"case {case}: kept a mix {mixed} < {best}"
        assert decision.best_single_trial == 0, "the leaderboard's best: the accurate one"
        assert decision.verdict is not None
        assert decision.verdict.metric.best_single == pytest.approx(best)
        assert decision.verdict.metric.ensemble == pytest.approx(mixed)
        if method != "stacking":  # the blend of the weights it reports, in ranked order
            blend = combine(oof[decision.trials], np.asarray(decision.weights), None)
            np.testing.assert_allclose(decision.choice.predictions, blend)
    assert kept < 25


@pytest.mark.parametrize("method", ["greedy", "mean"])
def test_members_whose_errors_cancel_are_kept(method: str) -> None:
    """Three equally accurate members with independent errors: their mean is more accurate
    and better calibrated than any of them, so the rule keeps it."""
    rng = np.random.default_rng(5)
    truth = rng.integers(0, CLASSES, 300)
    oof = np.empty((3, 300, CLASSES))
    for m in range(3):
        right = rng.random(300) < 0.8
        picked = np.where(right, truth, (truth + rng.integers(1, CLASSES, 300)) % CLASSES)
        oof[m] = 0.2
        oof[m, np.arange(300), picked] = 0.6
    cfg = make_config(ensemble={"method": method, "size": 3}, train={"metric": "accuracy"})
    artifacts = PlantedArtifacts(dict(enumerate(oof)))
    decision = decide(cfg, prepared_for(truth), planted_study(truth, oof), artifacts)
    assert decision.kept, decision.reason
    assert decision.verdict is not None and decision.verdict.metric.passes
    assert decision.verdict.proper.passes and "better by more than the noise" in decision.reason


def test_a_copy_of_the_best_trial_is_not_kept() -> None:
    rng = np.random.default_rng(0)
    truth, oof = dominated_case(rng, rows=100, members=2)
    verdict = compare("multiclass", truth, oof[0], oof[0].copy(), metric="accuracy")
    assert verdict.metric.passes and not verdict.proper.passes and not verdict.keep
    assert verdict.proper.improvement == 0.0


def test_an_ensemble_better_beyond_the_noise_on_both_is_kept() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(0, CLASSES, 300)
    single = np.full((300, CLASSES), 0.3)
    single[np.arange(300), truth] = 0.4  # right everywhere, barely
    ensemble = np.full((300, CLASSES), 0.05)
    ensemble[np.arange(300), truth] = 0.9
    verdict = compare("multiclass", truth, single, ensemble, metric="accuracy")
    assert verdict.keep and verdict.proper.improvement > 2 * (verdict.proper.noise or 0)
    assert verdict.to_dict()["proper_score"]["metric"] == "log_loss"


def test_a_gain_within_the_noise_is_not_kept() -> None:
    """A few rows better, as many a bit worse: the mean gain is smaller than its noise."""
    rng = np.random.default_rng(2)
    truth = np.zeros(200, dtype=np.int64)
    values = rng.normal(0.0, 1.0, 200)
    single = values[:, None]
    ensemble = (values + rng.normal(0.0, 0.3, 200) - 0.01)[:, None]
    verdict = compare("regression", truth.astype(np.float64), single, ensemble, metric="rmse")
    assert verdict.proper.metric == "rmse" and not verdict.proper.passes and not verdict.keep


def test_the_mixed_iris_case_keeps_the_single_trial(tmp_path: Path) -> None:
    """The hostile user's case: a mixed MLP / boosted-trees space on iris. The hgb trials
    are the most accurate; a greedy ensemble of MLP and hgb improves the out-of-fold log
    loss but loses accuracy, and was once kept (10 points worse on the test rows)."""
    cfg = make_config(
        seed=3,
        # the defaults of model and train, as the user ran it (one thread: a small model)
        model={"source": "builtin:mlp", "width": 128, "depth": 2},
        train={"epochs": 5, "batch_size": 64},
        cv={"strategy": "kfold", "folds": 3},
        search={
            "n_trials": 6,
            "sampler": "random",
            "pruner": "none",
            "space": {
                "model.source": {
                    "type": "categorical",
                    "choices": ["builtin:mlp", "sklearn:hgb"],
                },
                "train.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
            },
        },
    )
    result = run_study(cfg, out=tmp_path / "run")
    assert result.metrics is not None and result.metrics["final"] == "best trial"
    summary = json.loads((tmp_path / "run" / "ensemble.json").read_text())
    assert not summary["kept"]
    assert summary["best_single_trial"] == result.metrics["best_trial"]
    compared = summary["comparisons"]
    user, proper = compared["user_metric"], compared["proper_score"]
    assert user["metric"] == "accuracy" and proper["metric"] == "log_loss"
    assert not user["passes"] and user["ensemble"] < user["best_single"]
    assert "accuracy" in summary["reason"] and "worse" in summary["reason"]
