"""Library calls report progress through the logger ``tunelab`` (INFO), as Hugging Face's
Trainer does through its own: ``logging.basicConfig(level=logging.INFO)`` shows them."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_config

ROOT = Path(__file__).resolve().parents[2]


def test_train_logs_the_data_every_epoch_and_the_test_score(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tunelab.flows.train import train

    caplog.set_level(logging.INFO, logger="tunelab")
    train(make_config(cv={"strategy": "kfold", "folds": 2}), out=tmp_path / "run")
    lines = [r.getMessage() for r in caplog.records if r.name == "tunelab"]
    assert any(line.startswith("sklearn:iris: tabular, multiclass;") for line in lines)
    assert sum(line.startswith("fold 2/2  epoch ") for line in lines) == 3
    assert sum(line.startswith("fold ") and ": accuracy " in line for line in lines) == 2
    assert [line.split("  ")[0] for line in lines if line.startswith("epoch ")] == [
        "epoch 1/3",
        "epoch 2/3",
        "epoch 3/3",
    ]
    assert any(line.startswith("test accuracy ") and "Wilson" in line for line in lines)


def test_a_study_logs_each_trial(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tunelab.flows.study import run_study

    caplog.set_level(logging.INFO, logger="tunelab")
    space = {"train.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}}
    cfg = make_config(search={"n_trials": 2, "space": space}, ensemble={"method": "none"})
    run_study(cfg, out=tmp_path / "run")
    lines = [r.getMessage() for r in caplog.records if r.name == "tunelab"]
    assert sum(line.startswith("trial ") and " complete: accuracy " in line for line in lines) == 2


def test_basic_config_shows_progress_from_a_plain_script(tmp_path: Path) -> None:
    """What a user sees: a script that configures logging and calls train()."""
    script = (
        "import logging\n"
        "logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
        "from tests.conftest import make_config\n"
        "from tunelab.flows.train import train\n"
        f"train(make_config(), out={str(tmp_path / 'run')!r})\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "epoch 3/3  train_loss " in proc.stderr and "test accuracy " in proc.stderr
