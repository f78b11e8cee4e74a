"""The report without a browser: what the HTML holds, built from real runs."""

from __future__ import annotations

import html
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.errors import FatalError
from tunelab.flows.study import run_study
from tunelab.flows.train import train
from tunelab.report import build_report, write_report

from .conftest import (
    HOSTILE_CHOICES,
    HOSTILE_FOLDER,
    HOSTILE_PARAM,
    HOSTILE_TARGET,
    IMG_CLASS,
    QUOTES_CLASS,
    SCRIPT_CLASS,
)

SECTIONS = [
    "summary",
    "ladder",
    "leaderboard",
    "search",
    "curves",
    "folds",
    "ensemble",
    "predictions",
    "config",
]


def sections(document: str) -> dict[str, str]:
    """Each section's HTML by its key, in page order."""
    found = re.findall(
        r'<section id="([^"]+)" data-section="[^"]+">(.*?)</section>', document, re.S
    )
    return dict(found)


def figures(part: str) -> int:
    return part.count('<div class="plot"')


def notes(part: str) -> list[str]:
    return re.findall(r'<p class="note">(.*?)</p>', part)


@pytest.fixture
def train_run(tmp_path: Path, config_factory: Any) -> Path:
    """``tunelab train`` on iris (no study)."""
    out = tmp_path / "train"
    train(config_factory(train={"epochs": 3}), out=out)
    return out


def test_hostile_strings_never_reach_the_page_as_markup(hostile_run: Path) -> None:
    document = (hostile_run / "report.html").read_text()
    # the strings as written would be live markup anywhere in the file
    for raw in (SCRIPT_CLASS, IMG_CLASS, HOSTILE_FOLDER, HOSTILE_TARGET, "<i>tag</i>", "<u>x</u>"):
        assert raw not in document
    # in the page's HTML they are entities: the config reads back as it ran
    config = re.search(r"<pre>(.*?)</pre>", document, re.S)
    assert config is not None
    shown = yaml.safe_load(html.unescape(config.group(1)))
    assert shown["data"]["source"].endswith(f"{HOSTILE_FOLDER}/data.csv")
    assert shown["data"]["target"] == HOSTILE_TARGET
    assert "&lt;b&gt;label&lt;/b&gt;" in document
    # in figure data they are entities inside JSON that cannot close its script element
    assert "\\u0026lt;script\\u0026gt;alert(1)\\u0026lt;" in document
    assert "\\u0026quot;" not in document  # quotes stay quotes (Plotly shows text, not HTML)
    # every <script> element is plotly.js, figure data or the renderer: none is the user's
    scripts = re.findall(r"<script[^>]*>", document)
    assert set(scripts) <= {"<script>", *{s for s in scripts if "data-figure" in s}}
    assert document.count("<script>") == 2


def test_hostile_param_name_and_values_are_escaped_in_the_leaderboard(hostile_run: Path) -> None:
    board = sections((hostile_run / "report.html").read_text())["leaderboard"]
    assert f"params.{HOSTILE_PARAM}".replace("<", "&lt;").replace(">", "&gt;") in board
    shown = [
        c.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for c in HOSTILE_CHOICES
    ]
    assert any(value.replace('"', "&quot;").replace("'", "&#x27;") in board for value in shown)
    assert QUOTES_CLASS not in board


def test_a_study_report_has_every_section_with_its_figures(hostile_run: Path) -> None:
    parts = sections((hostile_run / "report.html").read_text())
    assert list(parts) == SECTIONS
    assert figures(parts["search"]) == 4, notes(parts["search"])
    assert figures(parts["curves"]) == 3  # the best three trials
    assert figures(parts["predictions"]) == 1
    assert notes(parts["ladder"]) == ["no ladder in this run"]
    ensemble = parts["ensemble"]
    assert "not kept. out of fold" in ensemble, "the ensemble stage says what it decided"
    assert "your metric: accuracy" in ensemble and "proper score: log_loss" in ensemble
    # the weights of an ensemble that was not kept are no answer to "which model"
    assert figures(ensemble) == 0 and "weight" not in ensemble
    assert parts["leaderboard"].count("<tr>") == 1 + 3


def test_the_study_names_its_metric_for_the_dashboard(hostile_run: Path) -> None:
    study = optuna.load_study(study_name="test", storage=f"sqlite:///{hostile_run / 'study.db'}")
    assert study.metric_names == ["accuracy"]


