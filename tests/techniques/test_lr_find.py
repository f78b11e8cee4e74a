"""lr-find's technique on the one loop: it sets the rate of every step and ends training
mid-epoch, after its steps or when the loss diverges."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tests.conftest import make_config
from tunelab.techniques.lr_find import LrFinder
from tunelab.training.batching import TensorData
from tunelab.training.loop import FitResult, fit


def toy(rows: int = 96) -> TensorData:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, 5, generator=generator)
    return TensorData((x,), (x[:, 0] > 0).long())


def sweep(finder: LrFinder, *, epochs: int) -> FitResult:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2))
    cfg = make_config(train={"epochs": epochs, "batch_size": 16, "optimizer": "sgd"})
    return fit(
        model,
        toy(),
        None,
        train_cfg=cfg.train,
        loss_fn=nn.CrossEntropyLoss(),
        seed=0,
        techniques=[finder],
    )


def test_the_finder_sets_every_steps_rate_and_stops_the_loop_mid_epoch() -> None:
    finder = LrFinder(start=1e-4, end=1e-1, steps=10)
    result = sweep(finder, epochs=50)
    # 96 rows in batches of 16: six steps an epoch, so the tenth step is in the second
    assert len(result.history) == 2 and result.stop_reason == "lr_find_end"
    assert finder.stopped == "end" and len(finder.lrs) == len(finder.losses) == 10
    assert finder.lrs == pytest.approx([1e-4 * 1000 ** (i / 9) for i in range(10)])
    # the loop's optimizer ran at the finder's rates, not at train.lr's schedule
    assert result.history[0]["lr"] == pytest.approx(finder.lrs[5])
    assert result.history[1]["lr"] == pytest.approx(finder.lrs[9])
    assert all(math.isfinite(loss) for loss in finder.losses)


def test_the_finder_ends_training_once_the_loss_diverges() -> None:
    finder = LrFinder(start=1e-3, end=1e6, steps=300)
    result = sweep(finder, epochs=60)
    assert finder.stopped == "diverged"
    assert len(finder.lrs) < 300 and len(result.history) < 60
    assert result.stop_reason in ("lr_find_diverged", "non_finite")
