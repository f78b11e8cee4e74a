"""A run owns only its directory: it never writes into, or deletes, what tunelab did not make."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import make_config
from tunelab.cli import app
from tunelab.errors import ConfigError, FatalError
from tunelab.results import runlock
from tunelab.results.rundir import MARKER, RunDir, RunDirBusy, open_run_dir, release_run_dir

QUICK = ["--set", "train.epochs=1", "--set", "train.threads=1", "--quiet"]


def write_config(tmp_path: Path, name: str = "safe") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\ndata: {{source: sklearn:iris}}\n"
        "model: {source: builtin:mlp, width: 8, depth: 1}\n"
    )
    return path


def test_overwrite_refuses_a_folder_tunelab_did_not_make(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "thesis.txt").write_text("four years of work")
    config = write_config(tmp_path)
    result = CliRunner().invoke(
        app, ["train", str(config), "--out", str(folder), "--overwrite", *QUICK]
    )
    assert result.exit_code == 2
    assert "did not make" in result.output and MARKER in result.output
    assert "--overwrite" not in result.output.split("did not make")[1], "never suggest it"
    assert "Traceback" not in result.output
    assert (folder / "thesis.txt").read_text() == "four years of work"
    assert sorted(p.name for p in folder.iterdir()) == ["thesis.txt"], "nothing written"


def test_overwrite_removes_only_tunelabs_own_files(tmp_path: Path) -> None:
    cfg = make_config(train={"epochs": 1})
    run = open_run_dir(cfg, tmp_path / "run")
    run.metrics.write_text("{}")
    run.final.mkdir()
    (run.final / "model.safetensors").write_bytes(b"x")
    notes = run.path / "my_notes.md"
    notes.write_text("keep me")
    again = open_run_dir(cfg, tmp_path / "run", overwrite=True)
    assert notes.read_text() == "keep me"
    assert not again.metrics.exists() and not again.final.exists()
    assert again.marker.is_file() and again.config.is_file()


def test_a_run_directory_is_not_replaced_without_overwrite(tmp_path: Path) -> None:
    cfg = make_config()
    open_run_dir(cfg, tmp_path / "run")
    with pytest.raises(FatalError, match=r"already holds a run.*--overwrite"):
        open_run_dir(cfg, tmp_path / "run")


def test_an_empty_existing_folder_is_used(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    run = open_run_dir(make_config(), tmp_path / "empty")
    assert run.marker.is_file()


@pytest.mark.parametrize("name", [".", "..", "a/b", "../up", ".hidden", "-x", ""])
def test_a_run_name_is_one_plain_folder_name(name: str) -> None:
    with pytest.raises(ConfigError, match="one plain folder name"):
        make_config(name=name)


def test_a_name_longer_than_the_file_system_allows_is_refused_by_check(tmp_path: Path) -> None:
    """A 300-character name passed tunelab check; training then failed on the folder."""
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("name: safe", "name: " + "n" * 300))
    result = CliRunner().invoke(app, ["check", str(config)])
    assert result.exit_code == 2, result.output
    assert "300 characters" in result.output and "at most 239" in result.output
    longest = "n" * 239  # with NAME-lr-find and the trackers' NAME-DATE-TIME still a name
    assert make_config(name=longest).name == longest
    with pytest.raises(ConfigError, match="choose a shorter name"):
        make_config(name=longest + "n")


def test_name_dot_dot_cannot_reach_the_project_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "runs").mkdir(parents=True)
    (project / "config.yaml").write_text("my project's own config\n")
    monkeypatch.chdir(project)
    config = write_config(project, name="..")
    result = CliRunner().invoke(app, ["train", str(config), "--overwrite", *QUICK])
    assert result.exit_code == 2
    assert "one plain folder name" in result.output
    assert (project / "config.yaml").read_text() == "my project's own config\n"


def test_every_file_name_lives_in_run_dir() -> None:
    run = RunDir(Path("r"))
    names = {p.name for p in run.own_files()}
    assert {"config.yaml", "study.db", "artifacts", "final", "metrics.json", MARKER} <= names


HOLD_LOCK = """
import sys, time
from pathlib import Path
from tunelab.results import runlock
assert runlock.acquire(Path(sys.argv[1])) is None
print("held", flush=True)
time.sleep(120)
"""


def test_a_run_directory_another_process_writes_is_refused_with_its_pid(tmp_path: Path) -> None:
    cfg = make_config()
    run = open_run_dir(cfg, tmp_path / "run")
    run.metrics.write_text("{}")
    release_run_dir(run)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run.lock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        for overwrite in (True, False):
            with pytest.raises(RunDirBusy, match=rf"PID {holder.pid} on .*kill {holder.pid}"):
                open_run_dir(cfg, run.path, overwrite=overwrite)
        assert run.metrics.is_file() and run.config.is_file(), "nothing deleted"
    finally:
        holder.kill()
        holder.wait()
    # the system dropped the lock with the killed process: never a stale lock
    again = open_run_dir(cfg, run.path, overwrite=True)
    assert not again.metrics.exists()
    release_run_dir(again)


def test_one_process_may_open_its_run_directory_twice(tmp_path: Path) -> None:
    cfg = make_config()
    first = open_run_dir(cfg, tmp_path / "run")
    second = open_run_dir(cfg, tmp_path / "run", overwrite=True)  # the same process: allowed
    assert runlock.holds(second.lock)
    release_run_dir(second)
    assert runlock.holds(first.lock), "held until the last release"
    release_run_dir(first)
    assert not runlock.holds(first.lock)


def test_overwrite_keeps_what_the_user_put_inside_tunelabs_folders(tmp_path: Path) -> None:
    cfg = make_config()
    run = open_run_dir(cfg, tmp_path / "run")
    tunelabs = [
        "final/predictor.json",
        "final/model.safetensors",
        "final/tokenizer/vocab.txt",
        "final/member_0/predictor.json",
        "final/member_0/forest.npz",
        "artifacts/0f8fad5b-d9cb-469f-a165-70867728950e",
        f"features/tokens-{'a' * 40}.npz",
        f"features/lr-{'b' * 40}.lock",
    ]
    users = ["final/notes.txt", "final/member_0/why.md", "artifacts/plots.png", "features/x.npz"]
    for name in tunelabs + users:
        (run.path / name).parent.mkdir(parents=True, exist_ok=True)
        (run.path / name).write_text(name)
    release_run_dir(run)
    again = open_run_dir(cfg, run.path, overwrite=True)
    release_run_dir(again)
    assert [name for name in tunelabs if (run.path / name).exists()] == []
    for name in users:
        assert (run.path / name).read_text() == name, f"{name} was the user's"
    assert not (run.path / "final" / "tokenizer").exists()


def test_overwrite_removes_tunelabs_folders_when_nothing_else_is_in_them(tmp_path: Path) -> None:
    cfg = make_config()
    run = open_run_dir(cfg, tmp_path / "run")
    (run.final / "member_1").mkdir(parents=True)
    (run.final / "member_1" / "model.safetensors").write_bytes(b"x")
    (run.final / "predictor.json").write_text("{}")
    release_run_dir(run)
    release_run_dir(open_run_dir(cfg, run.path, overwrite=True))
    assert not run.final.exists()
