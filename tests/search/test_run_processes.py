"""``tunelab run`` as real processes: killed, interrupted, resumed, and with worker processes.

Each test starts ``python -m tunelab.cli run`` and watches the study's SQLite file; trials
are small iris MLPs on one CPU thread, slow enough (``EPOCHS`` epochs, about a third of a
second a trial) to be caught while running: a trial's heartbeat, written when it starts,
says it runs (with no pruner its epochs are reported at most once a second).
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import psutil
import pytest
import yaml
from optuna.trial import TrialState

pytestmark = pytest.mark.slow

TIMEOUT = 240  # seconds for one command; generous for a loaded 2-core machine
LR = {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}
EPOCHS = 60  # per trial in the kill and interrupt tests: long enough to stop one mid-way


def write_config(folder: Path, name: str, *, epochs: int, **search: Any) -> Path:
    raw = {
        "name": name,
        "data": {"source": "sklearn:iris"},
        "model": {"source": "builtin:mlp", "width": 8, "depth": 1},
        "train": {"epochs": epochs, "batch_size": 32, "threads": 1, "device": "cpu"},
        "early_stopping": {"enabled": False},
        "search": {"sampler": "random", "pruner": "none", "space": {"train.lr": LR}, **search},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def command(config: Path, out: Path, *extra: str) -> list[str]:
    """``tunelab run`` of ``config``; one trial at a time unless ``extra`` says ``--jobs``
    (these tests watch single trials)."""
    jobs = [] if "--jobs" in extra else ["--jobs", "1"]
    return [
        sys.executable,
        "-m",
        "tunelab.cli",
        "run",
        str(config),
        "--out",
        str(out),
        "--quiet",
        *jobs,
        *extra,
    ]


def trial_states(db: Path) -> dict[int, tuple[str, int]]:
    """Trial number -> (state, heartbeats recorded: 1 once it runs), read straight from the
    SQLite file (empty while the study is being created)."""
    if not db.exists():
        return {}
    query = (
        "SELECT number, state, (SELECT COUNT(*) FROM trial_heartbeats AS h "
        "WHERE h.trial_id = t.trial_id) FROM trials AS t"
    )
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as con:
            return {n: (state, epochs) for n, state, epochs in con.execute(query).fetchall()}
    except sqlite3.Error:  # not created yet, or being created
        return {}


def wait_for(
    proc: subprocess.Popen[bytes],
    db: Path,
    condition: Callable[[dict[int, tuple[str, int]]], bool],
    log: Path,
) -> dict[int, tuple[str, int]]:
    """Poll the study until ``condition`` holds; fail if the process ends first."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        current = trial_states(db)
        if condition(current):
            return current
        if proc.poll() is not None:
            pytest.fail(
                f"tunelab run exited {proc.returncode} before the moment to stop it; "
                f"trials {current}; stderr:\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.05)
    pytest.fail(f"timed out waiting; trials {trial_states(db)}")


def mid_trial(complete: int) -> Callable[[dict[int, tuple[str, int]]], bool]:
    """At least ``complete`` trials complete and one running (its heartbeat written)."""

    def condition(current: dict[int, tuple[str, int]]) -> bool:
        states = [state for state, _ in current.values()]
        running = [beats for state, beats in current.values() if state == "RUNNING"]
        return states.count("COMPLETE") >= complete and len(running) == 1 and running[0] >= 1

    return condition


def kill_mid_trial(proc: subprocess.Popen[bytes], db: Path, log: Path, *, complete: int) -> None:
    """SIGKILL ``proc`` once ``complete`` trials are complete and the next one runs."""
    wait_for(proc, db, mid_trial(complete), log)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Callable[[list[str]], subprocess.Popen[bytes]]]:
    """Starts commands with stdout/stderr in files; kills what is still running at the end."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(cmd: list[str]) -> subprocess.Popen[bytes]:
        with (tmp_path / "first.out").open("wb") as out, (tmp_path / "first.err").open("wb") as err:
            # Ctrl-C as in a terminal: a job started in the background (`cmd &`, as a CI
            # runner may start the suite) inherits SIGINT ignored, and so would the run
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, preexec_fn=_default_sigint)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def load(db: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}")


def snapshot(study: optuna.Study) -> dict[int, tuple[Any, ...]]:
    return {t.number: (t.state, t.value, t.params) for t in study.get_trials()}


def test_sigkill_mid_trial_then_rerun_retries_the_dead_trial_and_keeps_the_rest(
    tmp_path: Path, started: Callable[[list[str]], subprocess.Popen[bytes]]
) -> None:
    n_trials = 5
    config = write_config(
        tmp_path, "killed", epochs=EPOCHS, n_trials=n_trials, heartbeat_interval=1, grace_period=2
    )
    out = tmp_path / "run"
    db = out / "study.db"
    cmd = command(config, out)
    kill_mid_trial(started(cmd), db, tmp_path / "first.err", complete=2)
    rerun_after_kill(cmd, out, "killed", n_trials=n_trials, killed=range(1, 2), complete=2)


def rerun_after_kill(
    cmd: list[str], out: Path, name: str, *, n_trials: int, killed: range, complete: int
) -> None:
    """Rerun a killed study once its trials went stale: the finished trials are kept, each
    killed one (as many as ``killed`` allows were left running) is failed and run again
    once with its parameters, the study ends with ``n_trials`` and its refit."""
    db = out / "study.db"
    before = snapshot(load(db, name))
    running = sorted(n for n, (state, _, _) in before.items() if state == TrialState.RUNNING)
    assert len(running) in killed, before
    complete_before = {n: v for n, v in before.items() if v[0] == TrialState.COMPLETE}
    assert len(complete_before) >= complete

    time.sleep(3.5)  # the last heartbeats are now older than the 2 s grace period
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert rerun.returncode == 0, rerun.stderr[-3000:]

    study = load(db, name)
    after = snapshot(study)
    for number, was in complete_before.items():
        assert after[number] == was, f"trial {number} changed on resume"
    log_text = (out / "run.log").read_text()
    for number in running:
        assert after[number][0] == TrialState.FAIL
        reason = study.trials[number].user_attrs.get("fail_reason", "")
        assert reason.startswith("stale: no heartbeat for more than 2 s"), reason
        assert f"trial {number} failed, stale: no heartbeat" in log_text
        retries = [t for t in study.get_trials() if t.system_attrs.get("failed_trial") == number]
        assert len(retries) == 1, f"the killed trial {number} is retried once"
        assert retries[0].system_attrs["retry_history"] == [number]
        assert retries[0].state == TrialState.COMPLETE
        assert retries[0].params == before[number][2]
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == n_trials
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert (out / "metrics.json").is_file()


def workers_of(out: Path) -> list[psutil.Process]:
    """The ``tunelab worker`` processes still running on the run directory ``out``."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        line = process.info["cmdline"] or []
        if "worker" in line and str(out) in line:
            found.append(process)
    return found


