"""Log routing for a run: tunelab's and Optuna's records go to the run's ``run.log``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna

log = logging.getLogger("tunelab")


@contextmanager
def logging_to(path: Path) -> Iterator[None]:
    """tunelab's and Optuna's log records (failed trials' tracebacks included) go to
    ``path`` while the block runs, and nowhere else: the terminal shows one line each."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    optuna.logging.disable_default_handler()
    optuna_log = logging.getLogger("optuna")
    saved = [(logger, logger.level) for logger in (log, optuna_log)]
    for logger in (log, optuna_log):
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
        handler.close()
        optuna.logging.enable_default_handler()
