"""Optuna's own storage, samplers and pruners, chosen by name (tunelab re-implements none).

The storage is a URL: SQLite inside the run directory by default, Optuna's journal file for
many processes on one machine, PostgreSQL (or any RDB URL Optuna takes) for studies shared
by workers on many machines. Heartbeats mark a trial whose process died as failed, and
``RetryHeartbeatStaleTrialCallback`` re-queues it. Trial artifacts go to a folder: the run
directory's by default, a shared one when workers run on several machines.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from tunelab import uris
from tunelab.config import RunConfig, SearchConfig
from tunelab.errors import ConfigError, FatalError
from tunelab.registry import PRUNERS, SAMPLERS
from tunelab.results.artifacts import TrialArtifacts
from tunelab.results.rundir import RunDir
from tunelab.search.space import grid
from tunelab.search.stale import HeartbeatRDBStorage, RetryStaleTrial, mark_stale
from tunelab.training.metrics import GREATER_IS_BETTER

FIELD = "search.storage"  # what errors about the storage name

# Samplers and pruners by name: ``tunelab.registry`` lists the names and points at these.


def tpe_sampler(cfg: RunConfig) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=cfg.seed)


def random_sampler(cfg: RunConfig) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=cfg.seed)


def grid_sampler(cfg: RunConfig) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GridSampler(grid(cfg.search.space), seed=cfg.seed)


def cmaes_sampler(cfg: RunConfig) -> optuna.samplers.BaseSampler:
    return optuna.samplers.CmaEsSampler(seed=cfg.seed)


def qmc_sampler(cfg: RunConfig) -> optuna.samplers.BaseSampler:
    return optuna.samplers.QMCSampler(seed=cfg.seed)


def gp_sampler(cfg: RunConfig) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=cfg.seed)


def successive_halving_pruner(cfg: RunConfig) -> optuna.pruners.BasePruner:
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


def median_pruner(cfg: RunConfig) -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)


def percentile_pruner(cfg: RunConfig) -> optuna.pruners.BasePruner:
    return optuna.pruners.PercentilePruner(25.0, n_startup_trials=3, n_warmup_steps=1)


def hyperband_pruner(cfg: RunConfig) -> optuna.pruners.BasePruner:
    return optuna.pruners.HyperbandPruner()


def wilcoxon_pruner(cfg: RunConfig) -> optuna.pruners.BasePruner:
    return optuna.pruners.WilcoxonPruner(p_threshold=0.1)


def none_pruner(cfg: RunConfig) -> optuna.pruners.BasePruner:
    return optuna.pruners.NopPruner()


def storage_url(cfg: RunConfig, run_dir: Path) -> str:
    """The storage as configured (``${NAME}`` references unexpanded), defaults filled in."""
    storage, run = cfg.search.storage, RunDir(run_dir)
    if storage is None:
        return f"sqlite:///{run.study_db.resolve()}"
    if storage == "journal":
        return f"journal:{run.study_log.resolve()}"
    return storage


def make_storage(url: str, cfg: SearchConfig) -> optuna.storages.BaseStorage:
    """The storage behind ``url``, with heartbeats so a dead worker's trial is retried.

    ``journal:PATH`` is Optuna's journal file (many processes on one machine); anything else
    is an SQLAlchemy URL for Optuna's RDB storage: SQLite, PostgreSQL (``postgresql://``
    uses psycopg 3), MySQL. ``${NAME}`` in the URL is replaced by the environment variable
    NAME here, at connection time, so a password never sits in a config or a log.
    """
    if url.startswith("journal:"):
        return journal_storage(Path(uris.expand(url.removeprefix("journal:"), field=FIELD)), cfg)
    return rdb_storage(url, cfg)


def rdb_storage(url: str, cfg: SearchConfig) -> RDBStorage:
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
    connect = uris.expand(url, field=FIELD)
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna, and needed
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = HeartbeatRDBStorage(
                connect,
                engine_kwargs=engine,
                heartbeat_interval=cfg.heartbeat_interval,
                grace_period=_grace_period(cfg),
                heartbeat_stale_trial_callback=RetryStaleTrial(cfg.max_retry),
            )
        if sqlite:
            sqlalchemy.event.listen(storage.engine, "connect", _sqlite_pragmas)
            storage.engine.dispose()  # the pooled connections predate the listener
        return storage
    except Exception as exc:
        raise FatalError(_cannot_open(url, connect, exc)) from None


def _grace_period(cfg: SearchConfig) -> int:
    return cfg.grace_period or 2 * cfg.heartbeat_interval


def _cannot_open(url: str, connect: str, exc: Exception) -> str:
    """Why a storage did not open, with the fix, and with no password in it."""
    missing = _missing_module(exc)
    if missing is not None:
        hint = DRIVER_HINTS.get(missing, f"pip install {missing}")
        return (
            f"search.storage: {redact(url)!r} needs the database driver {missing!r}, which is "
            f"not installed: {hint}"
        )
    detail = uris.scrub(f"{type(exc).__name__}: {exc}", connect)  # drivers may echo it
    return (
        f"search.storage: cannot open {redact(url)!r} ({detail}); check the URL, that the "
        "database server runs and accepts this user, and that the password is right"
    )


# the module SQLAlchemy imports for a URL's dialect -> how to install it
DRIVER_HINTS = {
    "psycopg": "pip install -c constraints.txt -e '.[postgres]' (psycopg 3, which "
    "postgresql:// uses)",
    "psycopg2": "pip install psycopg2-binary, or write postgresql:// and install tunelab's "
    "postgres extra (pip install -c constraints.txt -e '.[postgres]')",
}


def _missing_module(exc: BaseException | None) -> str | None:
    """The top-level name of a module whose import failed somewhere in ``exc``'s causes."""
    while exc is not None:
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            return exc.name.split(".")[0]
        exc = exc.__cause__ or exc.__context__
    return None


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


