"""lr-find: the sweep, its suggestion, train.lr auto, and the command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import make_config
from tunelab.cli import app
from tunelab.errors import ConfigError
from tunelab.evaluation.fitting import fit_on_rows
from tunelab.evaluation.lr_find import lr_sweep
from tunelab.evaluation.prepare import prepare


def test_the_sweep_rises_exponentially_and_suggests_a_tenth_of_the_best_rate() -> None:
    cfg = make_config(data={"source": "sklearn:digits"})
    prepared = prepare(cfg)
    sweep = lr_sweep(cfg, prepared, prepared.split.train, steps=60)
    ratios = [b / a for a, b in zip(sweep.lrs, sweep.lrs[1:], strict=False)]
    assert max(ratios) == pytest.approx(min(ratios))
    assert sweep.lowest == sweep.lrs[sweep.losses.index(min(sweep.losses))]
    assert sweep.suggestion == pytest.approx(sweep.lowest / 10)
    assert 1e-5 < sweep.suggestion < 1.0
    assert sweep.losses[0] > min(sweep.losses)  # it learned something on the way
    assert all(math.isfinite(v) for v in sweep.losses)


def test_a_freeze_then_unfreeze_model_sweeps_its_frozen_phase() -> None:
    """The sweep passes over the rows several times; the backbone stays frozen all along,
    whatever epoch the recipe unfreezes at."""
    suggestions = []
    for epoch in (1, 100):
        cfg = make_config(
            data={"source": "sklearn:digits"},
            model={"depth": 2},
            regularization={"dropout": 0.0},
            finetuning={"strategy": "freeze_then_unfreeze", "unfreeze_epoch": epoch},
        )
        prepared = prepare(cfg)
        suggestions.append(lr_sweep(cfg, prepared, prepared.split.train).suggestion)
    assert suggestions[0] == suggestions[1]


def test_lr_auto_trains_with_the_suggestion_and_says_so() -> None:
    cfg = make_config(train={"lr": "auto"})
    prepared = prepare(cfg)
    fitted = fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation)
    notes = [n for n in fitted.predictor.info["notes"] if n.startswith("train.lr auto")]
    assert len(notes) == 1 and "lr-find suggested" in notes[0]
    assert fitted.result.history[0]["lr"] > 0


def test_lr_value_refuses_an_unresolved_auto() -> None:
    with pytest.raises(ConfigError, match="lr-find"):
        _ = make_config(train={"lr": "auto"}).train.lr_value


def test_the_command_prints_the_sweep_and_writes_the_plot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(
        "data: {source: 'sklearn:iris'}\n"
        "model: {source: 'builtin:mlp', width: 8, depth: 1}\n"
        "train: {threads: 1, device: cpu, batch_size: 16}\n"
    )
    result = CliRunner().invoke(app, ["lr-find", "c.yaml", "--steps", "30"])
    assert result.exit_code == 0, result.output
    assert "suggested train.lr:" in result.output
    written = json.loads((tmp_path / "runs" / "run-lr-find" / "lr_find.json").read_text())
    assert len(written["lrs"]) == len(written["losses"]) == 30
    assert (tmp_path / "runs" / "run-lr-find" / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
