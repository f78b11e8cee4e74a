"""Resuming a study: re-running the same command continues the run directory's study; a
second process on a busy run directory joins the search of the one that holds it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tunelab.config import RunConfig, load_config
from tunelab.errors import FatalError
from tunelab.results.rundir import RunDir


def resumable(cfg: RunConfig) -> Callable[[RunDir], bool]:
    """For ``open_run_dir``: a run directory resumes when it holds a study of the same
    config (more trials or time allowed) or one that never started."""

    def check(run: RunDir) -> bool:
        if not run.config.is_file() or not run.started_study():
            return True  # a run that failed before any trial holds nothing to keep
        changed = study_changes(load_config(run.config), cfg)
        if changed:
            raise FatalError(
                f"{run.path} holds a study of another config (changed: "
                f"{', '.join(changed[:6])}); re-run with the same config to resume, or pass "
                "--out OTHER_DIR or --overwrite"
            )
        return True

    return check


def study_changes(previous: RunConfig, cfg: RunConfig) -> list[str]:
    """The fields in which ``cfg`` is another study than ``previous`` (more trials or time,
    another budget, ensemble, ladder or trackers leave the trials valid)."""
    same = previous.model_copy(
        update={
            "search": previous.search.model_copy(
                update={"n_trials": cfg.search.n_trials, "timeout": cfg.search.timeout}
            ),
            "ensemble": cfg.ensemble,
            "budget": cfg.budget,
            "ladder": cfg.ladder,
            "tracking": cfg.tracking,  # trackers may be added to a running study
        }
    )
    return [] if same == cfg else _differences(same.model_dump(), cfg.model_dump())


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key in sorted(set(a) | set(b)):
        name = f"{prefix}{key}"
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            out += _differences(a[key], b[key], name + ".")
        elif a.get(key) != b.get(key):
            out.append(name)
    return out


def owner_config(run: RunDir, cfg: RunConfig, *, wait_s: float = 60.0) -> RunConfig:
    """The config of the process that holds ``run``'s lock, once it has written it (not
    older than the lock); ``cfg`` must be the same study (``resumable``).

    Raises:
        FatalError: ``cfg`` is another study's config, or the holder wrote none in time.
    """
    deadline = time.monotonic() + wait_s
    while not _written_since_lock(run):
        if time.monotonic() > deadline:
            raise FatalError(
                f"{run.path} is locked by another process that has not written its "
                f"config.yaml in {wait_s:.0f} s; run this command again when it has started"
            )
        time.sleep(0.1)
    owner = load_config(run.config)
    changed = study_changes(owner, cfg)
    if changed:
        raise FatalError(
            f"{run.path} is in use by a study of another config (changed: "
            f"{', '.join(changed[:6])}), which another process runs; wait for it to end, or "
            "pass --out OTHER_DIR"
        )
    return owner


def _written_since_lock(run: RunDir) -> bool:
    try:
        return run.config.stat().st_mtime >= run.lock.stat().st_mtime
    except OSError:
        return False