def journal_storage(path: Path, cfg: SearchConfig) -> JournalStorage:
    """Optuna's journal file: appends under a file lock, the storage Optuna recommends for
    many processes on one machine. The file needs a local disk (its lock is not safe on
    every network file system); use PostgreSQL across machines."""
    if not path.parent.is_dir():
        raise ConfigError(
            f"search.storage: the folder of the journal file {str(path)!r} does not exist; "
            "create it or give another path (journal alone keeps it in the run directory)"
        )
    try:
        return HeartbeatJournalStorage(
            JournalFileBackend(str(path)),
            heartbeat_interval=cfg.heartbeat_interval,
            grace_period=_grace_period(cfg),
            stale_trial_callback=RetryStaleTrial(cfg.max_retry),
        )
    except (OSError, ValueError) as exc:
        raise FatalError(
            f"search.storage: cannot open the journal file {str(path)!r} "
            f"({type(exc).__name__}: {exc}); check that it is a tunelab or Optuna journal"
        ) from None


StaleTrialCallback = Callable[[optuna.Study, FrozenTrial], None]


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's ``JournalStorage`` with the heartbeats its RDB storage has (Optuna 5.1's
    journal has none, optuna/optuna#6615): each running trial's last beat is a system
    attribute in the journal, so Optuna's own heartbeat thread, ``fail_stale_trials`` and
    ``RetryHeartbeatStaleTrialCallback`` retry a trial whose process died, as they do on
    SQLite and PostgreSQL. ``BaseHeartbeat`` is Optuna's interface for a storage's
    heartbeats (a private module: a test kills a worker to catch a change)."""

    def __init__(
        self,
        backend: JournalFileBackend,
        *,
        heartbeat_interval: int,
        grace_period: int,
        stale_trial_callback: StaleTrialCallback,
    ) -> None:
        super().__init__(backend)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.stale_trial_callback = stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:
        # another worker may have failed the trial already (a pause past the grace period)
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            beat = trial.system_attrs.get(HEARTBEAT_ATTR)
            if beat is None:  # like the RDB storage: a trial that never beat is not judged
                continue
            # a retried trial inherits its dead original's last beat; its own start counts
            started = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
            if now - max(float(beat), started) > self.grace_period:
                stale.append(self.get_trial_id_from_study_id_trial_number(study_id, trial.number))
        mark_stale(self, stale, self.grace_period)
        return stale

    def get_heartbeat_interval(self) -> int:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> StaleTrialCallback:
        return self.stale_trial_callback


HEARTBEAT_ATTR = "tunelab:heartbeat"


def redact(url: str) -> str:
    """The URL for messages and logs: a literal password shown as ``***``; a URL with no
    password, or with a ``${NAME}`` reference in its place, shown as it is."""
    return uris.masked(url)


def direction(metric: str) -> str:
    return "maximize" if GREATER_IS_BETTER.get(metric, False) else "minimize"


def open_study(
    cfg: RunConfig, storage: optuna.storages.BaseStorage, *, metric: str
) -> optuna.Study:
    """Create the study, or load it when it exists (this is how runs resume)."""
    name = cfg.search.study_name or cfg.name
    sampler = SAMPLERS.get(cfg.search.sampler, field="search.sampler")(cfg)
    pruner = PRUNERS.get(cfg.search.pruner, field="search.pruner")(cfg)
    try:
        try:
            study = optuna.create_study(
                storage=storage,
                study_name=name,
                sampler=sampler,
                pruner=pruner,
                direction=direction(metric),  # type: ignore[arg-type]
            )
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(
                study_name=name, storage=storage, sampler=sampler, pruner=pruner
            )
            created = False
    except ValueError as exc:
        raise ConfigError(f"search: {exc}") from None
    # a resumed run or a worker never replays the first run's sequence; asking the storage
    # whether the study exists before creating it would let workers started together all
    # see "no study" and all draw the seed's sequence
    if not created:
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


def artifact_folder(cfg: RunConfig, run_dir: Path) -> Path:
    """Where trials keep their artifacts: ``search.artifacts``, else ``RUN/artifacts``."""
    folder = Path(cfg.search.artifacts) if cfg.search.artifacts else RunDir(run_dir).artifacts
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FatalError(
            f"search.artifacts: cannot create the folder {str(folder)!r} ({exc.strerror}); "
            "give a folder every worker can write to"
        ) from None
    return folder


def open_run_study(
    cfg: RunConfig, run_dir: Path, *, metric: str
) -> tuple[optuna.Study, TrialArtifacts]:
    """The study of a run directory (created or joined) and its trials' artifacts; the main
    process and every worker open it so."""
    url = storage_url(cfg, run_dir)
    study = open_study(cfg, make_storage(url, cfg.search), metric=metric)
    with warnings.catch_warnings():  # experimental in Optuna; the dashboard shows the name
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([metric])
    study.set_user_attr("metric", metric)
    study.set_user_attr("storage", redact(url))
    return study, TrialArtifacts(artifact_folder(cfg, run_dir))
