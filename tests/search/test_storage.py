"""Storages a study can use, without a database server: journal files, URLs and their
passwords, driver hints, and the artifacts folder. PostgreSQL itself: test_postgres.py."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from typer.testing import CliRunner

from tests.conftest import make_config
from tunelab.cli import app
from tunelab.config import RunConfig
from tunelab.errors import ConfigError, FatalError
from tunelab.flows.resume import resumable
from tunelab.flows.study import setup
from tunelab.results.rundir import open_run_dir
from tunelab.results.trial_record import record
from tunelab.search.objective import Objective
from tunelab.search.optimize import optimize
from tunelab.search.study import (
    HEARTBEAT_ATTR,
    HeartbeatJournalStorage,
    make_storage,
    redact,
    storage_url,
)

LR = {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}
SECRET = "s3cret-Pa55"


def small_config(**search: Any) -> RunConfig:
    settings = {"n_trials": 2, "sampler": "random", "pruner": "none", "space": {"train.lr": LR}}
    return make_config(
        model={"source": "builtin:mlp", "width": 8, "depth": 1},
        train={"epochs": 1},
        search={**settings, **search},
    )


def run_trials(cfg: RunConfig, run_dir: Path) -> optuna.Study:
    """What ``tunelab run`` does up to the refit."""
    run_dir = open_run_dir(cfg, run_dir, resume=resumable(cfg))
    prepared, study, store = setup(cfg, run_dir)
    optimize(study, Objective(cfg, prepared, store), cfg)
    return study


# --- passwords ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://tunelab@db:5432/tunelab", "postgresql://tunelab@db:5432/tunelab"),
        ("postgresql://tunelab:pw@db/tunelab", "postgresql://tunelab:***@db/tunelab"),
        ("postgresql://tunelab:p%40ss@db/tunelab", "postgresql://tunelab:***@db/tunelab"),
        ("postgresql://tunelab:${PW}@db/tunelab", "postgresql://tunelab:${PW}@db/tunelab"),
        ("sqlite:////tmp/study.db", "sqlite:////tmp/study.db"),
        ("journal:/tmp/study.log", "journal:/tmp/study.log"),
    ],
)
def test_a_url_is_shown_as_it_is_except_a_literal_password(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_a_password_written_in_the_config_is_refused_without_being_shown() -> None:
    """config.yaml in the run directory and `tunelab check` would show it."""
    with pytest.raises(ConfigError) as caught:
        small_config(storage=f"postgresql://tunelab:{SECRET}@db:5432/tunelab")
    message = str(caught.value)
    assert SECRET not in message
    assert "postgresql://tunelab:***@db:5432/tunelab" in message
    assert "postgresql://tunelab:${TUNELAB_DB_PASSWORD}@db:5432/tunelab" in message
    assert "PGPASSWORD" in message


def test_check_refuses_a_password_on_the_command_line_in_one_line_without_it(
    tmp_path: Path,
) -> None:
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(small_config().model_dump(mode="json")))
    url = f"postgresql://tunelab:{SECRET}@db/tunelab"
    result = CliRunner().invoke(app, ["check", str(config), "--set", f"search.storage={url}"])
    assert result.exit_code == 2
    assert SECRET not in result.output
    assert "Traceback" not in result.output


def test_a_reference_in_the_url_is_read_from_the_environment_when_the_storage_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNELAB_TEST_FOLDER", str(tmp_path))
    cfg = small_config(storage="sqlite:///${TUNELAB_TEST_FOLDER}/study.db")
    study = run_trials(cfg, tmp_path / "run")
    assert (tmp_path / "study.db").is_file()
    assert len(study.trials) == 2
    assert "${TUNELAB_TEST_FOLDER}" in (tmp_path / "run" / "config.yaml").read_text()


def test_an_unset_variable_in_the_url_names_it() -> None:
    cfg = small_config(storage="postgresql://tunelab:${TUNELAB_NOT_SET_ANYWHERE}@db/tunelab")
    with pytest.raises(ConfigError, match=r"TUNELAB_NOT_SET_ANYWHERE .*is not set; export it"):
        make_storage(storage_url(cfg, Path("unused")), cfg.search)


@pytest.mark.parametrize("storage", ["study.db", "journal:", "runs/x/study.log"])
def test_a_storage_that_is_neither_a_url_nor_a_journal_says_what_is(storage: str) -> None:
    with pytest.raises(ConfigError, match=r"is not a storage; write a database URL"):
        small_config(storage=storage)


# --- drivers --------------------------------------------------------------------------


def test_postgresql_without_psycopg_names_the_postgres_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLAlchemy 2's postgresql:// imports psycopg (3); the hint used to say psycopg2."""
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    with pytest.raises(FatalError) as caught:
        make_storage("postgresql://tunelab@127.0.0.1:1/tunelab", small_config().search)
    message = str(caught.value)
    assert "needs the database driver 'psycopg'" in message
    assert "pip install -c constraints.txt -e '.[postgres]'" in message


