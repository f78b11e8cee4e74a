"""Experiment trackers against the real thing: a local MLflow file store and TensorBoard
event files, read back with MLflow's client and TensorBoard's EventAccumulator."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest

from tests.observers import OnTrialEnded
from tunelab.errors import FatalError
from tunelab.flows.study import run_study
from tunelab.flows.train import train

pytest.importorskip("mlflow", reason="pip install 'tunelab[mlflow]'")
pytest.importorskip("tensorboard", reason="pip install 'tunelab[tensorboard]'")

from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)

SPACE = {"train.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}}


@pytest.fixture
def file_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    # MLflow 3 opens a file: store only when asked to (it prefers a database)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return f"file:{tmp_path / 'mlruns'}"


def study_config(config_factory: Any, tmp_path: Path, store: str, n_trials: int) -> Any:
    return config_factory(
        train={"epochs": 3},
        search={"n_trials": n_trials, "pruner": "none", "space": SPACE},
        tracking={"mlflow": store, "tensorboard": str(tmp_path / "tb")},
    )


def mlflow_runs(store: str) -> dict[str, list[Any]]:
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("test")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    by_role: dict[str, list[Any]] = {}
    for run in runs:
        by_role.setdefault(run.data.tags.get("tunelab_role", ""), []).append(run)
    return by_role


def scalars(folder: Path, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def only_folder(root: Path) -> Path:
    folders = list(root.iterdir())
    assert len(folders) == 1, folders
    return folders[0]


def test_a_study_sends_each_trial_and_the_final_scores(
    tmp_path: Path, config_factory: Any, file_store: str
) -> None:
    result = run_study(study_config(config_factory, tmp_path, file_store, 3), out=tmp_path / "run")
    assert result.metrics is not None
    test_accuracy = result.metrics["test"]["accuracy"]
    runs = mlflow_runs(file_store)
    (parent,) = runs["study"]
    trials = {int(r.data.tags["tunelab_trial"]): r for r in runs["trial"]}
    assert sorted(trials) == [0, 1, 2]
    client = MlflowClient(tracking_uri=file_store)
    for number, run in trials.items():
        trial = result.study.trials[number]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.params == {"train.lr": str(trial.params["train.lr"])}
        assert run.data.metrics["value"] == pytest.approx(trial.value)
        history = client.get_metric_history(run.info.run_id, "train_loss")
        assert [p.step for p in history] == [0, 1, 2]
        assert len(client.get_metric_history(run.info.run_id, "accuracy")) == 3
    assert parent.data.metrics["test_accuracy"] == pytest.approx(test_accuracy)
    assert parent.data.params["train.epochs"] == "3"
    assert parent.data.tags["best_trial"] == str(result.study.best_trial.number)

    folder = only_folder(tmp_path / "tb")
    assert folder.name.startswith("test-")
    assert sorted(p.name for p in folder.iterdir()) == [
        "final",
        "trial_0000",
        "trial_0001",
        "trial_0002",
    ]
    assert [step for step, _ in scalars(folder / "trial_0001", "val_loss")] == [0, 1, 2]
    assert scalars(folder / "final", "test_accuracy")[0][1] == pytest.approx(test_accuracy)


def test_a_resumed_study_sends_only_the_new_trials(
    tmp_path: Path, config_factory: Any, file_store: str
) -> None:
    run_study(study_config(config_factory, tmp_path, file_store, 2), out=tmp_path / "run")
    run_study(study_config(config_factory, tmp_path, file_store, 3), out=tmp_path / "run")
    runs = mlflow_runs(file_store)
    assert len(runs["study"]) == 1
    assert sorted(int(r.data.tags["tunelab_trial"]) for r in runs["trial"]) == [0, 1, 2]
    folder = only_folder(tmp_path / "tb")
    assert sorted(p.name for p in folder.glob("trial_*")) == [
        "trial_0000",
        "trial_0001",
        "trial_0002",
    ]


def test_a_tracker_that_fails_never_fails_a_trial(
    tmp_path: Path, config_factory: Any, file_store: str
) -> None:
    tb = tmp_path / "tb"

    def break_tensorboard(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.number == 0:  # the study's TensorBoard folder becomes a file
            folder = tb / f"test-{study.user_attrs['tracking_key']}"
            shutil.rmtree(folder)
            folder.write_text("not a folder")

    cfg = study_config(config_factory, tmp_path, file_store, 4)
    result = run_study(cfg, out=tmp_path / "run", observer=OnTrialEnded(break_tensorboard))
    assert result.metrics is not None
    states = {t.state for t in result.study.trials}
    assert states == {optuna.trial.TrialState.COMPLETE}
    log = (tmp_path / "run" / "run.log").read_text()
    assert "tracking: tensorboard could not record trial 0" in log
    assert "switched off for the rest of this run" in log
    assert len(mlflow_runs(file_store)["trial"]) == 4  # the other tracker went on


def test_train_sends_its_curves_and_scores_to_a_folder_relative_to_the_working_directory(
    tmp_path: Path, config_factory: Any, file_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = config_factory(tracking={"tensorboard": "tb", "mlflow": file_store})
    summary = train(cfg, out=tmp_path / "run")
    final = only_folder(tmp_path / "tb") / "final"
    assert [step for step, _ in scalars(final, "train_loss")] == [0, 1, 2]
    test_accuracy = summary.metrics["test"]["accuracy"]
    assert scalars(final, "test_accuracy")[0][1] == pytest.approx(test_accuracy)
    (run,) = mlflow_runs(file_store)["train"]
    assert run.data.metrics["test_accuracy"] == pytest.approx(test_accuracy)
    assert run.data.params["model.source"] == "builtin:mlp"
    assert run.data.tags["tunelab_run_dir"] == str((tmp_path / "run").resolve())


def test_a_missing_tracker_package_stops_the_run_before_training(
    tmp_path: Path, config_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    cfg = config_factory(tracking={"mlflow": "sqlite:///mlflow.db"})
    with pytest.raises(FatalError, match=r"tracking.mlflow needs the package .mlflow-skinny"):
        train(cfg, out=tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_store_that_cannot_be_opened_stops_the_run_with_the_uri(
    tmp_path: Path, config_factory: Any
) -> None:
    cfg = config_factory(tracking={"mlflow": "nosuchscheme://somewhere"})
    with pytest.raises(FatalError, match=r"tracking.mlflow: cannot use 'nosuchscheme://somewhere'"):
        train(cfg, out=tmp_path / "run")
    assert not (tmp_path / "run" / "history.json").exists()


def test_tracking_can_be_added_to_a_study_when_it_resumes(
    tmp_path: Path, config_factory: Any, file_store: str
) -> None:
    plain = config_factory(
        train={"epochs": 2}, search={"n_trials": 1, "pruner": "none", "space": SPACE}
    )
    run_study(plain, out=tmp_path / "run")
    tracked = study_config(config_factory, tmp_path, file_store, 2)
    tracked = tracked.model_copy(update={"train": plain.train})
    result = run_study(tracked, out=tmp_path / "run")
    assert len(result.study.trials) == 2
    assert len(mlflow_runs(file_store)["trial"]) == 2  # the first trial too
    recorded = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert recorded["test"]["accuracy"] == pytest.approx(result.metrics["test"]["accuracy"])  # type: ignore[index]


def test_a_reference_in_the_tracking_uri_is_read_from_the_environment(
    tmp_path: Path, config_factory: Any, file_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The URI in config.yaml keeps ${NAME}; MLflow gets the value (issue 27's secrets)."""
    monkeypatch.setenv("TUNELAB_TEST_MLRUNS", file_store.removeprefix("file:"))
    cfg = config_factory(tracking={"mlflow": "file:${TUNELAB_TEST_MLRUNS}"})
    train(cfg, out=tmp_path / "run")
    assert len(mlflow_runs(file_store)["train"]) == 1
    assert "${TUNELAB_TEST_MLRUNS}" in (tmp_path / "run" / "config.yaml").read_text()


def test_a_server_that_refuses_shows_the_reference_never_the_password(
    tmp_path: Path, config_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNELAB_TEST_MLFLOW_PW", "Zq9-mlflow-secret")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    uri = "http://bob:${TUNELAB_TEST_MLFLOW_PW}@127.0.0.1:9"  # nothing listens on port 9
    cfg = config_factory(tracking={"mlflow": uri})
    with pytest.raises(FatalError) as caught:
        train(cfg, out=tmp_path / "run")
    assert uri in str(caught.value)
    assert "Zq9-mlflow-secret" not in str(caught.value)
