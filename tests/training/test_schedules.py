from __future__ import annotations

import itertools

import pytest
import torch

from tests.conftest import make_config
from tunelab.training.schedules import lr_at


def lrs(schedule: str, total: int = 100, **train: object) -> list[float]:
    cfg = make_config(train={"schedule": schedule, "lr": 0.1, **train}).train
    return [lr_at(s, total_steps=total, steps_per_epoch=10, cfg=cfg) for s in range(total)]


def test_constant() -> None:
    assert set(lrs("constant")) == {0.1}


def test_cosine_with_warmup_rises_then_decays_to_zero() -> None:
    values = lrs("cosine", warmup_fraction=0.1)
    assert values[0] == pytest.approx(0.01)
    assert values[9] == pytest.approx(0.1)
    assert values[10] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(values[10:]))
    assert values[-1] < 1e-3


def test_step_schedule_multiplies_by_gamma_each_period() -> None:
    values = lrs("step", step_every_epochs=3, step_gamma=0.5)
    assert values[0] == pytest.approx(0.1)
    assert values[29] == pytest.approx(0.1)
    assert values[30] == pytest.approx(0.05)
    assert values[60] == pytest.approx(0.025)


def test_onecycle_matches_torch() -> None:
    total = 50
    values = lrs("onecycle", total=total, warmup_fraction=0.3)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=0.1, total_steps=total, pct_start=0.3, cycle_momentum=False
    )
    reference = []
    for _ in range(total):
        reference.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        sched.step()
    assert values == pytest.approx(reference, rel=1e-6, abs=1e-12)
