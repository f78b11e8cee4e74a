"""One run directory, one writer: two ``tunelab run`` on one directory share the search, and
exactly one of them refits and writes ``final/``; ``--overwrite`` cannot delete a live study.

The trials' model waits for a gate file, so the first run is still searching when the
second starts, whatever the machine's speed.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tests.conftest import Postgres

pytestmark = pytest.mark.slow

TIMEOUT = 240  # seconds for one command; generous for a loaded 2-core machine
GATED_MODEL = """
import time
from pathlib import Path

from torch import nn


def build(gate, num_outputs, input_shape):
    while not Path(gate).exists():  # the test opens the gate once both runs are in
        time.sleep(0.05)
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], num_outputs))
"""


def write_config(folder: Path, storage: str | None, n_trials: int, *, name: str = "shared") -> Path:
    (folder / "gated.py").write_text(GATED_MODEL)
    raw = {
        "name": name,
        "data": {"source": "sklearn:iris"},
        "model": {"source": "py:gated:build", "options": {"gate": str(folder / "gate")}},
        "train": {"epochs": 2, "batch_size": 32, "threads": 1, "device": "cpu"},
        "early_stopping": {"enabled": False},
        "ensemble": {"method": "none"},
        "search": {
            "n_trials": n_trials,
            "sampler": "random",
            "pruner": "none",
            "storage": storage,
            "space": {"train.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        },
    }
    path = folder / "shared.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def tunelab(*args: str) -> list[str]:
    return [sys.executable, "-m", "tunelab.cli", *args]


def start(folder: Path, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
    with (folder / f"{name}.err").open("wb") as err:
        return subprocess.Popen(cmd, cwd=folder, stdout=subprocess.DEVNULL, stderr=err)


def wait_until(condition: object, proc: subprocess.Popen[bytes], what: str, err: Path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        if proc.poll() is not None:
            pytest.fail(f"exited {proc.returncode} before {what}:\n{err.read_text()[-3000:]}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def first_run_searching(
    folder: Path, processes: list[subprocess.Popen[bytes]], storage: str | None, study_file: str
) -> tuple[subprocess.Popen[bytes], list[str], Path]:
    """Start a ``tunelab run``; return once its first trial waits at the gate."""
    config = write_config(folder, storage, n_trials=4)
    run = folder / "run"
    command = tunelab("run", str(config), "--out", str(run), "--quiet")
    first = start(folder, "first", command)
    processes.append(first)
    wait_until(
        lambda: running(run, study_file) == 1, first, "the first trial", folder / "first.err"
    )
    return first, command, run


@pytest.mark.parametrize(("storage", "study_file"), [(None, "study.db"), ("journal", "study.log")])
def test_two_runs_on_one_directory_make_one_refit_and_one_final(
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
    storage: str | None,
    study_file: str,
) -> None:
    first, command, run = first_run_searching(tmp_path, processes, storage, study_file)
    second = start(tmp_path, "second", command)
    processes.append(second)
    wait_until(
        lambda: running(run, study_file) == 2,
        second,
        "the second run's trial",
        tmp_path / "second.err",
    )
    (tmp_path / "gate").touch()
    assert first.wait(timeout=TIMEOUT) == 0, text(tmp_path / "first.err")[-3000:]
    assert second.wait(timeout=TIMEOUT) == 0, text(tmp_path / "second.err")[-3000:]

    log = text(run / "run.log")
    refits = [line for line in log.splitlines() if " ensemble: " in line]
    assert len(refits) == 1, f"one process refits and writes final/:\n{log[-3000:]}"
    assert f" {first.pid} " in refits[0], "the first run (the lock's holder) finishes"
    assert (run / "final" / "predictor.json").is_file() and (run / "metrics.json").is_file()
    joined = " ".join(text(tmp_path / "second.err").split())
    assert "joined the study" in joined and f"PID {first.pid}" in joined
    trials = load(run, study_file).get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) >= 4
    ran = [line for line in log.splitlines() if "finished with value" in line]
    assert any(f" {second.pid} " in line for line in ran), "the second ran trials too"


def test_overwrite_is_refused_while_another_run_holds_the_directory(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    first, command, run = first_run_searching(tmp_path, processes, None, "study.db")
    before = sorted(p.name for p in run.iterdir())
    overwrite = subprocess.run(
        [*command, "--overwrite"], cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT
    )
    refusal = " ".join(overwrite.stderr.split())
    assert overwrite.returncode == 2, refusal
    assert f"PID {first.pid}" in refusal and "--overwrite" in refusal
    assert "Traceback" not in refusal
    assert sorted(p.name for p in run.iterdir()) == before, "nothing deleted"
    (tmp_path / "gate").touch()
    assert first.wait(timeout=TIMEOUT) == 0, text(tmp_path / "first.err")[-3000:]
    assert (run / "final" / "predictor.json").is_file()


def load(run: Path, study_file: str) -> optuna.Study:
    path = str(run / study_file)
    if study_file.endswith(".db"):
        return optuna.load_study(study_name="shared", storage=f"sqlite:///{path}")
    backend = optuna.storages.journal.JournalFileBackend(path)
    return optuna.load_study(study_name="shared", storage=optuna.storages.JournalStorage(backend))


def running(run: Path, study_file: str) -> int:
    """Trials running now, read without writing to the storage (0 while it is created)."""
    path = run / study_file
    try:
        if study_file.endswith(".db"):
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as con:
                query = "SELECT COUNT(*) FROM trials WHERE state = 'RUNNING'"
                return int(con.execute(query).fetchone()[0])
        study = load(run, study_file)
    except (sqlite3.Error, KeyError, ValueError, OSError):
        return 0
    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def test_two_runs_on_one_postgresql_study_make_one_refit(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]], postgres: Postgres
) -> None:
    """Runs on two machines: each its own run directory, one study on the server, one
    artifact folder. The study's advisory lock makes exactly one of them finish it."""
    name = f"lock-{uuid.uuid4().hex[:8]}"
    config = write_config(tmp_path, postgres.url, n_trials=4, name=name)
    raw = yaml.safe_load(config.read_text())
    raw["search"]["artifacts"] = str(tmp_path / "shared-artifacts")
    config.write_text(yaml.safe_dump(raw))
    runs = [tmp_path / "machine-a", tmp_path / "machine-b"]
    started = []
    for number, run in enumerate(runs):
        proc = start(tmp_path, run.name, tunelab("run", str(config), "--out", str(run), "-q"))
        processes.append(proc)
        started.append(proc)
        wait_until(
            lambda n=number: running_on(postgres, name) == n + 1,
            proc,
            f"trial {number} runs",
            tmp_path / f"{run.name}.err",
        )
    (tmp_path / "gate").touch()
    for proc, run in zip(started, runs, strict=True):
        assert proc.wait(timeout=TIMEOUT) == 0, text(tmp_path / f"{run.name}.err")[-3000:]
    finals = [run for run in runs if (run / "final" / "predictor.json").is_file()]
    assert finals == [runs[0]], "the first run holds the study's lock and finishes it"
    assert " ensemble: " not in text(runs[1] / "run.log")
    joined = " ".join(text(tmp_path / f"{runs[1].name}.err").split())
    assert "joined the study" in joined and f"PID {started[0].pid}" in joined
    study = optuna.load_study(study_name=name, storage=postgres.direct)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    optuna.delete_study(study_name=name, storage=postgres.direct)


def running_on(postgres: Postgres, name: str) -> int:
    try:
        study = optuna.load_study(study_name=name, storage=postgres.direct)
    except KeyError:  # not created yet
        return 0
    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