def test_sigkill_with_parallel_trials_then_rerun_finishes_every_trial(
    tmp_path: Path, started: Callable[[list[str]], subprocess.Popen[bytes]]
) -> None:
    """``--jobs 2`` killed while both workers train: the workers stop with it, and the
    rerun keeps the finished trials and runs each killed one again, once."""
    n_trials = 6
    config = write_config(
        tmp_path, "parallel", epochs=4 * EPOCHS, n_trials=n_trials, heartbeat_interval=1,
        grace_period=2,
    )  # fmt: skip
    out = tmp_path / "run"
    db = out / "study.db"
    cmd = command(config, out, "--jobs", "2")

    def both_running(current: dict[int, tuple[str, int]]) -> bool:
        running = [beats for state, beats in current.values() if state == "RUNNING"]
        complete = [state for state, _ in current.values() if state == "COMPLETE"]
        return len(complete) >= 1 and len(running) == 2 and min(running) >= 1

    proc = started(cmd)
    wait_for(proc, db, both_running, tmp_path / "first.err")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while workers_of(out) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not workers_of(out), "the workers end with the run that started them"
    # a worker notices within a second that its run is gone: one may finish its trial first
    rerun_after_kill(cmd, out, "parallel", n_trials=n_trials, killed=range(1, 3), complete=1)


