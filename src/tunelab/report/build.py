"""Build ``report.html`` from a run directory and its study (nothing else: no training, no
network), and write it next to the run's other files."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import optuna

from tunelab import __version__
from tunelab.errors import FatalError
from tunelab.report.calibration import calibration_section
from tunelab.report.contents import RunContents, read_run
from tunelab.report.curves import curves_section
from tunelab.report.html import Page, text
from tunelab.report.ladder_chart import ladder_section
from tunelab.report.predictions import predictions_section
from tunelab.report.search import folds_section, leaderboard_section, study_section
from tunelab.report.summary import config_section, ensemble_section, summary_section
from tunelab.results.rundir import MARKER, RunDir

log = logging.getLogger("tunelab")


def build_report(run_dir: str | Path, *, study: optuna.Study | None = None) -> str:
    """The report of a run directory as one self-contained HTML document.

    Args:
        run_dir: a directory ``tunelab train`` or ``tunelab run`` wrote.
        study: the run's study when it is open already; default: loaded from the storage
            its ``config.yaml`` names (``tunelab train`` runs have none).
    """
    contents = read_run(Path(run_dir), study=study)
    page = Page(f"tunelab report: {contents.name}", plotly_js=_plotly_js())
    page.add(summary_section(contents))
    page.add(ladder_section(contents, page))
    page.add(leaderboard_section(contents))
    page.add(study_section(contents, page))
    page.add(curves_section(contents, page))
    page.add(folds_section(contents, page))
    page.add(ensemble_section(contents, page))
    page.add(predictions_section(contents, page))
    page.add(calibration_section(contents, page))
    page.add(config_section(contents))
    return page.render(header=_header(contents))


def write_report(
    run_dir: str | Path, *, study: optuna.Study | None = None, output: str | Path | None = None
) -> Path:
    """Write the report (default ``RUN/report.html``) and return its path.

    The file is written whole or not at all (a temporary file renamed into place).

    Raises:
        FatalError: ``run_dir`` is not a run directory, or the file cannot be written.
    """
    run = RunDir(Path(run_dir))
    if not run.path.is_dir() or not (run.marker.is_file() or run.config.is_file()):
        raise FatalError(
            f"{str(run.path)!r} is not a run directory (no {MARKER} marker or config.yaml); "
            "give a directory that 'tunelab train' or 'tunelab run' wrote, e.g. runs/NAME"
        )
    target = Path(output) if output is not None else run.report
    document = build_report(run.path, study=study)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        partial.write_text(document, encoding="utf-8")
        partial.replace(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise FatalError(f"cannot write the report {str(target)!r}: {exc}") from None
    return target


def report_or_log(run_dir: str | Path, *, study: optuna.Study | None = None) -> Path | None:
    """``write_report`` at the end of a run: a report that fails is logged (with its
    traceback in the log) and the run's results stay as they are."""
    try:
        return write_report(run_dir, study=study)
    except Exception as exc:  # the run succeeded; its report is a by-product
        log.warning(
            "the report could not be written (%s: %s); the run's results are complete. "
            "Try again with: tunelab report %s",
            type(exc).__name__,
            exc,
            run_dir,
            exc_info=True,
        )
        return None


def _plotly_js() -> str | None:
    """plotly.js to inline, or None without plotly (the report then has no charts)."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        return None
    return str(get_plotlyjs())


def _header(contents: RunContents) -> str:
    built = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    study = contents.run.artifacts.is_dir()
    kind = "study (tunelab run)" if study else "single fit (tunelab train)"
    return (
        f"<h1>{text(contents.name)}</h1>"
        f"<p>{text(kind)} &middot; run directory {text(contents.run.path)} &middot; "
        f"report built {text(built)} by tunelab {text(__version__)}</p>"
    )
