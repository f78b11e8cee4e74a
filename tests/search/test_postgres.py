"""Studies on a real PostgreSQL server, as workers on several machines use it.

The server comes from TUNELAB_TEST_POSTGRES_URL (``.ci/run`` starts one); without it these
tests skip with the reason. tunelab is given the URL with its password as a
``${TUNELAB_TEST_DB_PASSWORD}`` reference, the way the README tells users to write it.
Each test uses its own study name, so tests share the database without seeing each other.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import FrozenTrial, TrialState

from tests.conftest import Postgres, make_config
from tunelab.config import RunConfig
from tunelab.errors import FatalError
from tunelab.flows.resume import resumable
from tunelab.flows.study import setup
from tunelab.results.rundir import RunDir, open_run_dir
from tunelab.results.trial_record import record
from tunelab.search.objective import Objective
from tunelab.search.optimize import optimize
from tunelab.search.study import make_storage

TIMEOUT = 240  # seconds for one process; generous for a loaded 2-core machine
LR = {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def small_config(postgres: Postgres, **search: Any) -> RunConfig:
    settings = {"sampler": "random", "pruner": "none", "space": {"train.lr": LR}, **search}
    return make_config(
        name=unique("pg"),
        model={"source": "builtin:mlp", "width": 8, "depth": 1},
        train={"epochs": 1},
        search={"storage": postgres.url, **settings},
    )


def load(postgres: Postgres, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=postgres.direct)


def test_postgresql_url_uses_psycopg_3_and_runs_a_study(postgres: Postgres, tmp_path: Path) -> None:
    cfg = small_config(postgres, n_trials=3)
    run_dir = open_run_dir(cfg, tmp_path / "run", resume=resumable(cfg))
    prepared, study, store = setup(cfg, run_dir)
    assert optimize(study, Objective(cfg, prepared, store), cfg) == ("n_trials", False)

    storage = make_storage(postgres.url, cfg.search)
    assert isinstance(storage, optuna.storages.RDBStorage)
    assert storage.engine.dialect.driver == "psycopg"
    reloaded = load(postgres, cfg.name)
    assert [t.state for t in reloaded.trials] == [TrialState.COMPLETE] * 3
    # what the run shows of its storage: the reference, never the password
    assert reloaded.user_attrs["storage"] == postgres.url


def test_no_password_is_written_to_the_run_directory(postgres: Postgres, tmp_path: Path) -> None:
    cfg = small_config(postgres, n_trials=1)
    run_dir = open_run_dir(cfg, tmp_path / "run", resume=resumable(cfg)).path
    prepared, study, store = setup(cfg, RunDir(run_dir))
    optimize(study, Objective(cfg, prepared, store), cfg)
    assert "${TUNELAB_TEST_DB_PASSWORD}" in (run_dir / "config.yaml").read_text()
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert postgres.password.encode() not in path.read_bytes(), path


def test_a_url_without_password_takes_it_from_pgpassword(
    postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libpq's own variable: the README's way for optuna-dashboard and the optuna CLI too."""
    without = postgres.url.replace(":${TUNELAB_TEST_DB_PASSWORD}@", "@")
    monkeypatch.setenv("PGPASSWORD", postgres.password)
    storage = make_storage(without, small_config(postgres).search)
    name = unique("pgpassword")
    optuna.create_study(storage=storage, study_name=name).optimize(lambda t: 1.0, n_trials=1)
    assert len(load(postgres, name).trials) == 1


