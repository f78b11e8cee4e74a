"""``budget:`` bounds time, not trial starts: a long trial is pruned, the refit and refit
ensemble members stop at an epoch boundary, the clock starts with the command, and the
summary says where the time went. And what a log shows while it runs (issue 24)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from tests.conftest import make_config
from tunelab.cli import app
from tunelab.config import RunConfig
from tunelab.evaluation.prepare import prepare
from tunelab.evaluation.refit import refit
from tunelab.flows.finish import finish
from tunelab.flows.study import setup
from tunelab.flows.timeline import Stages, Timeline, process_start
from tunelab.progress.base import Heartbeat, PlainLines
from tunelab.results.rundir import open_run_dir
from tunelab.search.budget import Budget
from tunelab.search.objective import Objective
from tunelab.search.optimize import optimize
from tunelab.training.loop import TIME_BUDGET

LR = {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}
ENDLESS = 1_000_000_000  # train.epochs of the case: only the budget can stop it


def config_file(folder: Path, **sections: Any) -> Path:
    raw = make_config(
        search={"n_trials": 5, "sampler": "random", "space": {"train.lr": LR}}, **sections
    ).model_dump(mode="json")
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.slow
def test_a_trial_that_would_never_end_is_stopped_and_the_command_ends_near_its_budget(
    tmp_path: Path,
) -> None:
    """The issue's case: budget 20, 1e9 epochs, no early stopping ran past 150 s and printed
    nothing. Now the trial is pruned at an epoch boundary before the budget's end (what
    follows it and the interpreter's exit have their reserve), and the log says so."""
    config = config_file(tmp_path, train={"epochs": ENDLESS}, early_stopping={"enabled": False})
    command = [sys.executable, "-m", "tunelab.cli", "run", str(config), "--out", "run"]
    command += ["--set", "budget=20"]
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    seconds = time.monotonic() - started
    assert seconds < 60, f"took {seconds:.0f} s"  # ~20 s; generous for a loaded machine
    assert done.returncode == 1, done.stderr[-3000:]  # no trial could complete: said so
    assert "no trial completed: time budget" in done.stderr
    assert "trial 0 started" in done.stderr and "trial 0 pruned" in done.stderr
    assert "Traceback" not in done.stderr
    assert "(pruned): the time budget ends" in done.stdout
    assert "of a 20 s budget: start-up" in done.stdout
    assert "stopped after fold 1/1 epoch" in (tmp_path / "run" / "run.log").read_text()


def test_the_refit_stops_at_an_epoch_boundary_by_its_deadline_with_a_note() -> None:
    cfg = make_config(train={"epochs": ENDLESS}, early_stopping={"enabled": False})
    prepared = prepare(cfg)
    started = time.time()
    done = refit(cfg, prepared, deadline=started + 2.0)
    assert time.time() - started < 30
    result = done.first.result
    assert result.stop_reason == TIME_BUDGET
    assert result.best_epoch == len(result.history) - 1  # the weights of its last epoch
    assert done.notes == [
        f"the refit stopped after epoch {len(result.history)} of {ENDLESS}: the time budget ends"
    ]


def test_a_bag_stops_starting_members_once_the_deadline_passed() -> None:
    cfg = make_config(train={"epochs": 2}, ensemble={"bagging": {"seeds": 3}})
    done = refit(cfg, prepare(cfg), deadline=time.time() - 1.0)
    assert len(done.first.result.history) == 1  # one epoch: a model always trains
    assert done.notes[-1] == "the time budget ends: 1 of 3 bagged models trained"


def small_study(tmp_path: Path, **ensemble: Any) -> tuple[RunConfig, Any]:
    cfg = make_config(
        train={"epochs": 3},
        search={"n_trials": 3, "sampler": "random", "pruner": "none", "space": {"train.lr": LR}},
        ensemble={"method": "mean", "keep": "ensemble", **ensemble},
    )
    run = open_run_dir(cfg, tmp_path / "run")
    prepared, study, artifacts = setup(cfg, run)
    optimize(study, Objective(cfg, prepared, artifacts), cfg)
    return cfg, (prepared, study, artifacts, run)


