"""A stage that fails after the final predictor is written (ensemble, ladder, tracking,
report) never costs what finished: the summary and report.html name the failed stage and
its reason, and the command exits non-zero."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import make_config
from tunelab.cli import app
from tunelab.errors import ConfigError
from tunelab.flows.study import run_study
from tunelab.results.predictor import load_predictor
from tunelab.tracking import Tracking

LR = {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}
SECTIONS: dict[str, Any] = {
    "train": {"epochs": 2},
    "cv": {"strategy": "kfold", "folds": 2},
    "search": {"n_trials": 2, "sampler": "random", "pruner": "none", "space": {"train.lr": LR}},
}


def broken(message: str) -> Any:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise ConfigError(message)

    return fail


def test_a_ladder_that_fails_late_keeps_the_refit_and_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tunelab.flows.study.run_ladder", broken("the ladder broke"))
    config = {"name": "late", "data": {"source": "sklearn:iris"}, **SECTIONS}
    config["model"] = {"source": "builtin:mlp", "width": 8, "depth": 1}
    config["ladder"] = {"enabled": True}
    (tmp_path / "late.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(tmp_path / "late.yaml"), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "stage ladder failed: 1 problem: - the ladder broke" in " ".join(result.output.split())
    assert "final: the best trial refit" in result.output, "the summary is printed"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["failed_stages"] == [
        {"stage": "ladder", "reason": "1 problem:\n  - the ladder broke"}
    ]
    assert load_predictor(out).kind == "model", "the refit is kept"
    report = (out / "report.html").read_text()
    assert "Failed stage: ladder: 1 problem:" in report and "the ladder broke" in report
    assert "stage ladder failed" in (out / "run.log").read_text()


def test_tracking_that_fails_late_is_a_failed_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def final(self: Tracking, record: Any) -> None:
        raise RuntimeError("the tracking server went away")

    monkeypatch.setattr(Tracking, "final", final)
    result = run_study(make_config(**SECTIONS), out=tmp_path / "run")
    assert result.metrics is not None
    [failure] = result.failed_stages
    assert failure.stage == "tracking"
    assert failure.reason == "RuntimeError: the tracking server went away"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["failed_stages"][0]["stage"] == "tracking"
    assert "Failed stage: tracking" in (tmp_path / "run" / "report.html").read_text()


def test_an_ensemble_stage_that_fails_leaves_the_best_trial_final(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tunelab.flows.finish.decide", broken("no ensemble today"))
    result = run_study(make_config(**SECTIONS), out=tmp_path / "run")
    assert result.metrics is not None and result.metrics["final"] == "best trial"
    assert [f.stage for f in result.failed_stages] == ["ensemble"]
    summary = json.loads((tmp_path / "run" / "ensemble.json").read_text())
    assert not summary["kept"] and summary["failed"]
    assert "the ensemble stage failed (1 problem:" in summary["reason"]
    assert (tmp_path / "run" / "report.html").is_file()


def test_train_names_a_failed_report_and_exits_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tunelab.flows.train.write_report", broken("no room for the report"))
    config = {
        "name": "t",
        "data": {"source": "sklearn:iris"},
        "model": {"source": "builtin:mlp", "width": 8, "depth": 1},
        "train": {"epochs": 2, "threads": 1},
    }
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(tmp_path / "t.yaml"), "--out", str(out)])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "stage report failed: 1 problem: - no room for the report" in text
    assert f"try again with: tunelab report {out}" in text
    assert (out / "final" / "predictor.json").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["failed_stages"][0]["stage"] == "report"
