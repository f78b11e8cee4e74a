"""tunelab's NumPy metrics give scikit-learn's values, on random and on awkward inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from tunelab.training.metrics import bootstrap_interval, compute_metrics


def reference(task: str, y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """scikit-learn's own functions, called the way the metric names read."""
    if task == "regression":
        return {
            "rmse": float(np.sqrt(skm.mean_squared_error(y, p))),
            "mae": float(skm.mean_absolute_error(y, p)),
            "r2": float(skm.r2_score(y, p)),
        }
    labels = p.argmax(1)
    auc = (
        skm.roc_auc_score(y, p[:, 1])
        if p.shape[1] == 2
        else skm.roc_auc_score(y, p, multi_class="ovr", average="macro")
    )
    return {
        "accuracy": float(skm.accuracy_score(y, labels)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, labels)),
        "f1_macro": float(skm.f1_score(y, labels, average="macro", zero_division=0)),
        "log_loss": float(skm.log_loss(y, p, labels=np.arange(p.shape[1]))),
        "roc_auc": float(auc),
        "brier": float(
            skm.brier_score_loss(y, p if p.shape[1] > 2 else p[:, 1], labels=np.arange(p.shape[1]))
        ),
        "ece": expected_calibration_error(y, p),
    }


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE written out bin by bin (Guo et al., 2017)."""
    confidence, correct = p.max(1), (p.argmax(1) == y).astype(float)
    total = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = (confidence >= low) & (
            (confidence < high) if b < bins - 1 else (confidence <= high)
        )
        if inside.any():
            total += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return total


def probabilities(rng: np.random.Generator, rows: int, classes: int, *, coarse: bool) -> np.ndarray:
    p = rng.dirichlet(np.ones(classes), rows)
    if coarse:  # many tied scores, some exact 0/1 probabilities
        p = np.round(p, 1)
        p[rows // 2] = np.eye(classes)[0]
        p = p / p.sum(axis=1, keepdims=True)
    return p


@pytest.mark.parametrize("classes", [2, 3, 10])
@pytest.mark.parametrize("coarse", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_classification_metrics_match_scikit_learn(classes: int, coarse: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = int(rng.integers(classes * 4, 200))
    y = rng.integers(0, classes, rows)
    y[:classes] = np.arange(classes)  # every class present (AUC is defined)
    p = probabilities(rng, rows, classes, coarse=coarse)
    task = "binary" if classes == 2 else "multiclass"
    ours, theirs = compute_metrics(task, y, p), reference(task, y, p)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert ours[name] == pytest.approx(theirs[name], rel=1e-9, abs=1e-12), name


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_classes_missing_from_the_labels_or_the_predictions_count_as_scikit_learn_counts() -> None:
    """Balanced accuracy averages over the true classes; macro-F1 over the classes seen in
    the labels or the predictions; AUC is undefined (nan) when a class is absent."""
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array(
        [
            [0.1, 0.2, 0.7],
            [0.8, 0.1, 0.1],
            [0.2, 0.7, 0.1],
            [0.1, 0.1, 0.8],
            [0.3, 0.6, 0.1],
            [0.5, 0.4, 0.1],
        ]
    )
    ours, theirs = compute_metrics("multiclass", y, p), reference_without_auc(y, p)
    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value, rel=1e-12), name
    assert np.isnan(ours["roc_auc"])
    single = compute_metrics("binary", np.zeros(4, dtype=int), np.full((4, 2), 0.5))
    assert np.isnan(single["roc_auc"]) and single["accuracy"] == 1.0


def reference_without_auc(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    labels = p.argmax(1)
    return {
        "accuracy": float(skm.accuracy_score(y, labels)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, labels)),
        "f1_macro": float(skm.f1_score(y, labels, average="macro", zero_division=0)),
        "log_loss": float(skm.log_loss(y, p, labels=np.arange(p.shape[1]))),
    }


@pytest.mark.parametrize("seed", range(4))
def test_regression_metrics_match_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(3.0, 2.0, 50)
    p = y + rng.normal(0.0, 1.0, 50)
    ours, theirs = compute_metrics("regression", y, p), reference("regression", y, p)
    for name in ours:
        assert ours[name] == pytest.approx(theirs[name], rel=1e-12), name
    column = compute_metrics("regression", y, p.reshape(-1, 1).astype(np.float32))
    for name in ours:  # an (N, 1) float32 column is the same predictions, not (N, N)
        assert column[name] == pytest.approx(theirs[name], rel=1e-5), name
    constant = np.full(5, 2.0)
    assert compute_metrics("regression", constant, constant)["r2"] == skm.r2_score(
        constant, constant
    )
    assert compute_metrics("regression", constant, constant + 1)["r2"] == skm.r2_score(
        constant, constant + 1
    )


def test_bootstrap_interval_brackets_the_metric_and_narrows_with_more_rows() -> None:
    rng = np.random.default_rng(0)

    def interval(rows: int) -> tuple[float, float, float]:
        y = rng.integers(0, 2, rows)
        p = np.eye(2)[y] * 0.2 + rng.uniform(0, 0.8, (rows, 2))  # about 70% right
        p = p / p.sum(axis=1, keepdims=True)
        low, high = bootstrap_interval("binary", y, p, "accuracy", resamples=400)
        return low, float(skm.accuracy_score(y, p.argmax(1))), high

    low, value, high = interval(100)
    assert low <= value <= high
    wide = high - low
    low, value, high = interval(2000)
    assert low <= value <= high
    assert high - low < wide / 2


def test_paired_bootstrap_difference_is_the_observed_difference_with_an_interval() -> None:
    from tunelab.training.metrics import paired_bootstrap_difference

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    good = np.column_stack([1 - y * 0.8 - 0.1, y * 0.8 + 0.1])
    noisy = np.clip(good + rng.normal(0, 0.3, good.shape), 0.01, 0.99)
    noisy = noisy / noisy.sum(1, keepdims=True)
    observed, low, high = paired_bootstrap_difference("binary", y, good, noisy, "log_loss")
    assert observed == pytest.approx(skm.log_loss(y, good) - skm.log_loss(y, noisy))
    assert low <= observed <= high < 0, "the good predictions are clearly better"
    same = paired_bootstrap_difference("binary", y, good, good, "log_loss")
    assert same == (0.0, 0.0, 0.0)
