from __future__ import annotations

from tunelab.techniques.early_stopping import EarlyStopping, StopReason


def test_patience_counts_epochs_without_improvement() -> None:
    stopper = EarlyStopping(mode="min", patience=2)
    decisions = [stopper.update(e, v) for e, v in enumerate([1.0, 0.8, 0.9, 0.85, 0.7])]
    assert [d[0] for d in decisions] == [False, False, False, True, False]
    assert decisions[3][1] is StopReason.PATIENCE
    assert stopper.best_epoch == 4


def test_min_delta_and_mode_max() -> None:
    stopper = EarlyStopping(mode="max", patience=1, min_delta=0.05)
    assert stopper.update(0, 0.50)[2] is True
    stop, reason, improved = stopper.update(1, 0.53)  # not enough to count
    assert (stop, reason, improved) == (True, StopReason.PATIENCE, False)
    assert stopper.best == 0.50


def test_warmup_epochs_delay_stopping() -> None:
    stopper = EarlyStopping(mode="min", patience=1, warmup_epochs=3)
    results = [stopper.update(e, v)[0] for e, v in enumerate([1.0, 2.0, 2.0, 2.0])]
    # patience runs out at epoch 1, but epochs 0-2 are warm-up: the first stop is epoch 3
    assert results == [False, False, False, True]


def test_non_finite_stops_with_reason() -> None:
    stopper = EarlyStopping(mode="min")
    assert stopper.update(0, float("nan"))[:2] == (True, StopReason.NON_FINITE)


def test_disabled_tracks_best_but_never_stops() -> None:
    stopper = EarlyStopping(mode="min", patience=1, enabled=False)
    assert not any(stopper.update(e, float(e))[0] for e in range(5))
    assert stopper.best_epoch == 0


def test_state_saves_and_resumes() -> None:
    first = EarlyStopping(mode="min", patience=3)
    for epoch, value in enumerate([1.0, 0.5, 0.7]):
        first.update(epoch, value)
    resumed = EarlyStopping(mode="min", patience=3)
    resumed.load_state_dict(first.state_dict())
    assert resumed.update(3, 0.8) == first.update(3, 0.8)
    assert (resumed.best, resumed.best_epoch, resumed.wait) == (0.5, 1, 2)
