"""The ladder's statistics against numbers computed by hand, and against planted effects."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tunelab.ladder import stats

# five paired differences of 5-fold cross-validation: n_test / n_train = 1/4
DIFFERENCES = [0.02, 0.01, 0.03, 0.00, 0.04]
RATIO = 0.25
T_975_DF4 = 2.7764451051977987  # Student's t quantile, 4 degrees of freedom (a table value)


def t4_cdf(t: float) -> float:
    """Student's t CDF with 4 degrees of freedom in closed form (no scipy)."""
    x = t * t / 4.0
    return 0.5 + 0.375 * (t / math.sqrt(1 + x)) * (1 - x / (3 * (1 + x)))


def test_corrected_t_test_matches_the_hand_computed_value() -> None:
    # mean 0.02; s^2 = (0 + 1e-4 + 1e-4 + 4e-4 + 4e-4) / 4 = 2.5e-4
    # corrected variance (1/5 + 1/4) * 2.5e-4 = 1.125e-4; t = 0.02 / sqrt(1.125e-4) = 1.8856
    t = 0.02 / math.sqrt((1 / 5 + 1 / 4) * 2.5e-4)
    by_hand = 2 * (1 - t4_cdf(t))
    new = [0.90 + d for d in DIFFERENCES]
    old = [0.90] * 5
    result = stats.compare(new, old, test_train_ratio=RATIO, level=0.95)
    assert result.difference.mean == pytest.approx(0.02)
    assert result.p_value == pytest.approx(by_hand, rel=1e-9)
    assert result.p_value == pytest.approx(0.1324, abs=1e-4)
    half = T_975_DF4 * math.sqrt(1.125e-4)
    assert result.difference.low == pytest.approx(0.02 - half)
    assert result.difference.high == pytest.approx(0.02 + half)


def test_the_correction_is_what_keeps_overlapping_folds_from_false_evidence() -> None:
    """The plain paired t-test (variance s^2/J) calls the same numbers significant."""
    t_plain = 0.02 / math.sqrt(2.5e-4 / 5)
    assert 2 * (1 - t4_cdf(t_plain)) < 0.05
    result = stats.compare(DIFFERENCES, [0.0] * 5, test_train_ratio=RATIO, level=0.95)
    assert result.p_value > 0.05


def test_size_ratio_of_five_folds_is_a_quarter() -> None:
    rows = np.arange(100)
    splits = [(np.setdiff1d(rows, part), part) for part in np.array_split(rows, 5)]
    assert stats.size_ratio(splits) == pytest.approx(0.25)


def test_holm_matches_a_hand_example() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> kept at 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert stats.holm([]) == []


def noisy(rng: np.random.Generator, shift: float, count: int = 10) -> tuple[list[float], ...]:
    """Fold scores of two variants: the same fold difficulty, independent noise, and
    ``shift`` planted in the second."""
    difficulty = rng.normal(0.85, 0.03, count)
    old = difficulty + rng.normal(0, 0.005, count)
    new = difficulty + rng.normal(0, 0.005, count) + shift
    return list(new), list(old)