def test_an_ensemble_of_refits_is_not_built_when_the_budget_has_ended(tmp_path: Path) -> None:
    cfg, (prepared, study, artifacts, run) = small_study(tmp_path, members="refit")
    over = Budget(end=time.time() - 60, timeout_end=None, refits_after=4, rows_ratio=1, folds=1)
    clock = Stages(Timeline(time.time()))
    metrics = finish(cfg, (prepared, study, artifacts), run, budget=over, clock=clock)
    assert metrics["final"] == "best trial"
    assert metrics["stop_reason"] == TIME_BUDGET  # the refit trained one epoch
    assert not metrics["ensemble"]["kept"]
    assert "time budget ended before trial" in metrics["ensemble"]["reason"]
    assert any(note.startswith("ensemble not built") for note in clock.clock.notes)


def test_the_summary_says_where_the_time_went(tmp_path: Path) -> None:
    config = config_file(tmp_path, train={"epochs": 2})
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(config),
            "--out",
            str(out),
            "--set",
            "budget=600",
            "--set",
            "search.n_trials=2",
        ],
    )
    assert result.exit_code == 0, result.output
    spent = json.loads((out / "metrics.json").read_text())["time"]
    assert spent["budget"] == 600 and 0 < spent["elapsed"] < 600
    assert list(spent["phases"]) == [
        "start-up",
        "search",
        "refit",
        "ensemble",
        "test evaluation",
        "report",
    ]
    assert sum(spent["phases"].values()) == pytest.approx(spent["elapsed"], abs=0.1)
    assert "time: " in result.output and "of a 600 s budget: start-up" in result.output


def test_the_clock_starts_with_the_process() -> None:
    """Not after tunelab's imports and the data: a process that slept 1.5 s first counts it."""
    code = (
        "import time; time.sleep(1.5)\n"
        "from tunelab.flows.timeline import process_start\n"
        "print(time.time() - process_start())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 1.4 < float(done.stdout) < 15
    assert process_start() is not None


# --- what a log shows -----------------------------------------------------------------------


def test_a_log_never_goes_silent_for_longer_than_the_heartbeat(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    with log.open("w") as stream:
        lines = PlainLines(Console(file=stream, force_terminal=False), interval=0.2)
        lines("loading data", last=True)
        beat = Heartbeat(lines, lambda: "loading data", every=0.2)
        beat.start()
        time.sleep(1.3)  # nothing else prints meanwhile: data loading, one long epoch
        beat.stop()
    written = log.read_text().splitlines()
    assert written[0] == "loading data"
    assert len(written) >= 4, written
    assert all(line.endswith("] loading data") for line in written[1:])


def test_a_piped_run_says_each_stage_and_each_trial(tmp_path: Path) -> None:
    """Off a terminal `tunelab run` wrote nothing until the first trial ended, and the refit
    ran silently."""
    config = config_file(tmp_path, train={"epochs": 2})
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["run", str(config), "--out", str(out), "--set", "search.n_trials=2"]
    )
    assert result.exit_code == 0, result.output
    said = result.output
    for line in (
        "loading data and opening the study",
        "search: 0 of 2 trials done",
        "trial 0 started (train.lr=",
        "trial 1 started (train.lr=",
        "refit: trial ",
        "ensemble: greedy on out-of-fold predictions",
        "test evaluation: the final predictor on the test rows",
        "report",
    ):
        assert line in said, line
    assert said.index("loading data") < said.index("trial 0 started") < said.index("refit: ")


@pytest.mark.slow
def test_a_worker_says_when_it_joins_and_when_each_trial_starts(tmp_path: Path) -> None:
    cfg = make_config(
        train={"epochs": 2},
        search={"n_trials": 2, "sampler": "random", "space": {"train.lr": LR}},
    )
    run = open_run_dir(cfg, tmp_path / "run")
    setup(cfg, run)  # the study exists, with no trial yet
    done = subprocess.run(
        [sys.executable, "-m", "tunelab.cli", "worker", str(run.path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stderr.splitlines()
    assert lines[0].startswith("worker ") and "joined study test in" in lines[0]
    assert "0 of 2 trials finished" in lines[0]
    assert any(": trial 0 started (train.lr=" in line for line in lines)
    assert any(": trial 1 complete value " in line for line in lines)