def test_a_wrong_password_is_an_error_that_does_not_show_it(
    postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "not-" + postgres.password
    monkeypatch.setenv("TUNELAB_TEST_DB_PASSWORD", wrong)
    with pytest.raises(FatalError) as caught:
        make_storage(postgres.url, small_config(postgres).search)
    message = str(caught.value)
    assert "password" in message
    assert postgres.url in message  # the URL as configured: the reference, not the value
    assert wrong not in message


# --- many machines: one `tunelab run` and two `tunelab worker`s, one of them killed -----

N_TRIALS = 30
EPOCHS = 10  # a fraction of a second a trial; the kill pauses the worker to catch one


def start(
    processes: list[subprocess.Popen[bytes]], command: list[str], cwd: Path
) -> subprocess.Popen[bytes]:
    """``python -m tunelab.cli COMMAND`` in ``cwd``, its output in ``cwd/NAME.out``."""
    with (cwd / f"{command[0]}.out").open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tunelab.cli", *command],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    processes.append(proc)
    return proc


def progress(study: optuna.Study) -> dict[int, tuple[TrialState, int]]:
    """Trial number -> (state, epochs reported)."""
    return {t.number: (t.state, len(t.intermediate_values)) for t in study.get_trials()}


def wait_until(study: optuna.Study, condition: Any, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if condition(progress(study)):
            return
        ended = [p.args for p in procs if p.poll() is not None]
        if ended:
            pytest.fail(f"{ended} ended early; trials {progress(study)}")
        time.sleep(0.1)
    pytest.fail(f"timed out; trials {progress(study)}")


def kill_mid_trial(proc: subprocess.Popen[bytes], study: optuna.Study) -> int:
    """SIGKILL ``proc`` while it runs a trial; returns that trial's number.

    The process is paused first; its trial is the one running trial that does not move
    while the other processes' trials report epochs or finish. Between trials it has none,
    so it is resumed and paused again a moment later.
    """
    for _ in range(50):
        proc.send_signal(signal.SIGSTOP)
        before = progress(study)
        # longer than REPORT_EVERY_S (running trials report an epoch at least once a second
        # with no pruner) and within the grace period (6 s): nobody fails the paused trial yet
        time.sleep(2.5)
        after = progress(study)
        paused = [
            number
            for number, (state, epochs) in before.items()
            if state == TrialState.RUNNING and after[number] == (state, epochs)
        ]
        if len(paused) == 1:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            return paused[0]
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.5)
    pytest.fail(f"never caught the worker mid-trial; trials {progress(study)}")


@pytest.mark.slow
def test_workers_on_other_machines_share_the_study_and_a_killed_ones_trial_is_retried(
    postgres: Postgres, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """The README's how-to: `tunelab run` on one machine, `tunelab worker` on two others,
    each in its own working directory with only the config (storage URL and shared
    artifacts folder). One worker is SIGKILLed mid-trial."""
    name = unique("machines")
    shared = tmp_path / "shared" / "artifacts"
    config = {
        "name": name,
        "data": {"source": "sklearn:iris"},
        "model": {"source": "builtin:mlp", "width": 8, "depth": 1},
        "train": {"epochs": EPOCHS, "batch_size": 32, "threads": 1, "device": "cpu"},
        "early_stopping": {"enabled": False},
        "search": {
            "n_trials": N_TRIALS,
            "sampler": "random",
            "pruner": "none",
            "storage": postgres.url,
            "artifacts": str(shared),
            "heartbeat_interval": 1,
            "grace_period": 6,
            "space": {"train.lr": LR},
        },
    }
    machines = {key: tmp_path / f"machine-{key}" for key in "abc"}
    for folder in machines.values():
        folder.mkdir()
    (machines["a"] / "study.yaml").write_text(yaml.safe_dump(config))
    # one process a machine: the first machine's run trains like any worker
    main = start(processes, ["run", "study.yaml", "--quiet", "--jobs", "1"], machines["a"])
    workers = {}
    for key in "bc":  # what the other machines have: the config, in a run folder of their own
        run = machines[key] / "runs" / name
        run.mkdir(parents=True)
        shutil.copy(machines["a"] / "study.yaml", run / "config.yaml")
        # started with the run, not after it: whoever comes first creates the study
        workers[key] = start(processes, ["worker", f"runs/{name}", "--threads", "1"], machines[key])
    study = load_when_created(postgres, name, main)

    wait_until(study, three_running_after(1), list(processes))
    killed = kill_mid_trial(workers["b"], study)
    assert main.wait(timeout=TIMEOUT) == 0, (machines["a"] / "run.out").read_text()[-3000:]
    assert workers["c"].wait(timeout=TIMEOUT) == 0, (machines["c"] / "worker.out").read_text()

    trials = load(postgres, name).get_trials()
    assert_every_trial_accounted_for(trials, killed)
    # artifacts: all in the shared folder, none in a machine's run directory
    for trial in (t for t in trials if t.state == TrialState.COMPLETE):
        kept = record(trial)["artifacts"]  # predictors outside the top k are removed
        assert (shared / kept["oof"]).is_file() and (shared / kept["history"]).is_file()
    assert (machines["a"] / "runs" / name / "metrics.json").is_file()
    for folder in machines.values():
        local = [p for p in folder.rglob("artifacts/*")]
        assert local == [], f"artifacts outside the shared folder: {local[:3]}"
        for path in folder.rglob("*"):  # config.yaml, run.log, outputs: no password anywhere
            if path.is_file():
                assert postgres.password.encode() not in path.read_bytes(), path


def load_when_created(postgres: Postgres, name: str, proc: subprocess.Popen[bytes]) -> optuna.Study:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            return load(postgres, name)
        except KeyError:
            time.sleep(0.2)
    pytest.fail(f"tunelab run exited {proc.poll()} or never created study {name}")


def three_running_after(complete: int) -> Any:
    def condition(current: dict[int, tuple[TrialState, int]]) -> bool:
        states = [state for state, _ in current.values()]
        return states.count(TrialState.COMPLETE) >= complete and (
            states.count(TrialState.RUNNING) == 3
        )

    return condition


def assert_every_trial_accounted_for(trials: list[FrozenTrial], killed: int) -> None:
    numbers = sorted(t.number for t in trials)
    assert numbers == list(range(len(trials))), "trial numbers are unique and contiguous"
    by_state = {state: [t for t in trials if t.state == state] for state in TrialState}
    assert not by_state[TrialState.RUNNING] and not by_state[TrialState.WAITING]
    assert [t.number for t in by_state[TrialState.FAIL]] == [killed], "only the killed trial"
    # a worker checks the count before it starts a trial, so two may start the last one
    assert N_TRIALS <= len(by_state[TrialState.COMPLETE]) <= N_TRIALS + 2
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1, "the killed trial is retried once"
    assert retries[0].state == TrialState.COMPLETE
    assert retries[0].system_attrs["retry_history"] == [killed]
    assert retries[0].params == trials[killed].params
    learning_rates = [t.params["train.lr"] for t in trials if t.number != retries[0].number]
    assert len(set(learning_rates)) == len(learning_rates), "no parameters trained twice"