def test_a_train_run_writes_a_report_with_the_sections_that_apply(train_run: Path) -> None:
    parts = sections((train_run / "report.html").read_text())
    assert list(parts) == SECTIONS
    assert "validation accuracy (best epoch)" in parts["summary"]
    assert "no leaderboard in this run" in parts["leaderboard"]
    assert notes(parts["search"]) == ["no study in this run"]
    assert figures(parts["curves"]) == 1  # history.json of the one fit
    assert figures(parts["predictions"]) == 1
    assert "single fit (tunelab train)" in (train_run / "report.html").read_text()


def test_a_regression_run_with_kfold_shows_residuals_and_its_fold_scores(
    tmp_path: Path, config_factory: Any
) -> None:
    cfg = config_factory(data={"source": "sklearn:diabetes"}, cv={"strategy": "kfold", "folds": 3})
    train(cfg, out=tmp_path / "run")
    parts = sections((tmp_path / "run" / "report.html").read_text())
    assert figures(parts["predictions"]) == 1
    assert "mean residual" in parts["predictions"]
    assert figures(parts["folds"]) == 1  # the three folds' spread
    assert '<td>cross-validation</td><td class="num">3</td>' in parts["folds"]
    assert "cross-validation (rmse)" in parts["summary"]


def test_leaderboard_counts_stay_counts_when_pruned_trials_leave_them_empty(
    train_run: Path,
) -> None:
    (train_run / "leaderboard.csv").write_text(
        "trial,state,value,std,folds,seconds\n0,complete,0.9,0.01,5,3.5\n1,pruned,0.5,,,1.0\n"
    )
    board = sections(build_report(train_run))["leaderboard"]
    assert '<td class="num">5</td>' in board and "5.0000" not in board
    assert '<td class="num">0.0100</td>' in board


def test_the_run_records_its_environment_and_the_report_shows_it(train_run: Path) -> None:
    recorded = json.loads((train_run / "environment.json").read_text())
    assert recorded["python"] == sys.version.split()[0]
    torch_version = recorded["packages"]["torch"]
    assert torch_version
    config = sections((train_run / "report.html").read_text())["config"]
    assert f"<td>torch</td><td>{torch_version}</td>" in config
    assert "the run recorded no environment" not in config


def test_a_run_without_environment_json_shows_the_report_machine_and_says_so(
    train_run: Path,
) -> None:
    (train_run / "environment.json").unlink()
    config = sections(build_report(train_run))["config"]
    assert "the run recorded no environment (environment.json)" in config
    assert "<td>torch</td>" in config


def test_damaged_files_are_named_and_the_rest_of_the_report_is_written(train_run: Path) -> None:
    (train_run / "ladder.json").write_text('{"ladder": [')
    (train_run / "ensemble.json").write_text("[1, 2]")
    parts = sections(build_report(train_run))
    summary = notes(parts["summary"])
    assert any(n.startswith("not shown: ladder.json: not valid") for n in summary), summary
    assert "not shown: ensemble.json: holds a JSON list, not an object" in summary
    assert figures(parts["predictions"]) == 1


def test_a_ladder_json_this_reader_cannot_use_is_named(train_run: Path) -> None:
    (train_run / "ladder.json").write_text('{"steps_measured": 3}')
    summary = notes(sections(build_report(train_run))["summary"])
    assert (
        "not shown: ladder.json: not a ladder document: "
        "no &#x27;ladder&#x27; list (found steps_measured)" in summary
    )


def test_ladder_and_ensemble_sections_show_what_their_files_hold(train_run: Path) -> None:
    write_ladder(train_run)
    (train_run / "ensemble.json").write_text(
        json.dumps(
            {
                "kept": True,
                "method": "greedy",
                "members": [{"trial": 3, "weight": 0.75}, {"trial": 1, "weight": 0.25}],
            }
        )
    )
    parts = sections(build_report(train_run))
    ladder = parts["ladder"]
    assert figures(ladder) == 1
    assert ladder.count('<tr class="helps">') == 1
    assert "skipped: the model has no pretrained backbone" in ladder
    assert "leave one out" in ladder
    assert "0.9000" in parts["summary"] and "no ladder in this run" not in parts["summary"]
    ensemble = parts["ensemble"]
    assert "<td>trial 3</td>" in ensemble and "0.7500" in ensemble
    assert figures(ensemble) == 1


