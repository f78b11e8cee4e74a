"""One trial: suggest parameters, fit a fresh model per fold, store what the trial produced.

A trial's value is the mean of its fold scores (each the selection metric at the fold's best
epoch). Fold scores, their spread, out-of-fold predictions, histories and the first fold's
predictor are kept with the trial; any error becomes a failed trial with its reason, and the
study goes on.
"""

from __future__ import annotations

import json
import tempfile
import traceback
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from tunelab.config import RunConfig
from tunelab.data import take
from tunelab.errors import TrialFailed, TunelabError
from tunelab.pipeline import Fitted, Prepared, fit_on_rows
from tunelab.results.predictor import outputs_to_predictions
from tunelab.search.space import apply_params, suggest
from tunelab.training.crossval import kfold_splits
from tunelab.training.loop import predict_outputs

# (trial number, fold, folds, epoch record) -> None: the live view's hook
EpochHook = Callable[[int, int, int, dict[str, Any]], None]


def cv_splits(cfg: RunConfig, prepared: Prepared) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train, validation) row splits every trial is estimated on."""
    split = prepared.split
    if cfg.cv.strategy == "holdout":
        return [(split.train, split.validation)]
    rows = np.sort(np.concatenate([split.train, split.validation]))
    target = prepared.target
    labels = target.values[rows] if target.classes is not None and cfg.cv.stratified else None
    groups = prepared.raw.groups[rows] if prepared.raw.groups is not None else None
    return kfold_splits(
        rows, labels, folds=cfg.cv.folds, repeats=cfg.cv.repeats, groups=groups, seed=cfg.seed
    )


@dataclass
class Objective:
    """Callable Optuna objective over a prepared dataset."""

    cfg: RunConfig
    prepared: Prepared
    store: FileSystemArtifactStore
    on_epoch: EpochHook | None = None

    def __post_init__(self) -> None:
        self.splits = cv_splits(self.cfg, self.prepared)

    def __call__(self, trial: optuna.Trial) -> float:
        try:
            return self._run(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr("fail_reason", failure_reason(exc))
            raise

    def _run(self, trial: optuna.Trial) -> float:
        params = suggest(trial, self.cfg.search.space, self.cfg)
        cfg = apply_params(self.cfg, params)
        metric = self.prepared.metric
        per_fold = self.cfg.cv.prune_on == "fold" or self.cfg.search.pruner == "wilcoxon"
        target = self.prepared.target
        oof = np.full((len(target.values), max(target.num_outputs, 1)), np.nan)
        scores, best_epochs, histories = [], [], []
        first_predictor = None
        for fold, (train_rows, val_rows) in enumerate(self.splits):
            callbacks = [self._epoch_hook(trial, fold, prune=not per_fold and fold == 0)]
            fitted = fit_on_rows(cfg, self.prepared, train_rows, val_rows, callbacks=callbacks)
            result = fitted.result
            if result.stop_reason == "non_finite":
                raise TrialFailed(
                    f"non-finite loss in fold {fold} at epoch {len(result.history) - 1}; "
                    "lower train.lr or add regularization.grad_clip",
                    reason="non_finite",
                )
            score = float(result.history[result.best_epoch].get(metric, np.nan))
            if not np.isfinite(score):
                raise TrialFailed(f"fold {fold}: {metric} is not finite", reason="non_finite")
            scores.append(score)
            best_epochs.append(result.best_epoch + 1)
            histories.append(result.history)
            oof[val_rows] = self._predictions(fitted, val_rows)
            if first_predictor is None:
                first_predictor = fitted.predictor
            if per_fold:
                trial.report(score, fold)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after fold {fold}")
        trial.set_user_attr("fold_scores", scores)
        # one holdout score has no spread to report (0.0 would read as "certain")
        trial.set_user_attr("std", float(np.std(scores, ddof=1)) if len(scores) > 1 else None)
        trial.set_user_attr("best_epochs", best_epochs)
        assert first_predictor is not None
        value = float(np.mean(scores))
        # a checkpoint that would not rank in the top k is never written (it would be deleted)
        keep = self._ranks_in_top_k(trial.study, value)
        self._store(trial, first_predictor if keep else None, oof, histories)
        return value

    def _ranks_in_top_k(self, study: optuna.Study, value: float) -> bool:
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        better = sum(
            (t.value or 0.0) > value if maximize else (t.value or 0.0) < value for t in complete
        )
        return better < self.cfg.search.keep_top_k

    def _epoch_hook(
        self, trial: optuna.Trial, fold: int, *, prune: bool
    ) -> Callable[[dict[str, Any]], None]:
        folds, metric = len(self.splits), self.prepared.metric

        def hook(record: dict[str, Any]) -> None:
            if self.on_epoch is not None:
                self.on_epoch(trial.number, fold, folds, record)
            if prune and metric in record and np.isfinite(record[metric]):
                trial.report(float(record[metric]), record["epoch"])
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {record['epoch']}")

        return hook

    def _predictions(self, fitted: Fitted, rows: np.ndarray) -> np.ndarray:
        """Predictions on the validation rows: the loop's own outputs for the weights the
        model kept (no second pass), else a prediction from the raw rows."""
        predictor = fitted.predictor
        outputs = fitted.result.validation_outputs
        if outputs is None or len(outputs) != len(rows):
            features = predictor.encoder.transform(take(self.prepared.raw.inputs, rows))
            outputs = predict_outputs(predictor.model, features)
        values = outputs_to_predictions(
            outputs, task=predictor.task, target_scale=predictor.target_scale
        )
        return values.reshape(len(rows), -1)

    def _store(
        self,
        trial: optuna.Trial,
        predictor: Any | None,
        oof: np.ndarray,
        histories: list[list[dict[str, Any]]],
    ) -> None:
        ids: dict[str, str] = {}
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            files = [("oof", folder / "oof.npz"), ("history", folder / "history.json")]
            if predictor is not None:
                predictor.save(folder / "predictor")
                archive = zip_folder(folder / "predictor", folder / "predictor.zip")
                files.insert(0, ("predictor", archive))
            # every trial keeps its predictions; a holdout's are mostly NaN and compress well
            np.savez_compressed(folder / "oof.npz", predictions=oof)
            (folder / "history.json").write_text(json.dumps(histories))
            for key, path in files:
                ids[key] = upload_artifact(
                    artifact_store=self.store, file_path=str(path), study_or_trial=trial
                )
        trial.set_user_attr("artifacts", ids)


def zip_folder(folder: Path, archive: Path) -> Path:
    """The folder's files in an uncompressed zip (weights do not compress; deflate costs)."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as bundle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                bundle.write(path, path.relative_to(folder))
    return archive


def failure_reason(exc: BaseException) -> str:
    """One line saying why a trial failed (a user error's message, or the exception type)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return "out of memory: lower train.batch_size or the model size"
    if isinstance(exc, TunelabError):
        return f"{type(exc).__name__}: {exc}".replace("\n", " ")
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    place = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
    return f"{type(exc).__name__}: {exc}{place}".replace("\n", " ")
