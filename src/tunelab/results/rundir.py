"""The run directory: one folder holds everything a run produced (see
``docs/architecture.md``, "The run directory").

``RunDir`` knows every file name; ``open_run_dir`` is the one function that creates (or
reuses, or empties) a run directory. A run owns only its directory: tunelab marks the
folders it makes with ``.tunelab``, refuses to write into a folder that holds anything else,
and ``--overwrite`` removes only tunelab's own files from a folder that carries the mark
(inside ``final/``, ``artifacts/`` and ``features/`` too: a file of yours there stays).
One process writes a run directory at a time: ``open_run_dir`` takes its lock
(``run.lock``, see ``runlock``) and ``release_run_dir`` gives it back.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tunelab import __version__
from tunelab.config import RunConfig
from tunelab.errors import FatalError
from tunelab.results import runlock
from tunelab.results.environment import environment

MARKER = ".tunelab"
FINAL = "final"  # the predictor's folder in a run directory
MANIFEST = "predictor.json"  # what a predictor folder holds first: its kind, files, model


@dataclass(frozen=True)
class RunDir:
    """The files of one run directory (``runs/NAME`` by default)."""

    path: Path

    # -- written by every run ----------------------------------------------------------------
    @property
    def marker(self) -> Path:
        return self.path / MARKER

    @property
    def lock(self) -> Path:
        """Held by the one process that writes this run directory (``runlock``)."""
        return self.path / "run.lock"

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def log(self) -> Path:
        return self.path / "run.log"

    @property
    def environment(self) -> Path:
        """Python, platform and package versions of the run (for the report)."""
        return self.path / "environment.json"

    # -- the final predictor and its one evaluation on the test rows ----------------------------
    @property
    def final(self) -> Path:
        return self.path / FINAL

    @property
    def history(self) -> Path:
        return self.path / "history.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def test_inputs(self) -> Path:
        return self.path / "test_inputs.csv"

    @property
    def test_predictions(self) -> Path:
        return self.path / "test_predictions.csv"

    @property
    def oof(self) -> Path:
        """Out-of-fold predictions and fold scores of ``tunelab train`` with ``cv: kfold``."""
        return self.path / "oof.npz"

    @property
    def folds(self) -> Path:
        return self.path / "folds.json"

    @property
    def lr_find(self) -> Path:
        """``tunelab lr-find``: the sweep's learning rates, losses and suggestion."""
        return self.path / "lr_find.json"

    @property
    def lr_find_plot(self) -> Path:
        return self.path / "lr_find.png"

    @property
    def features(self) -> Path:
        """Tokens and frozen-backbone features computed once per row, shared by every fit."""
        return self.path / "features"

    # -- tunelab export ------------------------------------------------------------------------
    @property
    def onnx(self) -> Path:
        """The final predictor as ONNX; its inputs are described in ``model.onnx.json``."""
        return self.path / "model.onnx"

    @property
    def onnx_inputs(self) -> Path:
        return self.path / "model.onnx.json"

    @property
    def torchscript(self) -> Path:
        """The final predictor as TorchScript; its inputs are described in ``model.pt.json``."""
        return self.path / "model.pt"

    @property
    def torchscript_inputs(self) -> Path:
        return self.path / "model.pt.json"

    # -- the study -------------------------------------------------------------------------
    @property
    def study_db(self) -> Path:
        return self.path / "study.db"

    @property
    def study_log(self) -> Path:
        """The study as an Optuna journal file (``search.storage: journal``)."""
        return self.path / "study.log"

    @property
    def artifacts(self) -> Path:
        return self.path / "artifacts"

    @property
    def leaderboard(self) -> Path:
        return self.path / "leaderboard.csv"

    @property
    def best_params(self) -> Path:
        return self.path / "best_params.json"

    @property
    def importances(self) -> Path:
        return self.path / "importances.json"

    @property
    def cores(self) -> Path:
        """``--jobs auto``: the trials side by side it chose, and the measurements of the
        recipe's model it chose on (kept, so a resumed study does not measure again)."""
        return self.path / "cores.json"

    # -- later stages ------------------------------------------------------------------------
    @property
    def ensemble(self) -> Path:
        return self.path / "ensemble.json"

    @property
    def ladder(self) -> Path:
        return self.path / "ladder.json"

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    def own_files(self) -> list[Path]:
        """Every path tunelab may write here (what ``--overwrite`` may remove)."""
        names = [getattr(self, name) for name in _FILE_PROPERTIES]
        sqlite_sidecars = [self.path / f"study.db{suffix}" for suffix in ("-wal", "-shm")]
        return [*names, *sqlite_sidecars]

    def logging(self) -> AbstractContextManager[None]:
        """tunelab's and Optuna's log records go to ``run.log`` while the block runs."""
        from tunelab.results.logfile import logging_to  # Optuna loads only for a run's log

        return logging_to(self.log)

    def started_study(self) -> bool:
        """Whether a study has begun here (its database or a trial's artifacts exist)."""
        artifacts = self.artifacts
        stored = self.study_db.is_file() or self.study_log.is_file()
        return stored or (artifacts.is_dir() and any(artifacts.iterdir()))


_FILE_PROPERTIES = [
    name for name, value in vars(RunDir).items() if isinstance(value, property) and name != "marker"
] + ["marker"]


def default_path(cfg: RunConfig) -> Path:
    return Path("runs") / cfg.name


class RunDirBusy(FatalError):
    """Another process holds the run directory's lock (``holder`` says which)."""

    def __init__(self, message: str, *, run: RunDir, holder: runlock.Holder) -> None:
        super().__init__(message)
        self.run, self.holder = run, holder