@pytest.mark.parametrize("seed", range(5))
def test_a_no_op_gets_no_evidence_and_a_planted_effect_helps(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ratio = 1 / 4
    p_values = [
        stats.compare(*noisy(rng, shift), test_train_ratio=ratio, level=0.95).p_value
        for shift in (0.0, 0.05, -0.05)
    ]
    no_op, planted, harmful = stats.holm(p_values)
    verdicts = [
        stats.verdict(d, p, alpha=0.05, greater_is_better=True)
        for d, p in ((0.0001, no_op), (0.05, planted), (-0.05, harmful))
    ]
    assert verdicts == ["no evidence", "helps", "hurts"]


def test_for_an_error_metric_lower_helps() -> None:
    assert stats.verdict(-0.3, 0.001, alpha=0.05, greater_is_better=False) == "helps"
    assert stats.verdict(0.3, 0.001, alpha=0.05, greater_is_better=False) == "hurts"
    assert stats.verdict(0.3, 0.2, alpha=0.05, greater_is_better=False) == "no evidence"


def test_identical_scores_are_no_evidence_and_a_shift_on_every_fold_is() -> None:
    same = stats.compare([0.9, 0.8, 0.7], [0.9, 0.8, 0.7], test_train_ratio=0.5, level=0.95)
    assert same.p_value == 1.0 and same.difference.mean == 0.0
    assert stats.verdict(0.0, same.p_value, alpha=0.05, greater_is_better=True) == "no evidence"
    exact = stats.compare([1.0, 1.0, 0.5], [0.5, 0.5, 0.0], test_train_ratio=0.5, level=0.95)
    assert exact.p_value == 0.0  # no spread at all: not a division by zero
    shifted = stats.compare([0.95, 0.85, 0.75], [0.9, 0.8, 0.7], test_train_ratio=0.5, level=0.95)
    assert shifted.p_value < 1e-10


def test_the_interval_of_a_mean_uses_the_corrected_variance() -> None:
    scores = [0.90 + d for d in DIFFERENCES]
    est = stats.estimate(scores, test_train_ratio=RATIO, level=0.95)
    assert est.mean == pytest.approx(0.92)
    assert est.high - est.mean == pytest.approx(T_975_DF4 * math.sqrt(1.125e-4))


def test_non_finite_or_unpaired_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        stats.estimate([0.9, float("nan"), 0.8], test_train_ratio=0.25, level=0.95)
    with pytest.raises(ValueError, match="same folds"):
        stats.compare([0.9, 0.8], [0.9, 0.8, 0.7], test_train_ratio=0.25, level=0.95)
    with pytest.raises(ValueError, match="at least two"):
        stats.estimate([0.9], test_train_ratio=0.25, level=0.95)


def test_repeats_needed_is_the_fewest_that_reach_alpha_at_the_observed_spread() -> None:
    from scipy import stats as scipy_stats

    from tunelab.ladder.stats import repeats_needed

    differences = [0.02, 0.0, 0.01, 0.03, -0.01]  # mean 0.01, sd 0.0158
    needed = repeats_needed(differences, folds=5, test_train_ratio=0.1, alpha=0.05)
    assert needed is not None and needed > 1
    # at that many repeats the corrected test of the same spread reaches alpha; one fewer not
    mean, spread = float(np.mean(differences)), float(np.std(differences, ddof=1))
    for repeats, reaches in ((needed, True), (needed - 1, False)):
        count = 5 * repeats
        t = mean / (spread * math.sqrt(1 / count + 0.1))
        assert bool(t >= scipy_stats.t.ppf(0.975, count - 1)) is reaches
    # the folds' overlap bounds the test: at ratio 0.25 this spread never gets there
    assert repeats_needed(differences, folds=5, test_train_ratio=0.25, alpha=0.05) is None
    assert repeats_needed([0.0, 0.0, 0.0], folds=3, test_train_ratio=0.5, alpha=0.05) is None


def test_a_step_whose_scores_never_moved_says_its_predictions_did() -> None:
    from tunelab.ladder.nothing import unchanged_note

    old = {"folds": [{"score": 0.9, "outputs": "a"}, {"score": 0.8, "outputs": "b"}]}
    new = {"folds": [{"score": 0.9, "outputs": "c"}, {"score": 0.8, "outputs": "b"}]}
    assert unchanged_note(new, old, "accuracy") == (
        "no fold's accuracy moved, though its predictions changed on 1 of 2 folds: an effect "
        "too small for this metric on these rows"
    )
    moved = {"folds": [{"score": 0.95, "outputs": "c"}, {"score": 0.8, "outputs": "b"}]}
    assert unchanged_note(moved, old, "accuracy") is None
