"""TensorBoard: one folder of event files per trial (``trial_0003``: per-epoch scalars and
the trial's parameters with its score in the HParams view), and ``final`` (the test scores;
for ``tunelab train`` also the fit's curves), all under ``LOGDIR/NAME-STARTED``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tunelab.config import RunConfig
from tunelab.errors import FatalError
from tunelab.optional import optional_import
from tunelab.reach import folder_problem
from tunelab.tracking.records import FinalRecord, Opening, Start, TrialRecord, epoch_values

PREFIX = "trial_"
PARTIAL = ".partial"  # a trial's folder while it is written: renamed when complete


def start(cfg: RunConfig, opening: Opening) -> Start:
    """``tracking.tensorboard``: a ``TensorBoardTracker`` writing into FOLDER/LABEL."""
    assert cfg.tracking.tensorboard is not None  # Tracking.open starts only those named
    folder = Path(cfg.tracking.tensorboard) / opening.label
    return Start(str(folder), writer_class, lambda: TensorBoardTracker(folder))


class TensorBoardTracker:
    """Args:
    folder: where this study's (or fit's) folders go; made when missing, and checked to
        be writable before the run.
    """

    name = "tensorboard"

    def __init__(self, folder: Path) -> None:
        self.writer_class = writer_class()
        self.folder = folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
            problem = folder_problem(folder)
        except OSError as exc:
            problem = f"cannot make {str(folder)!r} ({exc.strerror or exc})"
        if problem is not None:
            raise FatalError(f"tracking.tensorboard: {problem}; give a folder you can write to")

    def logged(self) -> set[int]:
        return {
            int(path.name[len(PREFIX) :])
            for path in self.folder.glob(f"{PREFIX}*")
            if path.is_dir() and path.name[len(PREFIX) :].isdigit()
        }

    def trial(self, record: TrialRecord) -> None:
        done = self.folder / f"{PREFIX}{record.number:04d}"
        hparams = {k: _hparam(v) for k, v in record.params.items()}
        scores = {"hparam/value": record.value} if record.value is not None else {}
        self._write(done, record.curves, hparams=hparams or None, scores=scores)

    def final(self, record: FinalRecord) -> None:
        self._write(self.folder / "final", record.curves, scores=dict(record.scores))

    def _write(
        self,
        done: Path,
        curves: list[list[dict[str, Any]]],
        *,
        scores: dict[str, float],
        hparams: dict[str, Any] | None = None,
    ) -> None:
        """Write into ``done.partial``, then rename: a folder without the suffix is whole."""
        partial = done.with_name(done.name + PARTIAL)
        shutil.rmtree(partial, ignore_errors=True)
        writer = self.writer_class(str(partial))
        try:
            for fold, history in enumerate(curves):
                prefix = f"fold_{fold}/" if len(curves) > 1 else ""
                for record in history:
                    step = int(record.get("epoch", 0))
                    for name, value in epoch_values(record).items():
                        writer.add_scalar(f"{prefix}{name}", value, step)
            if hparams is not None:
                # run_name ".": the HParams entry sits with the trial's scalars
                writer.add_hparams(hparams, scores, run_name=".")
            else:
                for name, value in scores.items():
                    writer.add_scalar(name, value, 0)
        finally:
            writer.close()
        if done.exists():
            shutil.rmtree(done)
        partial.replace(done)


def writer_class() -> Any:
    """torch's ``SummaryWriter`` (its package imported, or the install hint raised)."""
    return optional_import(
        "torch.utils.tensorboard",
        package="tensorboard",
        extra="tensorboard",
        purpose="tracking.tensorboard",
    ).SummaryWriter


def _hparam(value: Any) -> Any:
    """TensorBoard takes numbers, text and booleans."""
    return value if isinstance(value, int | float | str | bool) else str(value)
