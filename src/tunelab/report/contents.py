"""Everything the report shows, read from the run directory and the study, tolerantly.

A file that is missing leaves its part of the report out (the section says so); a file
that exists but cannot be read is named in ``problems`` and shown in the summary, and the
rest of the report is still written. Nothing here writes into the run directory.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml

from tunelab.report.ladder import Ladder, read_ladder
from tunelab.results.artifacts import TrialArtifacts
from tunelab.results.recipe import stale_recipe
from tunelab.results.rundir import RunDir


@dataclass
class RunContents:
    """The run directory's files as the report uses them (None: not in this run).

    Attributes:
        config: the resolved config as a plain mapping (``config.yaml``).
        config_text: ``config.yaml`` as written.
        metrics: ``metrics.json``: the final predictor's test score and interval.
        history: ``history.json``: the final fit's epochs.
        folds: ``folds.json`` of ``tunelab train`` with ``cv.strategy: kfold``.
        leaderboard: ``leaderboard.csv``.
        predictions: ``test_predictions.csv`` (classes read as text, never as numbers).
        environment: ``environment.json``.
        ladder: ``ladder.json``, read by ``read_ladder``.
        ensemble: ``ensemble.json`` as written.
        study: the run's Optuna study (``tunelab run`` only).
        artifacts: the study's per-trial files.
        problems: files that exist but could not be read, each with the reason.
    """

    run: RunDir
    config: dict[str, Any] = field(default_factory=dict)
    config_text: str | None = None
    metrics: dict[str, Any] | None = None
    history: list[dict[str, Any]] | None = None
    folds: dict[str, Any] | None = None
    leaderboard: pd.DataFrame | None = None
    predictions: pd.DataFrame | None = None
    environment: dict[str, Any] | None = None
    ladder: Ladder | None = None
    ensemble: dict[str, Any] | None = None
    study: optuna.Study | None = None
    artifacts: TrialArtifacts | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.run.path.name)

    @property
    def metric(self) -> str | None:
        """The selection metric (what the study optimized and the test score is in)."""
        if self.metrics and self.metrics.get("metric"):
            return str(self.metrics["metric"])
        if self.study is not None and self.study.user_attrs.get("metric"):
            return str(self.study.user_attrs["metric"])
        return None


def read_run(path: Path, *, study: optuna.Study | None = None) -> RunContents:
    """Read a run directory for the report.

    Args:
        path: the run directory.
        study: the run's study when the caller has it open (``tunelab run``); otherwise it
            is loaded from the storage ``config.yaml`` names.
    """
    run = RunDir(Path(path))
    found = RunContents(run)
    problems = found.problems
    found.config_text = _text(run.config, problems)
    config = _parse(run.config, found.config_text, yaml.safe_load, problems)
    found.config = config if isinstance(config, dict) else {}
    found.metrics = _mapping(run.metrics, problems)
    found.folds = _mapping(run.folds, problems)
    found.environment = _mapping(run.environment, problems)
    found.ensemble = _mapping(run.ensemble, problems)
    history = _parse(run.history, _text(run.history, problems), json.loads, problems)
    found.history = history if isinstance(history, list) else None
    found.leaderboard = _csv(run.leaderboard, problems)
    found.predictions = _csv(run.test_predictions, problems, as_text=True)
    ladder = _parse(run.ladder, _text(run.ladder, problems), json.loads, problems)
    if ladder is not None:
        try:
            found.ladder = read_ladder(ladder)
            stale = stale_recipe(ladder, found.config, found.metrics)
            found.ladder = replace(found.ladder, stale=stale) if stale else found.ladder
        except ValueError as exc:
            problems.append(f"{run.ladder.name}: {exc}")
    found.study = study if study is not None else _load_study(run, found.config, problems)
    if found.study is not None and run.artifacts.is_dir():
        found.artifacts = TrialArtifacts(run.artifacts)
    return found


def _text(path: Path, problems: list[str]) -> str | None:
    if not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path.name}: cannot be read ({exc})")
        return None


def _parse(
    path: Path, content: str | None, parse: Callable[[str], Any], problems: list[str]
) -> Any:
    if content is None:
        return None
    try:
        return parse(content)
    except (ValueError, yaml.YAMLError) as exc:
        problems.append(f"{path.name}: not valid ({str(exc).splitlines()[0]})")
        return None


def _mapping(path: Path, problems: list[str]) -> dict[str, Any] | None:
    data = _parse(path, _text(path, problems), json.loads, problems)
    if data is None:
        return None
    if not isinstance(data, dict):
        problems.append(f"{path.name}: holds a JSON {type(data).__name__}, not an object")
        return None
    return data


def _csv(path: Path, problems: list[str], *, as_text: bool = False) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        if as_text:  # class names stay as written: "01" is not 1, "NA" is not missing
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        problems.append(f"{path.name}: cannot be read ({str(exc).splitlines()[0]})")
        return None


def _load_study(run: RunDir, config: dict[str, Any], problems: list[str]) -> optuna.Study | None:
    """The study of a ``tunelab run`` directory; None for a ``tunelab train`` run.

    Only a study that exists is opened: an SQLite URL to a missing file would create one.
    """
    if not run.artifacts.is_dir():  # tunelab train makes no artifacts folder
        return None
    search = config.get("search")
    search = search if isinstance(search, dict) else {}
    url = search.get("storage")
    if not url:
        if not run.study_db.is_file():
            return None
        url = f"sqlite:///{run.study_db.resolve()}"
    name = search.get("study_name") or config.get("name")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.load_study(study_name=str(name), storage=str(url))
    except Exception as exc:  # any storage failure: the rest of the report still helps
        problems.append(f"the study {name!r} could not be opened ({type(exc).__name__}: {exc})")
        return None
