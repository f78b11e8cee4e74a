"""Refactors keep behaviour: the examples' metrics are pinned (same seed, one CPU thread).

``tests/fixtures/pinned_metrics.json`` was written by this code before the stages redesign;
a change that alters any number here changed what tunelab computes, and must say why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tunelab.config import load_config
from tunelab.results.trial_record import record

ROOT = Path(__file__).resolve().parents[1]
PINNED = json.loads((ROOT / "tests" / "fixtures" / "pinned_metrics.json").read_text())
ONE_THREAD = ["train.threads=1", "train.device=cpu"]


def _close(actual: Any, expected: Any) -> None:
    if isinstance(expected, dict):
        for key, value in expected.items():
            _close(actual[key], value)
    elif isinstance(expected, list):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            _close(a, e)
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=1e-9, abs=1e-12)
    else:
        assert actual == expected


@pytest.mark.slow
@pytest.mark.parametrize("name", ["quickstart", "tabular"])
def test_train_metrics_are_pinned(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tunelab.pipeline import train

    monkeypatch.chdir(ROOT)
    torch.set_num_threads(1)
    cfg = load_config(f"examples/{name}.yaml", overrides=ONE_THREAD)
    summary = train(cfg, out=tmp_path / name)
    _close(summary.metrics, PINNED[name])


@pytest.mark.slow
def test_study_values_are_pinned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tunelab.search.run import run_study

    monkeypatch.chdir(ROOT)
    torch.set_num_threads(1)
    overrides = [
        *ONE_THREAD,
        "search.n_trials=3",
        "train.epochs=3",
        "cv.strategy=kfold",
        "cv.folds=2",
        "search.pruner=none",
        "ensemble.method=none",  # pinned before ensembles existed: the refit best trial
    ]
    cfg = load_config("examples/quickstart.yaml", overrides=overrides)
    result = run_study(cfg, out=tmp_path / "study")
    trials = result.study.trials
    assert result.metrics is not None
    _close(
        {
            "values": [t.value for t in trials],
            "fold_scores": [record(t)["fold_scores"] for t in trials],
            "test": result.metrics["test"],
        },
        PINNED["study"],
    )
