"""Optuna's own storage, samplers and pruners, chosen by name (tunelab re-implements none).

The storage is a URL: SQLite inside the run directory by default, PostgreSQL (or any
RDB URL Optuna takes) for studies shared by workers on many machines. Heartbeats mark a
trial whose process died as failed, and ``RetryHeartbeatStaleTrialCallback`` re-queues it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from tunelab.config import RunConfig, SearchConfig
from tunelab.errors import ConfigError, FatalError
from tunelab.search.space import grid
from tunelab.training.metrics import GREATER_IS_BETTER

SamplerFactory = Callable[[SearchConfig, int], optuna.samplers.BaseSampler]

SAMPLERS: dict[str, SamplerFactory] = {
    "tpe": lambda cfg, seed: optuna.samplers.TPESampler(seed=seed),
    "random": lambda cfg, seed: optuna.samplers.RandomSampler(seed=seed),
    "grid": lambda cfg, seed: optuna.samplers.GridSampler(grid(cfg.space), seed=seed),
    "cmaes": lambda cfg, seed: optuna.samplers.CmaEsSampler(seed=seed),
    "qmc": lambda cfg, seed: optuna.samplers.QMCSampler(seed=seed),
    "gp": lambda cfg, seed: optuna.samplers.GPSampler(seed=seed),
}


def successive_halving(cfg: RunConfig) -> optuna.pruners.SuccessiveHalvingPruner:
    """The first rung after a tenth of ``train.epochs``, the best third promoted at each.

    Optuna's defaults (``min_resource='auto'``: 1 epoch below 200; reduction factor 4) judge
    a trial after its first 2 epochs, while a warm-up or a cosine schedule has barely begun;
    ``bench/search_efficiency.py`` measured them reaching the target less often (5 of 12
    runs against 9 of 12). Pruning per fold (``cv.prune_on: fold``) reports fold numbers,
    so there the first rung is after the second fold.
    """
    per_fold = cfg.cv.prune_on == "fold"
    first = 1 if per_fold else max(1, round(cfg.train.epochs / 10))
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=first, reduction_factor=3)


PRUNERS: dict[str, Callable[[RunConfig], optuna.pruners.BasePruner]] = {
    "median": lambda cfg: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    "percentile": lambda cfg: optuna.pruners.PercentilePruner(
        25.0, n_startup_trials=3, n_warmup_steps=1
    ),
    "successive_halving": successive_halving,
    "hyperband": lambda cfg: optuna.pruners.HyperbandPruner(),
    "wilcoxon": lambda cfg: optuna.pruners.WilcoxonPruner(p_threshold=0.1),
    "none": lambda cfg: optuna.pruners.NopPruner(),
}


def storage_url(cfg: RunConfig, run_dir: Path) -> str:
    return cfg.search.storage or f"sqlite:///{(run_dir / 'study.db').resolve()}"


def _sqlite_pragmas(connection: Any, record: Any) -> None:
    """Write-ahead log: readers never block the writer, and a commit appends to the log
    instead of syncing the whole file (about half of Optuna's per-trial SQLite time). With
    ``synchronous=NORMAL`` a killed process loses nothing; a power cut may lose the last
    commits. WAL needs a local disk: use PostgreSQL for a study on a network file system."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _in_memory(url: str) -> bool:
    try:
        database = sqlalchemy.engine.make_url(url).database
    except sqlalchemy.exc.ArgumentError:
        return False  # RDBStorage reports the malformed URL
    return database in (None, "", ":memory:") or "mode=memory" in url


def make_storage(url: str, cfg: SearchConfig) -> RDBStorage:
    """An RDB storage with heartbeats; SQLite waits for locks instead of failing."""
    engine: dict[str, Any] = {}
    sqlite = url.startswith("sqlite")
    if sqlite and _in_memory(url):
        raise ConfigError(
            f"search.storage: {url!r} is an in-memory SQLite database, which lives in one "
            "connection: heartbeats, resuming and --jobs workers need a database they can "
            "reopen. Leave search.storage empty (SQLite in the run directory) or give a file"
        )
    if sqlite:
        # several local worker processes write to one file: wait for the lock (default 5 s)
        engine = {"connect_args": {"timeout": 120}}
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna, and needed
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=cfg.heartbeat_interval,
                grace_period=cfg.grace_period or 2 * cfg.heartbeat_interval,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                    max_retry=cfg.max_retry
                ),
            )
        if sqlite:
            sqlalchemy.event.listen(storage.engine, "connect", _sqlite_pragmas)
            storage.engine.dispose()  # the pooled connections predate the listener
        return storage
    except Exception as exc:
        raise FatalError(
            f"search.storage: cannot open {redact(url)!r} ({type(exc).__name__}: {exc}); check "
            "the URL, that the database server runs, and that its driver is installed "
            "(PostgreSQL: pip install psycopg2-binary)"
        ) from None


def direction(metric: str) -> str:
    return "maximize" if GREATER_IS_BETTER.get(metric, False) else "minimize"


def open_study(cfg: RunConfig, storage: RDBStorage, *, metric: str) -> optuna.Study:
    """Create the study, or load it when it exists (this is how runs resume)."""
    name = cfg.search.study_name or cfg.name
    try:
        storage.get_study_id_from_name(name)
        existed = True
    except KeyError:
        existed = False
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            sampler=SAMPLERS[cfg.search.sampler](cfg.search, cfg.seed),
            pruner=PRUNERS[cfg.search.pruner](cfg),
            direction=direction(metric),  # type: ignore[arg-type]
            load_if_exists=True,
        )
    except ValueError as exc:
        raise ConfigError(f"search: {exc}") from None
    if existed:  # a resumed run or a worker: never replay the first run's sequence
        study.sampler.reseed_rng()
    wanted = (
        optuna.study.StudyDirection.MAXIMIZE
        if direction(metric) == "maximize"
        else (optuna.study.StudyDirection.MINIMIZE)
    )
    if study.direction != wanted:
        raise ConfigError(
            f"search.study_name: study {name!r} in this storage optimizes in the other "
            f"direction; the metric {metric!r} wants {direction(metric)}. Use another name"
        )
    return study


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
