"""The report opened in headless Chromium, as a person opens it: no console error, no
dialog, no request off the machine, and every section drawn."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import HOSTILE_FOLDER, HOSTILE_TARGET, IMG_CLASS, QUOTES_CLASS, SCRIPT_CLASS, Opened
from .test_report import SECTIONS, write_ladder

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"
# the quickstart as its README command runs it, on a budget a test can afford
QUICKSTART = [
    "--set",
    "search.n_trials=3",
    "--set",
    "train.epochs=2",
    "--set",
    "search.pruner=median",  # epochs reported to the study (three trials: none pruned)
    "--set",
    "train.threads=1",
]


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tunelab run examples/quickstart.yaml`` (3 trials of 2 epochs), from the repository
    root as the README runs it."""
    out = tmp_path_factory.mktemp("quickstart") / "run"
    command = [sys.executable, "-m", "tunelab.cli", "run", "examples/quickstart.yaml"]
    path = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [*command, *QUICKSTART, "--out", str(out), "--quiet"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def by_key(opened: Opened) -> dict[str, dict[str, Any]]:
    return {section["key"]: section for section in opened.sections}


def assert_clean(opened: Opened) -> None:
    assert opened.errors == [], opened.errors
    assert opened.dialogs == [], opened.dialogs
    assert opened.requests == [], f"the report fetched {opened.requests}: it must work offline"


@pytest.mark.slow
def test_quickstart_report_renders_every_section_offline(
    quickstart_run: Path, browser: Any, tmp_path: Path
) -> None:
    report = quickstart_run / "report.html"
    assert report.is_file(), "tunelab run writes report.html"
    shot = tmp_path / "report.png"
    opened = browser(report, screenshot=shot)
    assert_clean(opened)
    sections = by_key(opened)
    assert list(sections) == SECTIONS
    for key, section in sections.items():
        assert section["empty_plots"] == 0, f"{key}: a figure was not drawn"
        assert section["text"].strip(), f"{key} is empty"
    assert sections["summary"]["cards"] == 3
    assert sections["leaderboard"]["rows"] == 3
    assert sections["search"]["plots"] == 4, sections["search"]["notes"]
    assert sections["curves"]["plots"] == 3
    assert sections["folds"]["rows"] == 3
    assert sections["predictions"]["plots"] == 1
    assert sections["config"]["pre"] == 1 and sections["config"]["rows"] > 0
    assert sections["ladder"]["notes"] == ["no ladder in this run"]
    assert "out of fold" in sections["ensemble"]["text"], "the ensemble stage's decision"
    assert shot.read_bytes().startswith(PNG) and shot.stat().st_size > 50_000


@pytest.mark.slow
def test_ladder_and_ensemble_render_when_the_run_has_them(
    quickstart_run: Path, browser: Any, tmp_path: Path
) -> None:
    from tunelab.report import write_report

    run = tmp_path / "run"
    shutil.copytree(quickstart_run, run)
    write_ladder(run)
    members = [{"trial": 0, "weight": 0.6}, {"trial": 2, "weight": 0.4}]
    decision = {"kept": True, "method": "greedy", "members": members}
    (run / "ensemble.json").write_text(json.dumps(decision))
    opened = browser(write_report(run), screenshot=tmp_path / "ladder.png")
    assert_clean(opened)
    sections = by_key(opened)
    assert sections["ladder"]["plots"] == 1 and sections["ladder"]["rows"] == 5
    assert "skipped: the model has no pretrained backbone" in sections["ladder"]["text"]
    assert sections["ensemble"]["plots"] == 1 and sections["ensemble"]["rows"] >= 2
    assert "no ladder in this run" not in sections["summary"]["text"]


def test_hostile_strings_show_as_text_and_run_nothing(hostile_run: Path, browser: Any) -> None:
    shown = {
        # the class names as the confusion matrix's labels (SVG text)
        "classes": "document.querySelector('#predictions').textContent",
        "config": "document.querySelector('#config pre').textContent",
        "leaderboard": "document.querySelector('#leaderboard').textContent",
        "search": "document.querySelector('#search').textContent",
        # elements the user's strings would have made, were they markup
        "injected": "document.querySelectorAll('main img, main script, main b, main i, "
        "main u, svg a').length",
    }
    opened = browser(hostile_run / "report.html", evaluate=shown)
    assert_clean(opened)
    values = opened.values
    for name in (SCRIPT_CLASS, QUOTES_CLASS, IMG_CLASS):
        assert name in values["classes"]
    config = yaml.safe_load(values["config"])  # as shown, it reads back as it ran
    assert config["data"]["source"].endswith(f"{HOSTILE_FOLDER}/data.csv")
    assert config["data"]["target"] == HOSTILE_TARGET
    assert "<script>alert(4)</script>" in values["leaderboard"]
    assert "model.options.<i>tag</i>" in values["search"]  # Optuna's figures' labels
    assert values["injected"] == 0
    assert all(section["empty_plots"] == 0 for section in opened.sections)
