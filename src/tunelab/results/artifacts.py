"""What a study keeps per trial, in Optuna's artifact store (public API only).

Every trial keeps its out-of-fold predictions and epoch histories (small: one ``trial.npz``
with ``predictions`` and ``history``, JSON text); trials ranked in
the top ``keep_top_k`` also keep their fold models (``predictors.zip``: one predictor folder
per fold), which the ensembles and ``tunelab.load_predictor`` read. The store is a folder
(``RUN/artifacts`` by default) that ``optuna-dashboard --artifact-dir`` opens as it is.
A frozen backbone that fold models share (a linear probe's) is stored once, in the folder's
``backbones/`` (``tunelab.results.backbones``); the archives hold only what trained.
"""

from __future__ import annotations

import json
import logging
import tempfile
import zipfile
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.artifacts import FileSystemArtifactStore, download_artifact, upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial

from tunelab.results.backbones import FOLDER as BACKBONES
from tunelab.results.backbones import BackboneStore
from tunelab.results.predictor import AnyPredictor, load_predictor
from tunelab.results.trial_record import record

log = logging.getLogger("tunelab")
PREDICTORS, OOF, HISTORY = "predictors", "oof", "history"


class TrialArtifacts:
    """The per-trial files of one study.

    Args:
        directory: the artifact folder (made, and made again if someone deletes it).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.store = FileSystemArtifactStore(str(self.directory))
        # a frozen backbone the fold models share is stored once, beside the archives
        self.backbones = BackboneStore(self.directory / BACKBONES)
        self._removed: set[str] = set()

    def save(
        self,
        trial: optuna.Trial,
        *,
        oof: np.ndarray,
        histories: list[list[dict[str, Any]]],
        predictors: list[AnyPredictor] | None,
    ) -> dict[str, str]:
        """Upload the trial's files; returns their ids (the ``artifacts`` of its record)."""
        if not self.directory.is_dir():
            log.warning("artifact folder %s was missing; made it again", self.directory)
            self.directory.mkdir(parents=True, exist_ok=True)
        ids: dict[str, str] = {}
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            # one file for the small parts (one upload, one storage write): a holdout's
            # predictions are mostly NaN and compress well; the histories are JSON text
            small = folder / "trial.npz"
            np.savez_compressed(small, predictions=oof, history=np.array(json.dumps(histories)))
            ids[OOF] = ids[HISTORY] = upload_artifact(
                artifact_store=self.store, file_path=str(small), study_or_trial=trial
            )
            if predictors:
                for fold, predictor in enumerate(predictors):
                    predictor.save(folder / "predictors" / f"fold_{fold}", backbones=self.backbones)
                archive = zip_folder(folder / "predictors", folder / "predictors.zip")
                ids[PREDICTORS] = upload_artifact(
                    artifact_store=self.store, file_path=str(archive), study_or_trial=trial
                )
        return ids

    def oof(self, trial: FrozenTrial) -> np.ndarray:
        """The trial's out-of-fold predictions (rows x outputs, NaN where not validated)."""
        with tempfile.TemporaryDirectory() as tmp, np.load(self._fetch(trial, OOF, tmp)) as saved:
            return np.asarray(saved["predictions"])

    def histories(self, trial: FrozenTrial) -> list[list[dict[str, Any]]]:
        """The trial's epoch records, per fold."""
        with tempfile.TemporaryDirectory() as tmp:
            path = self._fetch(trial, HISTORY, tmp)
            if zipfile.is_zipfile(path):
                with np.load(path) as saved:
                    text = str(saved["history"])
            else:  # a study from before the two were one file
                text = path.read_text()
            data: list[list[dict[str, Any]]] = json.loads(text)
            return data

    def kept_predictors(self, trial: FrozenTrial) -> bool:
        """Whether the trial stored its fold models (they may have been removed since)."""
        return PREDICTORS in record(trial).get("artifacts", {})

    def has_predictors(self, trial: FrozenTrial) -> bool:
        """Whether the trial's fold models are still stored (the top-k pruning of any
        process may have removed them)."""
        artifact = record(trial).get("artifacts", {}).get(PREDICTORS)
        if artifact is None or artifact in self._removed:
            return False
        try:
            self.store.open_reader(artifact).close()
        except ArtifactNotFound:
            return False
        return True

    def predictors(self, trial: FrozenTrial, *, trust_code: bool = False) -> list[AnyPredictor]:
        """The trial's fold models, loaded (the files are unpacked into a temporary folder
        and read into memory)."""
        with tempfile.TemporaryDirectory() as tmp:
            archive = self._fetch(trial, PREDICTORS, tmp)
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(Path(tmp) / "unpacked")
            folds = sorted((Path(tmp) / "unpacked").iterdir(), key=lambda p: int(p.name[5:]))
            return [
                load_predictor(folder, trust_code=trust_code, backbones=self.backbones)
                for folder in folds
            ]

    def drop_predictors(self, trial: FrozenTrial) -> None:
        """Delete the trial's fold models (another worker may have done it already)."""
        artifact = record(trial).get("artifacts", {}).get(PREDICTORS)
        if artifact is None or artifact in self._removed:
            return
        with suppress(ArtifactNotFound):
            self.store.remove(artifact)
        self._removed.add(artifact)

    def _fetch(self, trial: FrozenTrial, key: str, folder: str) -> Path:
        ids = record(trial).get("artifacts", {})
        if key not in ids:
            raise ArtifactNotFound(f"trial {trial.number} kept no {key!r} artifact")
        path = Path(folder) / key
        download_artifact(artifact_store=self.store, artifact_id=ids[key], file_path=str(path))
        return path


def zip_folder(folder: Path, archive: Path) -> Path:
    """The folder's files in an uncompressed zip (weights do not compress; deflate costs)."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as bundle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                bundle.write(path, path.relative_to(folder))
    return archive
