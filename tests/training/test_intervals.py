"""Test-row intervals that respect their metric's range, and never collapse on a perfect score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from tests.conftest import make_config
from tunelab.training.intervals import clip, clip_difference, score_interval, wilson


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    return np.eye(classes)[labels]


def test_36_of_36_right_is_about_90_to_100_percent_not_a_point() -> None:
    truth = np.arange(36) % 3
    interval = score_interval(
        "multiclass", truth, one_hot(truth, 3), "accuracy", level=0.95, seed=0
    )
    assert interval.low == pytest.approx(0.9036, abs=1e-4) and interval.high == 1.0
    assert "Wilson" in interval.method and "36 of 36" in interval.method


@pytest.mark.parametrize(("right", "rows"), [(0, 10), (3, 10), (30, 36), (99, 100), (360, 360)])
def test_wilson_matches_scipy_and_stays_inside_0_1(right: int, rows: int) -> None:
    expected = binomtest(right, rows).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson(right, rows, level=0.95)
    assert low == pytest.approx(expected.low, abs=1e-12)
    assert high == pytest.approx(expected.high, abs=1e-12)
    assert 0.0 <= low <= right / rows <= high <= 1.0


def test_balanced_accuracy_of_a_perfect_model_has_room_below_one() -> None:
    truth = np.array([0] * 30 + [1] * 6)
    interval = score_interval(
        "binary", truth, one_hot(truth, 2), "balanced_accuracy", level=0.95, seed=0
    )
    # the 6-row class carries half the weight: its recall is the uncertain part
    assert 0.7 < interval.low < 0.95 and 0.99 < interval.high <= 1.0
    assert "Beta" in interval.method


def test_other_metrics_keep_the_bootstrap_inside_their_range() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 50)
    proba = np.clip(one_hot(truth, 2) * 0.8 + rng.uniform(0, 0.2, (50, 2)), 0, 1)
    proba /= proba.sum(1, keepdims=True)
    interval = score_interval("binary", truth, proba, "roc_auc", level=0.95, seed=0)
    assert 0.0 <= interval.low <= interval.high <= 1.0 and "bootstrap" in interval.method


def test_clipping_to_the_metric_range() -> None:
    assert clip(0.9526, 1.0191, "accuracy") == (0.9526, 1.0)
    assert clip(-0.01, 0.3, "log_loss") == (0.0, 0.3)
    assert clip(-5.0, 2.0, "r2") == (-5.0, 1.0)
    assert clip_difference(-1.3, 0.2, "accuracy") == (-1.0, 0.2)
    assert clip_difference(-7.0, 9.0, "rmse") == (-7.0, 9.0)


def test_metrics_json_names_the_interval_method(tmp_path: Path) -> None:
    from tunelab.flows.train import train

    summary = train(make_config(data={"source": "sklearn:iris", "test_size": 0.24}), out=tmp_path)
    interval = json.loads((summary.run_dir / "metrics.json").read_text())["test_interval"]
    assert interval["method"].startswith("Wilson score interval (")
    assert "of 36 rows right" in interval["method"]
    assert 0.0 <= interval["low"] < interval["high"] <= 1.0
