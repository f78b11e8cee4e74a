"""``--jobs auto``: the recipe's model measured once per run directory, and the plan."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import make_config
from tunelab.cli import app
from tunelab.evaluation.prepare import prepare
from tunelab.evaluation.speed import Measured, measure
from tunelab.flows.study import run_study
from tunelab.results.rundir import RunDir
from tunelab.search import jobs
from tunelab.training import cores
from tunelab.training.cores import SMALL_MODEL_PARAMS


def test_a_small_model_is_timed_but_needs_no_thread_measurement() -> None:
    cfg = make_config(train={"epochs": 5, "threads": None})
    measured = measure(cfg, prepare(cfg), cores=2)
    assert measured.trainable < SMALL_MODEL_PARAMS
    assert measured.speeds is None
    assert measured.trial_seconds is not None and 0 < measured.trial_seconds < 60


def test_a_large_model_is_measured_on_one_thread_every_core_and_side_by_side() -> None:
    cfg = make_config(model={"source": "builtin:mlp", "width": 256, "depth": 2})
    measured = measure(cfg, prepare(cfg), cores=2)
    assert measured.trainable > SMALL_MODEL_PARAMS
    assert measured.speeds is not None and measured.speeds.cores == 2
    assert min(measured.speeds.one, measured.speeds.every, measured.speeds.parallel) > 0
    assert measured.model_bytes >= 4 * measured.trainable


def test_a_linear_probe_with_a_scikit_learn_head_is_timed_by_one_fit() -> None:
    cfg = make_config(
        data={"source": "sklearn:breast_cancer"},
        model={"source": "builtin:mlp", "head": "logistic"},
        finetuning={"strategy": "linear_probe"},
    )
    measured = measure(cfg, prepare(cfg), cores=2)
    assert measured.trainable == 0 and measured.trial_seconds is not None


@pytest.fixture
def two_free_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "free_cores", lambda: 2)


def test_the_measurement_is_stored_and_a_resumed_study_does_not_measure_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, two_free_cores: None
) -> None:
    cfg = make_config(train={"epochs": 200, "threads": None})
    run = RunDir(tmp_path)
    calls: list[int] = []

    def slow(*args: Any, **kwargs: Any) -> Measured:
        calls.append(1)
        return Measured(trainable=500, model_bytes=2000, trial_seconds=30.0)

    monkeypatch.setattr(jobs, "measure", slow)
    first = jobs.auto_jobs(cfg, prepare(cfg), run, trials_left=10)
    assert (first.jobs, first.threads) == (2, 1), first.reason
    again = jobs.auto_jobs(cfg, prepare(cfg), run, trials_left=10)
    assert again == first and len(calls) == 1
    stored = json.loads(run.cores.read_text())
    assert stored["plan"]["jobs"] == 2 and len(stored["measurements"]) == 1
    other = jobs.auto_jobs(make_config(train={"batch_size": 8}), prepare(cfg), run, trials_left=10)
    assert len(calls) == 2, "another batch size is another measurement"
    assert other.jobs == 2


def test_short_trials_are_not_worth_starting_workers_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, two_free_cores: None
) -> None:
    monkeypatch.setattr(
        jobs, "measure", lambda *a, **k: Measured(trainable=500, model_bytes=1, trial_seconds=0.3)
    )
    cfg = make_config()
    plan = jobs.auto_jobs(cfg, prepare(cfg), RunDir(tmp_path), trials_left=5)
    assert plan.jobs == 1 and "too little for starting worker processes" in plan.reason


def test_a_recipe_that_cannot_be_measured_runs_one_trial_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, two_free_cores: None
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Measured:
        raise ValueError("no such layer")

    monkeypatch.setattr(jobs, "measure", broken)
    cfg = make_config()
    plan = jobs.auto_jobs(cfg, prepare(cfg), RunDir(tmp_path), trials_left=5)
    assert plan.jobs == 1 and "ValueError" in plan.reason


def test_run_study_with_jobs_auto_records_its_plan(tmp_path: Path) -> None:
    cfg = make_config(
        train={"epochs": 2, "threads": None},
        search={"n_trials": 3, "sampler": "random", "pruner": "none",
                "space": {"train.lr": {"type": "float", "low": 1e-3, "high": 1e-1}}},
    )  # fmt: skip
    result = run_study(cfg, out=tmp_path / "run", jobs="auto")
    assert result.metrics is not None
    plan = json.loads((tmp_path / "run" / "cores.json").read_text())["plan"]
    assert plan["jobs"] == 1, "three tiny trials do not pay for starting workers"
    assert cores.sharing() == 1


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_jobs_value_is_refused_with_the_fix(tmp_path: Path, value: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("name: x\ndata: {source: sklearn:iris}\nmodel: {source: builtin:mlp}\n")
    result = CliRunner().invoke(app, ["run", str(config), "--jobs", value, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--jobs" in result.output and "auto" in result.output
    assert "Traceback" not in result.output


def test_a_study_without_timed_trials_times_one_before_it_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, two_free_cores: None
) -> None:
    """The trial's own time (early stopping and pruning included) decides whether workers
    pay: the step estimate said 30 s a trial, the trial took a second."""
    import optuna

    monkeypatch.setattr(
        jobs, "measure", lambda *a, **k: Measured(trainable=500, model_bytes=1, trial_seconds=30.0)
    )
    cfg = make_config(search={"n_trials": 8, "space": {}})
    study = optuna.create_study()
    asked: list[int] = []

    def one_trial(one: Any) -> tuple[str, bool]:
        asked.append(one.search.n_trials)
        study.optimize(lambda trial: (time.sleep(0.05), 1.0)[1], n_trials=1)
        return "n_trials", False

    count, _, failed = jobs.jobs_after_a_trial(
        cfg, prepare(cfg), RunDir(tmp_path), study, one_trial
    )
    assert asked == [1] and not failed
    assert count == 1, "7 trials of 0.05 s do not pay for workers"
    # with the trials timed (a resumed study), none runs before the decision
    count, _, _ = jobs.jobs_after_a_trial(cfg, prepare(cfg), RunDir(tmp_path), study, one_trial)
    assert asked == [1] and count == 1