def open_run_dir(
    cfg: RunConfig,
    out: str | Path | None,
    *,
    overwrite: bool = False,
    resume: Callable[[RunDir], bool] | None = None,
    study: bool = False,
) -> RunDir:
    """Create the run directory (default ``runs/NAME``), take its lock and write
    ``config.yaml`` into it. The caller gives the lock back with ``release_run_dir``.

    Args:
        cfg: the resolved config, written to ``config.yaml``.
        out: the directory; default ``runs/NAME``.
        overwrite: empty a previous run's directory first (tunelab's files only).
        resume: for a directory that holds a run of tunelab's, whether to continue it
            (``tunelab run`` resumes its own study); None: never.
        study: this process runs a study here, whose search others may join.

    Raises:
        RunDirBusy: another process holds the directory's lock (it is writing this run).
        FatalError: the directory holds files tunelab did not make, or a run that neither
            ``overwrite`` nor ``resume`` allows replacing; or it cannot be created.
    """
    run = RunDir(Path(out) if out is not None else default_path(cfg))
    held = False
    try:
        _claim(run, overwrite=overwrite, study=study)
        held = True
        if run.path.is_dir() and _holds_a_run(run):
            if overwrite:
                _remove_own_files(run)
            elif resume is None or not resume(run):
                raise FatalError(
                    f"run directory {str(run.path)!r} already holds a run; pass --out "
                    "OTHER_DIR to keep it, or --overwrite to replace it"
                )
        _write_atomically(run.config, cfg.to_yaml())
        write_json(run.environment, environment())
    except BaseException as exc:
        if held:
            release_run_dir(run)
        if isinstance(exc, OSError):
            raise FatalError(f"cannot write the run directory {str(run.path)!r}: {exc}") from None
        raise
    return run


def release_run_dir(run: RunDir) -> None:
    """Give back the lock ``open_run_dir`` took (another process may then write here)."""
    runlock.release(run.lock)


def _claim(run: RunDir, *, overwrite: bool, study: bool) -> None:
    """Check that the folder is new, empty or tunelab's, mark it, and take its lock."""
    if run.path.exists() and not run.path.is_dir():
        raise FatalError(f"run directory {str(run.path)!r} is a file; pass --out OTHER_DIR")
    if run.path.is_dir() and any(run.path.iterdir()) and not run.marker.is_file():
        raise FatalError(
            f"{str(run.path)!r} already holds files that tunelab did not make (it has no "
            f"{MARKER} marker), and tunelab never writes into or deletes a folder it did "
            "not make; pass --out with a new or empty directory"
        )
    run.path.mkdir(parents=True, exist_ok=True)
    if not run.marker.is_file():  # before the lock: a folder with a lock file is marked
        write_json(run.marker, {"tunelab": __version__, "created": _now()})
    holder = runlock.acquire(run.lock, study=study)
    if holder is None:
        return
    what = "--overwrite would delete files it is writing" if overwrite else "it is writing there"
    raise RunDirBusy(
        f"run directory {str(run.path)!r} is in use: {holder} holds its lock, and {what}. "
        f"Wait for it to end (or stop it: kill {holder.pid or 'PID'}), or pass --out OTHER_DIR",
        run=run,
        holder=holder,
    )


def _holds_a_run(run: RunDir) -> bool:
    """Whether the folder holds anything besides its mark and lock."""
    return any(p not in (run.marker, run.lock) for p in run.path.iterdir())


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` so that a reader sees the old file or the new one, never half."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


# What tunelab writes inside its folders (a predictor in final/, Optuna's artifact ids in
# artifacts/, cache entries in features/): --overwrite removes these and keeps the rest.
_PREDICTOR_FILES = re.compile(r"predictor\.json|model\.safetensors|forest\.npz")
_PREDICTOR_FOLDERS = re.compile(r"tokenizer|backbone")
_MEMBER_FOLDER = re.compile(r"member_\d+")
_CACHE_ENTRY = re.compile(r"\.?(tokens|features|lr)-[0-9a-f]{40}(\.\d+\.[0-9a-f]{32})?\.(npz|lock)")
_ARTIFACT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _remove_own_files(run: RunDir) -> None:
    """Remove tunelab's files (and folders) from a marked run directory; anything else the
    user put there, also inside tunelab's folders, stays."""
    inside = {run.final: _remove_predictor, run.artifacts: _remover(_ARTIFACT_ID)}
    inside[run.features] = _remover(_CACHE_ENTRY)
    for path in run.own_files():
        if path in (run.marker, run.lock):
            continue
        if path in inside and path.is_dir() and not path.is_symlink():
            inside[path](path)
            _remove_if_empty(path)
        elif path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _remove_predictor(folder: Path) -> None:
    """A predictor folder's own files; an ensemble's members are predictor folders too."""
    for path in folder.iterdir():
        name, real_dir = path.name, path.is_dir() and not path.is_symlink()
        if real_dir and _MEMBER_FOLDER.fullmatch(name):
            _remove_predictor(path)
            _remove_if_empty(path)
        elif real_dir and _PREDICTOR_FOLDERS.fullmatch(name):
            shutil.rmtree(path)
        elif not real_dir and _PREDICTOR_FILES.fullmatch(name):
            path.unlink()


def _remover(pattern: re.Pattern[str]) -> Callable[[Path], None]:
    def remove(folder: Path) -> None:
        for path in folder.iterdir():
            if pattern.fullmatch(path.name) and not (path.is_dir() and not path.is_symlink()):
                path.unlink()

    return remove


def _remove_if_empty(folder: Path) -> None:
    if not any(folder.iterdir()):
        folder.rmdir()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_json(path: Path, data: Any) -> None:
    """Write JSON with non-finite floats as null (JSON has no NaN)."""
    path.write_text(json.dumps(_finite(data), indent=2) + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
