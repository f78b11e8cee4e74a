"""A tracker that cannot be reached, or that dies during the run, never stalls it: the
check before training fails fast with the URI and the fix, and every later call is bounded.
Each test fails when the run takes more than about 15 s beyond training (MLflow's own
client retries a refused connection with back-off for minutes)."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import pytest
from typer.testing import CliRunner

from tests.network import FakeMlflow, SilentServer, closed_port, finishes_within
from tests.observers import OnEpoch, OnTrialEnded
from tunelab import reach
from tunelab.cli import app
from tunelab.errors import FatalError
from tunelab.flows.study import run_study
from tunelab.flows.train import train

pytest.importorskip("mlflow", reason="pip install 'tunelab[mlflow]'")
pytest.importorskip("tensorboard", reason="pip install 'tunelab[tensorboard]'")

BEYOND_TRAINING = 15  # seconds a tracker may add to a run, at most
HANG = 90  # a run still going after this long is stalled (the test fails, not waits)
SPACE = {"train.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}}


def tracked(config_factory: Any, uri: str, **tracking: Any) -> Any:
    return config_factory(train={"epochs": 2}, tracking={"mlflow": uri, **tracking})


def refused(tmp_path: Path, cfg: Any) -> FatalError:
    """The error ``train`` stops with, before any training and within the bound."""
    with pytest.raises(FatalError) as caught:
        finishes_within(BEYOND_TRAINING, lambda: train(cfg, out=tmp_path / "run"))
    assert not (tmp_path / "run" / "history.json").exists()
    return caught.value


def test_a_closed_port_stops_train_before_training_with_the_uri_and_the_fix(
    tmp_path: Path, config_factory: Any
) -> None:
    uri = f"http://127.0.0.1:{closed_port()}"
    message = str(refused(tmp_path, tracked(config_factory, uri)))
    assert message.startswith(
        f"tracking.mlflow: cannot reach {uri!r} (connection refused: nothing listens there)"
    )
    assert "Start the tracking server or correct the URI" in message
    assert message.endswith("or set tracking.required: false to run without it")
    assert "\n" not in message


def test_a_server_that_never_answers_stops_train_after_the_timeout(
    tmp_path: Path, config_factory: Any
) -> None:
    with SilentServer() as server:
        uri = f"http://127.0.0.1:{server.port}"
        started = time.monotonic()
        message = str(refused(tmp_path, tracked(config_factory, uri)))
        assert time.monotonic() - started >= 5  # the default tracking.timeout
    assert f"cannot reach {uri!r} (no answer within 5 s)" in message


def test_a_database_store_that_refuses_connections_stops_train(
    tmp_path: Path, config_factory: Any
) -> None:
    uri = f"postgresql://tunelab@127.0.0.1:{closed_port()}/mlflow"
    message = str(refused(tmp_path, tracked(config_factory, uri)))
    assert f"cannot reach {uri!r} (connection refused" in message


def test_without_required_train_goes_on_without_the_tracker_and_says_so(
    tmp_path: Path, config_factory: Any
) -> None:
    uri = f"http://127.0.0.1:{closed_port()}"
    cfg = tracked(config_factory, uri, required=False, tensorboard=str(tmp_path / "tb"))
    summary = finishes_within(HANG, lambda: train(cfg, out=tmp_path / "run"))
    outcome = summary.metrics["tracking"]
    assert outcome["mlflow"]["state"] == "not used"
    assert outcome["mlflow"]["problem"].startswith(f"cannot reach {uri!r} (connection refused")
    assert outcome["tensorboard"]["state"] == "sent"  # the other tracker is not held back
    assert (tmp_path / "tb").is_dir()
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["tracking"] == outcome
    report = (tmp_path / "run" / "report.html").read_text()
    assert "mlflow was not used, the run went on without it" in report


def test_a_tensorboard_folder_that_refuses_writes_stops_train_before_training(
    tmp_path: Path, config_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(**_: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(reach.tempfile, "TemporaryFile", refuse)
    cfg = config_factory(tracking={"tensorboard": str(tmp_path / "tb")})
    message = str(refused(tmp_path, cfg))
    assert message.startswith("tracking.tensorboard: cannot write in")
    assert "Permission denied" in message


def test_a_server_that_dies_during_training_never_stalls_train(
    tmp_path: Path, config_factory: Any
) -> None:
    trained: list[float] = []
    with FakeMlflow() as server:

        def die_in_training(record: dict[str, Any]) -> None:
            server.die()
            trained.append(time.monotonic())

        cfg = tracked(config_factory, server.uri, timeout=2)
        summary = finishes_within(
            HANG, lambda: train(cfg, out=tmp_path / "run", observer=OnEpoch(die_in_training))
        )
    assert time.monotonic() - trained[-1] < BEYOND_TRAINING
    assert "/api/2.0/mlflow/runs/create" in server.calls  # it was in use before it died
    outcome = summary.metrics["tracking"]["mlflow"]
    assert outcome == {
        "target": server.uri,
        "state": "stopped",
        "problem": "could not record the final scores (no answer within 2 s)",
    }
    assert summary.metrics["test"]["accuracy"] is not None


def test_a_server_that_dies_during_a_study_is_switched_off_once_and_the_study_goes_on(
    tmp_path: Path, config_factory: Any
) -> None:
    died: list[datetime] = []
    with FakeMlflow() as server:

        def die_after_trial_1(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if trial.number == 1:  # before tracking gets trial 1
                server.die()
                died.append(datetime.now())  # Optuna's trial times are local and naive

        cfg = config_factory(
            train={"epochs": 2},
            search={"n_trials": 3, "pruner": "none", "space": SPACE},
            tracking={"mlflow": server.uri, "timeout": 2},
        )
        result = finishes_within(
            HANG,
            lambda: run_study(cfg, out=tmp_path / "run", observer=OnTrialEnded(die_after_trial_1)),
        )
    trials = result.study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    start = trials[2].datetime_start
    assert start is not None
    assert (start - died[0]).total_seconds() < BEYOND_TRAINING
    assert server.calls.count("/api/2.0/mlflow/runs/create") == 2  # the study's and trial 0's
    outcome = json.loads((tmp_path / "run" / "metrics.json").read_text())["tracking"]["mlflow"]
    assert outcome["state"] == "stopped"
    assert outcome["problem"] == "could not record trial 1 (no answer within 2 s)"
    log = (tmp_path / "run" / "run.log").read_text()
    assert log.count("switched off for the rest of this run") == 1


def test_the_command_line_ends_with_one_line_and_exit_2(
    tmp_path: Path, config_factory: Any
) -> None:
    config = tmp_path / "tiny.yaml"  # the issue's: iris, builtin:mlp width 8, 2 epochs
    tiny = config_factory(model={"source": "builtin:mlp", "width": 8}, train={"epochs": 2})
    config.write_text(tiny.to_yaml())
    uri = f"http://127.0.0.1:{closed_port()}"
    args = ["train", str(config), "--out", str(tmp_path / "run"), "--set", f"tracking.mlflow={uri}"]
    result = finishes_within(BEYOND_TRAINING, lambda: CliRunner().invoke(app, args))
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and uri in errors[0], result.output
    assert "Traceback" not in result.output


def test_an_unreachable_tracker_leaves_no_run_directory(
    tmp_path: Path, config_factory: Any
) -> None:
    """Refused before the run directory is made: the same command with the address fixed
    then runs without --overwrite."""
    refused(tmp_path, tracked(config_factory, f"http://127.0.0.1:{closed_port()}"))
    assert not (tmp_path / "run").exists()
