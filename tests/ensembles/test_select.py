"""The combination methods, on out-of-fold predictions only."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from tunelab.ensembles import select


def noisy_members(
    seed: int, members: int = 6, rows: int = 300, classes: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, classes, rows)
    clean = np.eye(classes)[truth] * 2.0
    logits = clean[None] + rng.normal(
        0, rng.uniform(0.8, 2.5, (members, 1, 1)), (members, rows, classes)
    )
    proba = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return truth, proba


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("metric", ["log_loss", "accuracy"])
def test_greedy_never_scores_worse_than_its_best_member(seed: int, metric: str) -> None:
    truth, oof = noisy_members(seed)
    singles = select.member_scores("multiclass", truth, oof, metric)
    best = max(singles) if metric == "accuracy" else min(singles)
    choice = select.greedy("multiclass", truth, oof, metric, select.Options(rounds=10))
    assert not select.better(best, choice.score, metric)
    assert choice.weights.sum() == pytest.approx(1.0) and (choice.weights >= 0).all()


def test_greedy_improves_on_independent_noisy_members() -> None:
    truth, oof = noisy_members(0)
    singles = select.member_scores("multiclass", truth, oof, "log_loss")
    assert select.greedy("multiclass", truth, oof, "log_loss").score < min(singles) - 0.01


def test_greedy_with_one_good_member_picks_it_alone() -> None:
    truth, oof = noisy_members(1)
    oof[2] = np.eye(3)[truth] * 0.97 + 0.01  # nearly perfect
    choice = select.greedy("multiclass", truth, oof, "log_loss")
    assert choice.weights[2] == 1.0


def test_weighted_finds_simplex_weights_at_least_as_good_as_the_mean() -> None:
    truth, oof = noisy_members(2)
    weighted = select.weighted("multiclass", truth, oof, "log_loss")
    assert weighted.weights.sum() == pytest.approx(1.0)
    assert weighted.score <= select.mean("multiclass", truth, oof, "log_loss").score + 1e-9


def test_stacking_fits_on_the_given_out_of_fold_rows_and_scores_by_cross_validation() -> None:
    truth, oof = noisy_members(3)
    choice = select.stacking("multiclass", truth, oof, "log_loss")
    assert choice.stacker is not None
    features = np.concatenate(list(oof), axis=1)
    again = LogisticRegression(C=1.0, max_iter=2000).fit(features, truth)
    np.testing.assert_allclose(choice.stacker.coef, again.coef_, rtol=1e-6, atol=1e-8)
    in_sample = select.score("multiclass", truth, again.predict_proba(features), "log_loss")
    assert choice.score > in_sample, "the reported score is out-of-fold, not the fit's own"


def test_regression_methods_use_squared_error() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=200)
    oof = truth[None, :, None] + rng.normal(0, 1.0, (4, 200, 1))
    singles = select.member_scores("regression", truth, oof, "rmse")
    for choice in (
        select.mean("regression", truth, oof, "rmse"),
        select.greedy("regression", truth, oof, "rmse"),
        select.weighted("regression", truth, oof, "rmse"),
        select.stacking("regression", truth, oof, "rmse"),
    ):
        assert choice.score < min(singles)