def write_ladder(run: Path) -> None:
    """A ladder.json in the layout ``tunelab.ladder.document`` writes."""
    step = {"status": "measured", "reason": None}
    rungs = [
        {**step, "name": "baseline", "label": "baseline", "mean": 0.9, "low": 0.88,
         "high": 0.92, "seconds": 10.0},
        {**step, "name": "tuned", "label": "+ tuned hyperparameters", "mean": 0.93,
         "low": 0.91, "high": 0.95, "difference": 0.03, "difference_low": 0.01,
         "difference_high": 0.05, "p_value": 0.004, "p_holm": 0.012, "verdict": "helps",
         "seconds": 30.0},
        {**step, "name": "regularization", "label": "+ regularization", "mean": 0.929,
         "low": 0.91, "high": 0.948, "difference": -0.001, "difference_low": -0.01,
         "difference_high": 0.008, "p_value": 0.8, "p_holm": 0.8, "verdict": "no evidence",
         "seconds": 31.0},
        {"name": "finetuning", "label": "+ transfer strategy", "status": "skipped",
         "reason": "the model has no pretrained backbone"},
    ]  # fmt: skip
    loo = [
        {**step, "name": "regularization", "label": "without regularization", "mean": 0.93,
         "difference": 0.001, "verdict": "no evidence"}
    ]  # fmt: skip
    (run / "ladder.json").write_text(
        json.dumps({"metric": "accuracy", "alpha": 0.05, "ladder": rungs, "leave_one_out": loo})
    )


def test_without_plotly_the_report_keeps_its_tables_and_says_how_to_get_charts(
    train_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "plotly" or m.startswith("plotly.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "plotly", None)  # import plotly raises ImportError
    document = build_report(train_run)
    assert "<script" not in document and "data-figure" not in document
    parts = sections(document)
    assert (
        "charts need plotly: pip install -c constraints.txt &#x27;tunelab[report]&#x27;"
        in parts["curves"]
    )
    assert "<table>" in parts["predictions"]  # the confusion matrix as a table instead


def test_report_command_writes_the_file_and_refuses_a_folder_that_is_not_a_run(
    train_run: Path, tmp_path: Path
) -> None:
    (train_run / "report.html").unlink()
    result = CliRunner().invoke(app, ["report", str(train_run)])
    assert result.exit_code == 0, result.output
    assert (train_run / "report.html").is_file()
    elsewhere = tmp_path / "elsewhere.html"
    result = CliRunner().invoke(app, ["report", str(train_run), "--output", str(elsewhere)])
    assert result.exit_code == 0 and elsewhere.is_file()
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    result = CliRunner().invoke(app, ["report", str(stranger)])
    assert result.exit_code == 2
    assert "is not a run directory (no .tunelab marker or config.yaml)" in result.output
    assert "Traceback" not in result.output
    assert not (stranger / "report.html").exists()


def test_write_report_leaves_no_partial_file_when_it_cannot_write(train_run: Path) -> None:
    (train_run / "report.html").unlink()
    (train_run / "report.html").mkdir()  # the name is taken by a folder
    with pytest.raises(FatalError, match="cannot write the report"):
        write_report(train_run)
    assert [p.name for p in train_run.iterdir() if p.name.endswith(".partial")] == []


def test_a_report_that_fails_does_not_lose_the_study(tmp_path: Path, config_factory: Any) -> None:
    cfg = config_factory(
        train={"epochs": 2},
        search={"n_trials": 1, "space": {"train.lr": {"type": "float", "low": 1e-3, "high": 1e-1}}},
    )
    out = tmp_path / "run"
    run_study(cfg, out=out)
    (out / "report.html").unlink()
    (out / "report.html").mkdir()  # the next report cannot be written
    more = cfg.model_copy(update={"search": cfg.search.model_copy(update={"n_trials": 2})})
    result = run_study(more, out=out)
    assert result.metrics is not None and len(result.study.trials) == 2
    [failure] = result.failed_stages  # said, and the command exits non-zero
    assert failure.stage == "report" and "cannot write the report" in failure.reason
    assert f"try again with: tunelab report {out}" in failure.reason
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["failed_stages"] == [failure.to_dict()]
    log = (out / "run.log").read_text()
    assert "stage report failed: cannot write the report" in log and "Traceback" in log


def test_the_report_reads_only_the_run_directory(train_run: Path, tmp_path: Path) -> None:
    """Moved elsewhere, a run's report is the same: nothing outside the folder is read."""
    moved = tmp_path / "moved"
    shutil.copytree(train_run, moved)
    strip = re.compile(r"report built [^&]*|run directory [^&]*")
    assert strip.sub("", build_report(moved)) == strip.sub("", build_report(train_run))


def test_the_report_reads_results_and_imports_no_other_stage() -> None:
    """docs/architecture.md: the report is built only from the run directory and the study."""
    import ast

    package = Path(__file__).resolve().parents[2] / "src" / "tunelab" / "report"
    stages = ("data", "models", "training", "techniques", "evaluation", "search", "flows")
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert not name.startswith(tuple(f"tunelab.{s}" for s in stages)), (
                    f"report/{path.name} imports {name}"
                )
