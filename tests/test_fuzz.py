"""Fuzz the command line with broken configs and data files (see tests/fuzz_inputs.py).

Each case runs in a fresh working directory. Every one must end like a user mistake should:
exit code 2, no traceback, a message that names the problem (one line per problem), and no
file touched outside the run directory, neither in the working directory (or HOME) nor in
the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from tests.fuzz_inputs import (
    CONFIG,
    OUT,
    REPO,
    TRAIN_ARGS,
    Case,
    assert_exit_two,
    config_cases,
    csv_bytes,
    data_cases,
    dump,
    example_configs,
    npz_bytes,
    small_config,
    train_config_cases,
    valid_arrays,
    valid_table,
)
from tunelab.cli import app

runner = CliRunner()
CONFIG_CASES = config_cases()
TRAIN_CASES = [*train_config_cases(), *data_cases()]
# files that python and pytest themselves write while tests run
IGNORED_PARTS = {".git", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}

Snapshot = dict[str, tuple[int, int]]


def snapshot(root: Path) -> Snapshot:
    """Every file and folder under ``root``: relative path -> (size, mtime in ns). The
    ignored folders are not entered (a virtual environment holds tens of thousands of
    files, and every case takes two snapshots of the repository)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in IGNORED_PARTS and not d.endswith(".egg-info")]
        for name in [*dirs, *files]:
            path = Path(folder, name)
            stat = path.lstat()
            size = stat.st_size if name in files else 0
            found[path.relative_to(root).as_posix()] = (size, stat.st_mtime_ns)
    return found


def touched(before: Snapshot, after: Snapshot, *, allowed: str | None) -> list[str]:
    """Paths added, removed or changed, except under ``allowed``."""
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    if allowed is not None:
        changed -= {p for p in changed if p == allowed or p.startswith(f"{allowed}/")}
        # the run directory appearing changes the folder above it
        changed.discard(".")
    return sorted(changed)


def lay_out(case: Case, folder: Path) -> None:
    for relative, content in case.files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    for name in case.folders:
        (folder / name).mkdir(parents=True, exist_ok=True)


def invoke(case: Case) -> Result:
    args = [case.command, case.config, *case.args]
    if case.command == "train":
        args += TRAIN_ARGS
    return runner.invoke(app, args)


def assert_refused(case: Case, result: Result) -> None:
    """Exit 2 through tunelab's own error path, with a message that names the problem."""
    assert_exit_two(result, [case.names])


def run_case(case: Case, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = folder / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    lay_out(case, folder)
    monkeypatch.chdir(folder)
    before, repo_before = snapshot(folder), snapshot(REPO)
    result = invoke(case)
    assert_refused(case, result)
    allowed = OUT if case.command == "train" and case.out_is_the_runs else None
    assert touched(before, snapshot(folder), allowed=allowed) == []
    assert touched(repo_before, snapshot(REPO), allowed=None) == []


@pytest.mark.parametrize("case", CONFIG_CASES, ids=[c.id for c in CONFIG_CASES])
def test_check_refuses_a_broken_config(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_case(case, tmp_path, monkeypatch)


@pytest.mark.parametrize("case", TRAIN_CASES, ids=[c.id for c in TRAIN_CASES])
def test_train_refuses_broken_data_or_settings(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_case(case, tmp_path, monkeypatch)


def test_there_are_enough_distinct_cases() -> None:
    configs = {case.files.get(CONFIG, b"") + " ".join(case.args).encode() for case in CONFIG_CASES}
    data = {
        content for case in data_cases() for name, content in case.files.items() if name != CONFIG
    }
    assert len(configs) >= 200
    assert len(data) >= 50
    assert len({case.id for case in [*CONFIG_CASES, *TRAIN_CASES]}) == len(CONFIG_CASES) + len(
        TRAIN_CASES
    )


def test_the_unbroken_inputs_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The starting points are valid, so the cases fail for what each one breaks."""
    import random

    rng = random.Random(0)
    (tmp_path / "data.csv").write_bytes(csv_bytes(valid_table(rng)))
    for name, config in example_configs().items():
        (tmp_path / f"{name}.yaml").write_bytes(dump(config))
        # check reads the data and checkpoint files: the examples' paths start at the root
        monkeypatch.chdir(tmp_path if name == "small" else REPO)
        result = runner.invoke(app, ["check", str(tmp_path / f"{name}.yaml")])
        assert result.exit_code == 0, result.output
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.npz").write_bytes(npz_bytes(**valid_arrays(rng)))
    for source in ("csv:data.csv", "npz:data.npz"):
        (tmp_path / CONFIG).write_bytes(dump(small_config(source=source)))
        result = runner.invoke(app, ["train", CONFIG, *TRAIN_ARGS, "--overwrite"])
        assert result.exit_code == 0, result.output
