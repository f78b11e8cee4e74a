"""What a ``tunelab run`` will need from its config, checked before anything trains.

``tunelab check`` and ``tunelab run`` call ``check_stages`` before any training, so a setting
that only a later stage reads (the ensemble's metric, the ladder's rungs, the search space's
conditions and bounds) is refused up front with exit code 2, not after the study.

The ensemble's metric depends on the task; with ``data.task: auto`` the task is the loaded
target's: ``tunelab run`` checks it once the data is loaded (before the study starts), and
``tunelab check`` loads the data when a setting depends on it (``task_for_check``).

Example::

    check_stages(cfg, task="multiclass")   # ConfigError: one line per problem
"""

from __future__ import annotations

from tunelab.config import RunConfig
from tunelab.errors import ConfigError
from tunelab.search.space_checks import space_problems


def check_stages(cfg: RunConfig, *, task: str | None) -> None:
    """Raise what every stage of a run would refuse later.

    Args:
        task: binary, multiclass or regression; None when not known yet (the checks that
            need it are skipped).

    Raises:
        ConfigError: one line per problem, each naming the field, the value and the fix.
    """
    problems = [*_ensemble_metric(cfg, task), *_ladder_rungs(cfg), *space_problems(cfg)]
    if problems:
        raise ConfigError(problems)


def known_task(cfg: RunConfig) -> str | None:
    """The task when the config names it, else None (``auto``: the data decides)."""
    return None if cfg.data.task == "auto" else cfg.data.task


def task_for_check(cfg: RunConfig) -> str | None:
    """The task, loading the data only when ``auto`` and a setting depends on it."""
    task = known_task(cfg)
    if task is not None or not _needs_task(cfg):
        return task
    from tunelab.data import encode_target, load_data

    return encode_target(load_data(cfg.data), task=cfg.data.task).task


def _needs_task(cfg: RunConfig) -> bool:
    return cfg.ensemble.method != "none" and cfg.ensemble.metric != "auto"


def _ensemble_metric(cfg: RunConfig, task: str | None) -> list[str]:
    if task is None or not _needs_task(cfg):
        return []
    from tunelab.training.metrics import metrics_for

    if cfg.ensemble.metric in metrics_for(task):
        return []
    return [
        f"ensemble.metric: {cfg.ensemble.metric!r} does not apply to {task}; valid for "
        f"{task}: {', '.join(metrics_for(task))} (or auto)"
    ]


def _ladder_rungs(cfg: RunConfig) -> list[str]:
    if cfg.ladder.rungs is None:  # the default rungs are valid by construction
        return []
    from tunelab.ladder.rungs import rung_names  # the registry of techniques and stages

    try:
        rung_names(cfg)
    except ConfigError as exc:
        return exc.problems
    return []
