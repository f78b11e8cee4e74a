"""``tunelab ladder CONFIG``: open the run directory, find the tuned parameters, measure.

The run directory is the one ``tunelab run`` uses (``runs/NAME``): a ladder resumes there,
and a study of the same config lends its ``best_params.json`` to the ``tuned`` rung.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.config import RunConfig
from tunelab.errors import FatalError
from tunelab.flows.resume import resumable
from tunelab.ladder import run_ladder
from tunelab.observer import Observer
from tunelab.report import report_or_log
from tunelab.results.rundir import open_run_dir, release_run_dir


@dataclass
class LadderSummary:
    """What ``ladder`` measured: the run directory and its ``ladder.json`` document."""

    run_dir: Path
    document: dict[str, Any]


def ladder(
    cfg: RunConfig,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    observer: Observer | None = None,
    params: dict[str, Any] | None = None,
    params_source: str | None = None,
) -> LadderSummary:
    """Measure the ladder of ``cfg`` in its run directory; ``report.html`` is written again
    with it.

    Args:
        cfg: the config.
        out: the run directory; default ``runs/NAME``.
        overwrite: empty the run directory first (else a ladder resumes there).
        observer: told about progress (``ladder_planned``, ``variant_*``).
        params: the tuned parameters (``--params``); default the run directory's
            ``best_params.json`` when a study of this config wrote one.
        params_source: where ``params`` came from, for ``ladder.json``.

    Raises:
        FatalError: the run directory holds a run of another config, or files tunelab did
            not make, or another process is writing it.
    """
    run = open_run_dir(cfg, out, overwrite=overwrite, resume=resumable(cfg))
    try:
        if params is None and run.best_params.is_file():
            params, params_source = _best_params(run.best_params), str(run.best_params)
        with run.logging():
            doc = run_ladder(
                cfg, run, params=params, params_source=params_source, observer=observer
            )
            report_or_log(run.path)  # the report shows the ladder it now holds
        return LadderSummary(run.path, doc)
    finally:
        release_run_dir(run)


def _best_params(path: Path) -> dict[str, Any]:
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FatalError(
            f"{path} is not valid JSON ({exc}); pass --params FILE, or --out OTHER_DIR for a "
            "ladder without the study"
        ) from None
    if not isinstance(values, dict):
        raise FatalError(f"{path} holds no object of dotted field names; pass --params FILE")
    return values
