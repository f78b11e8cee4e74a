"""The study's summary as a user reads it at the end of ``tunelab run``."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import make_config
from tunelab.flows.study import StudySummary, run_study
from tunelab.progress.study import study_summary


@pytest.fixture(scope="module")
def holdout_study(tmp_path_factory: pytest.TempPathFactory) -> StudySummary:
    """Four one-epoch trials on the holdout: one score each, so no spread."""
    cfg = make_config(
        train={"epochs": 1, "threads": 1, "device": "cpu"},
        search={
            "n_trials": 4,
            "sampler": "random",
            "pruner": "none",
            "space": {"train.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        },
        ensemble={"method": "none"},
    )
    return run_study(cfg, out=tmp_path_factory.mktemp("study") / "run")


@pytest.mark.parametrize("terminal", [True, False])
def test_the_leaderboard_says_n_a_and_counts_the_rows_it_leaves_out(
    holdout_study: StudySummary, terminal: bool
) -> None:
    console = Console(width=200, record=True, force_terminal=terminal)
    for part in study_summary(holdout_study, terminal=terminal, top=3):
        console.print(part)
    text = console.export_text()
    assert "None" not in text and "n/a" in text  # the std of a single holdout score
    leaderboard = Path(holdout_study.run_dir) / "leaderboard.csv"
    assert f"… 1 more row, see {leaderboard}" in text


def test_a_leaderboard_shown_whole_has_no_more_rows_line(holdout_study: StudySummary) -> None:
    console = Console(width=200, record=True)
    for part in study_summary(holdout_study, terminal=False, top=10):
        console.print(part)
    assert "more row" not in console.export_text()
