"""``tunelab ladder CONFIG``: open the run directory, find the tuned parameters, measure.

The run directory is the one ``tunelab run`` uses (``runs/NAME``): a ladder resumes there,
and a study of the same config lends its ``best_params.json`` to the ``tuned`` rung.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunelab.config import RunConfig
from tunelab.errors import FatalError
from tunelab.ladder.run import Watcher, run_ladder
from tunelab.report import report_or_log
from tunelab.results.rundir import RunDir, open_run_dir, release_run_dir
from tunelab.search.run import logging_to, resumable


def ladder_in_run_dir(
    cfg: RunConfig,
    *,
    out: str | Path | None = None,
    params: dict[str, Any] | None = None,
    params_source: str | None = None,
    watcher: Watcher | None = None,
) -> tuple[RunDir, dict[str, Any]]:
    """Measure the ladder of ``cfg`` in its run directory.

    Args:
        cfg: the config.
        out: the run directory; default ``runs/NAME``.
        params: the tuned parameters (``--params``); default the run directory's
            ``best_params.json`` when a study of this config wrote one.
        params_source: where ``params`` came from, for ``ladder.json``.
        watcher: told about progress.

    Returns:
        The run directory and the ladder document; ``report.html`` is written again with it.

    Raises:
        FatalError: the run directory holds a run of another config, or files tunelab did
            not make, or another process is writing it.
    """
    run = open_run_dir(cfg, out, resume=resumable(cfg))
    try:
        if params is None and run.best_params.is_file():
            params, params_source = _best_params(run.best_params), str(run.best_params)
        with logging_to(run.log):
            doc = run_ladder(cfg, run, params=params, params_source=params_source, watcher=watcher)
            report_or_log(run.path)  # the report shows the ladder it now holds
        return run, doc
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
