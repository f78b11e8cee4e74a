"""No stale sections (issue 25): ``ladder.json`` records the recipe it measured, and the
report marks a ladder measured for another recipe than the run's final one."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import make_config
from tunelab.ladder.run import run_ladder
from tunelab.report.contents import read_run
from tunelab.report.html import Page
from tunelab.report.ladder_chart import ladder_section
from tunelab.results.recipe import recipe_digest
from tunelab.results.rundir import open_run_dir

SMALL = {"folds": 2, "repeats": 1, "leave_one_out": False, "rungs": ["tuned"]}


def test_the_ladder_records_the_recipe_it_measured(tmp_path: Path) -> None:
    cfg = make_config(train={"epochs": 2}, ladder=SMALL)
    run = open_run_dir(cfg, tmp_path / "run", resume=lambda run: True)
    doc = run_ladder(cfg, run, params={"train.lr": 0.01})
    assert doc["recipe"] == recipe_digest(cfg.model_dump(mode="json"), {"train.lr": 0.01})
    assert doc["recipe"] != recipe_digest(cfg.model_dump(mode="json"), {"train.lr": 0.02})
    # the study's settings are not the recipe
    more = cfg.model_copy(update={"search": cfg.search.model_copy(update={"n_trials": 99})})
    assert doc["recipe"] == recipe_digest(more.model_dump(mode="json"), {"train.lr": 0.01})


def report_of(folder: Path, measured_for: dict[str, float], best: dict[str, float]) -> str:
    config = make_config().model_dump(mode="json")
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (folder / "metrics.json").write_text(json.dumps({"best_trial": 7, "best_params": best}))
    ladder = {"metric": "accuracy", "ladder": [], "recipe": recipe_digest(config, measured_for)}
    (folder / "ladder.json").write_text(json.dumps(ladder))
    section = ladder_section(read_run(folder), Page("run", plotly_js=None))
    return section.title + "\n" + "\n".join(section.parts)


def test_the_report_marks_a_ladder_measured_for_another_recipe(tmp_path: Path) -> None:
    stale = report_of(tmp_path / "stale", {"train.lr": 0.01}, {"train.lr": 0.05})
    assert "(measured for another recipe)" in stale
    assert "trial 7&#x27;s parameters" in stale or "trial 7's parameters" in stale
    current = report_of(tmp_path / "current", {"train.lr": 0.05}, {"train.lr": 0.05})
    assert "another recipe" not in current