def test_another_driver_is_named_with_its_install_command() -> None:
    pytest.importorskip("sqlalchemy.dialects.postgresql.pg8000")
    if "pg8000" in sys.modules or _installed("pg8000"):
        pytest.skip("pg8000 is installed here")
    with pytest.raises(FatalError, match=r"needs the database driver 'pg8000'.*pip install pg8000"):
        make_storage("postgresql+pg8000://tunelab@127.0.0.1:1/tunelab", small_config().search)


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# --- artifacts ------------------------------------------------------------------------


def test_trial_artifacts_go_to_the_configured_folder(tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "artifacts"
    study = run_trials(small_config(artifacts=str(shared)), tmp_path / "run")
    for trial in study.trials:
        for artifact in record(trial)["artifacts"].values():
            assert (shared / artifact).is_file()
    local = tmp_path / "run" / "artifacts"
    assert not local.exists() or not any(local.iterdir())


def test_an_s3_url_for_artifacts_says_to_mount_the_bucket() -> None:
    with pytest.raises(ConfigError, match=r"search.artifacts: got 's3://bucket/run'.*mount"):
        small_config(artifacts="s3://bucket/run")


# --- journal file ---------------------------------------------------------------------


def test_journal_keeps_the_study_in_a_journal_file_of_the_run_directory(tmp_path: Path) -> None:
    cfg = small_config(storage="journal")
    study = run_trials(cfg, tmp_path / "run")
    log = tmp_path / "run" / "study.log"
    assert log.is_file()
    reopened = optuna.load_study(
        study_name=cfg.name, storage=JournalStorage(JournalFileBackend(str(log)))
    )
    assert [t.value for t in reopened.trials] == [t.value for t in study.trials]
    assert len(reopened.trials) == 2


def test_a_journal_in_a_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    cfg = small_config(storage=f"journal:{tmp_path / 'missing' / 'study.log'}")
    with pytest.raises(ConfigError, match=r"search.storage: the folder of the journal file"):
        make_storage(storage_url(cfg, tmp_path), cfg.search)


def test_journal_heartbeats_judge_a_trial_by_its_last_beat_or_its_own_start(
    tmp_path: Path,
) -> None:
    """A retried trial inherits its dead original's attributes, the last beat among them:
    its own start must count, or it would be failed before its first beat."""
    cfg = small_config(storage=f"journal:{tmp_path / 'study.log'}", grace_period=2)
    storage = make_storage(storage_url(cfg, tmp_path), cfg.search)
    assert isinstance(storage, HeartbeatJournalStorage)
    study = optuna.create_study(storage=storage, study_name="beats")
    study_id = storage.get_study_id_from_name("beats")
    ids = [
        storage.get_trial_id_from_study_id_trial_number(study_id, study.ask().number)
        for _ in range(3)
    ]
    for inherited in ids[:2]:  # last beats a minute old, as a retry of a dead trial has
        storage.set_trial_system_attr(inherited, HEARTBEAT_ATTR, time.time() - 60)
    storage.record_heartbeat(ids[2])
    assert storage._get_stale_trial_ids(study_id) == [], "just started: not stale"
    time.sleep(2.5)  # past the grace period; only the third trial beats again
    storage.record_heartbeat(ids[2])
    assert storage._get_stale_trial_ids(study_id) == ids[:2]


@pytest.mark.parametrize("storage", [None, "journal"])
def test_a_stale_trial_gets_its_reason_and_its_retry_is_logged(
    tmp_path: Path, storage: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker killed mid-trial left an empty fail_reason, and run.log never said that
    the trial went stale or that it was retried."""
    cfg = small_config(storage=storage, heartbeat_interval=1, grace_period=1, max_retry=1)
    study = optuna.create_study(
        storage=make_storage(storage_url(cfg, tmp_path), cfg.search), study_name="stale"
    )
    dead = study.ask()
    dead.set_user_attr("note", "kept")
    study._storage.record_heartbeat(dead._trial_id)  # type: ignore[attr-defined]
    time.sleep(2.5)  # past the grace period (SQLite: whole seconds), as a killed trial
    with caplog.at_level("WARNING", logger="tunelab"):
        optuna.storages.fail_stale_trials(study)
    failed, retry = study.get_trials()
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs["fail_reason"].startswith("stale: no heartbeat for more than 1 s")
    assert retry.state == TrialState.WAITING and retry.system_attrs["failed_trial"] == 0
    assert "fail_reason" not in retry.user_attrs and retry.user_attrs["note"] == "kept"
    assert "trial 0 failed, stale: no heartbeat" in caplog.text
    assert "retried with the same parameters (retry 1 of 1)" in caplog.text


# --- a killed process on a journal file, as a user would see it -----------------------


@pytest.mark.slow
def test_sigkill_mid_trial_on_a_journal_then_rerun_retries_the_dead_trial(
    tmp_path: Path,
) -> None:
    """Optuna 5.1's journal storage has no heartbeats of its own: without tunelab's, the
    killed trial stayed RUNNING forever and the rerun counted it as running."""
    config = tmp_path / "killed.yaml"
    raw = small_config(
        storage="journal", n_trials=4, heartbeat_interval=1, grace_period=2
    ).model_dump(mode="json")
    raw["train"]["epochs"] = 60
    raw["early_stopping"]["enabled"] = False
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tunelab.cli", "run", str(config), "--out", str(out), "-q"]
    cmd += ["--jobs", "1"]  # one trial at a time: the one killed mid-way
    with (tmp_path / "first.err").open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    try:
        running = wait_mid_trial(proc, out / "study.log", raw["name"])
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(3.5)  # the last beat is now older than the 2 s grace period
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert rerun.returncode == 0, rerun.stderr[-3000:]

    study = journal_study(out / "study.log", raw["name"])
    trials = {t.number: t for t in study.trials}
    assert trials[running].state == TrialState.FAIL
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == running]
    assert len(retries) == 1
    assert retries[0].state == TrialState.COMPLETE
    assert retries[0].params == trials[running].params
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 4
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))


def journal_study(log: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(log))))


def wait_mid_trial(proc: subprocess.Popen[bytes], log: Path, name: str) -> int:
    """The number of the running trial once one trial is complete and the next has
    started beating (with no pruner, epochs are not reported to the study)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"tunelab run exited {proc.returncode} before it could be killed")
        if log.is_file():
            try:
                trials = journal_study(log, name).trials
            except KeyError:  # the study is not created yet
                trials = []
            complete = [t for t in trials if t.state == TrialState.COMPLETE]
            running = [t for t in trials if t.state == TrialState.RUNNING]
            if complete and len(running) == 1 and HEARTBEAT_ATTR in running[0].system_attrs:
                return running[0].number
        time.sleep(0.05)
    pytest.fail("timed out waiting for a trial mid-way")