def test_a_rerun_waits_for_a_killed_trial_to_go_stale_and_runs_it_again(
    tmp_path: Path, started: Callable[[list[str]], subprocess.Popen[bytes]]
) -> None:
    """A killed trial counts as running until its heartbeat is older than the grace
    period. A rerun started at once used to see n_trials started, refit without it and
    leave it RUNNING for good; now it waits, marks it failed and runs it again."""
    config = write_config(
        tmp_path, "waits", epochs=EPOCHS, n_trials=2, heartbeat_interval=1, grace_period=8
    )  # the rerun starts well within the grace period
    out = tmp_path / "run"
    db = out / "study.db"
    cmd = command(config, out)
    kill_mid_trial(started(cmd), db, tmp_path / "first.err", complete=1)
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    study = load(db, "waits")
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    assert len(study.get_trials(states=(TrialState.FAIL,))) == 1, "the killed one"
    assert (out / "metrics.json").is_file()


def test_sigint_stops_promptly_with_a_resume_hint_and_rerun_completes(
    tmp_path: Path, started: Callable[[list[str]], subprocess.Popen[bytes]]
) -> None:
    n_trials = 3
    config = write_config(tmp_path, "interrupted", epochs=EPOCHS, n_trials=n_trials)
    out = tmp_path / "run"
    db = out / "study.db"
    cmd = command(config, out)
    proc = started(cmd)
    wait_for(proc, db, mid_trial(1), tmp_path / "first.err")
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=60)
    waited = time.monotonic() - sent
    stderr = " ".join((tmp_path / "first.err").read_text().split())
    assert code == 130, stderr[-3000:]
    assert waited < 10, f"took {waited:.1f} s to stop"
    assert "run the same command to resume" in stderr
    assert "Traceback" not in stderr, "one line on Ctrl-C; tracebacks belong in run.log"
    before = {
        n: v for n, v in snapshot(load(db, "interrupted")).items() if v[0] == TrialState.COMPLETE
    }
    assert len(before) >= 1
    assert not (out / "metrics.json").exists(), "no refit after an interrupt"
    board = pd.read_csv(out / "leaderboard.csv")  # the run can be read while interrupted
    assert set(board.loc[board["state"] == "complete", "trial"]) == set(before)

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    study = load(db, "interrupted")
    after = snapshot(study)
    for number, was in before.items():
        assert after[number] == was
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == n_trials
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert (out / "metrics.json").is_file()


@dataclass
class ParallelRun:
    returncode: int
    stderr: str
    log: str
    study: optuna.Study


@pytest.fixture(scope="module")
def parallel_run(tmp_path_factory: pytest.TempPathFactory) -> ParallelRun:
    """One ``tunelab run --jobs 2`` over 40 one-epoch trials, shared by the tests below."""
    folder = tmp_path_factory.mktemp("jobs")
    config = write_config(folder, "jobs", epochs=1, n_trials=40, keep_top_k=1)
    out = folder / "run"
    done = subprocess.run(
        command(config, out, "--jobs", "2"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    log = (out / "run.log").read_text() if (out / "run.log").exists() else ""
    return ParallelRun(done.returncode, done.stderr, log, load(out / "study.db", "jobs"))


def test_two_workers_finish_forty_trials_without_lock_errors(parallel_run: ParallelRun) -> None:
    assert parallel_run.returncode == 0, parallel_run.stderr[-3000:]
    trials = parallel_run.study.get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert 40 <= len(finished) <= 41
    numbers = sorted(t.number for t in trials)
    assert numbers == list(range(len(trials))), "trial numbers are unique and contiguous"
    assert not [t for t in trials if t.state == TrialState.FAIL]
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    for text in (parallel_run.stderr, parallel_run.log):
        assert "database is locked" not in text


def test_two_workers_both_exit_cleanly(parallel_run: ParallelRun) -> None:
    """Both workers prune old checkpoints of the same study; neither may crash doing it."""
    assert "worker exit codes" not in parallel_run.log, parallel_run.log[-3000:]
    assert "Traceback" not in parallel_run.stderr, parallel_run.stderr[-3000:]


def test_two_workers_never_evaluate_the_same_params(parallel_run: ParallelRun) -> None:
    params = [t.params["train.lr"] for t in parallel_run.study.get_trials()]
    duplicated = sorted({p for p in params if params.count(p) > 1})
    assert duplicated == [], f"{len(duplicated)} learning rates were trained twice"
