"""From a config to a trained predictor: prepare the data once, fit on rows, write the run.

``prepare`` loads and splits the data; ``fit_on_rows`` builds a fresh model and trains it on
any subset of rows (the search calls it per trial and per fold); ``train`` is what
``tunelab train`` does: one fit, then one evaluation on the held-out test rows.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tunelab.config import RunConfig
from tunelab.data import RawData, Split, Target, encode_target, load_data, make_split, take
from tunelab.data.encoding import fit_encoder
from tunelab.errors import ConfigError
from tunelab.models import ModelRequest, build_model
from tunelab.results.predictor import Predictor, array_columns, outputs_to_predictions
from tunelab.results.rundir import run_directory, write_json
from tunelab.techniques import regularization
from tunelab.techniques.plan import build_plan
from tunelab.training.batching import TensorData
from tunelab.training.device import check_device
from tunelab.training.loop import EpochCallback, FitResult, fit
from tunelab.training.losses import loss_function
from tunelab.training.metrics import (
    GREATER_IS_BETTER,
    bootstrap_interval,
    check_metric,
    compute_metrics,
    default_metric,
)


@dataclass(frozen=True)
class Prepared:
    """The loaded data, its encoded target and the split; shared by every fit."""

    raw: RawData
    target: Target
    split: Split
    metric: str

    @property
    def input_columns(self) -> list[str]:
        if isinstance(self.raw.inputs, pd.DataFrame):
            return [str(c) for c in self.raw.inputs.columns]
        return []


@dataclass
class Fitted:
    predictor: Predictor
    result: FitResult
    seconds: float


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a config and seed give the same metrics on CPU."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def prepare(cfg: RunConfig) -> Prepared:
    """Load the data, encode the target and set the test rows aside."""
    check_device(cfg.train.device)
    raw = load_data(cfg.data)
    target = encode_target(raw, task=cfg.data.task)
    metric = cfg.train.metric or default_metric(target.task)
    check_metric(metric, target.task)
    monitor = cfg.early_stopping.monitor
    if monitor not in ("metric", "val_loss", "train_loss"):
        if monitor not in GREATER_IS_BETTER:
            raise ConfigError(
                f"early_stopping.monitor: unknown value {monitor!r}; use 'metric', "
                "'val_loss' or a metric name"
            )
        check_metric(monitor, target.task, field="early_stopping.monitor")
    split = make_split(
        target,
        test_size=cfg.data.test_size,
        validation_size=cfg.data.validation_size,
        seed=cfg.seed,
        origin=raw.origin,
        groups=raw.groups,
    )
    return Prepared(raw=raw, target=target, split=split, metric=metric)


def fit_on_rows(
    cfg: RunConfig,
    prepared: Prepared,
    train_rows: np.ndarray,
    validation_rows: np.ndarray | None,
    *,
    callbacks: list[EpochCallback] | None = None,
    trust_code: bool = False,
) -> Fitted:
    """Build a fresh model and train it on ``train_rows``, validating on ``validation_rows``.

    ``trust_code``: a ``py:`` architecture named inside a checkpoint may run (--trust-code).
    """
    started = time.perf_counter()
    seed_everything(cfg.seed)
    raw, target = prepared.raw, prepared.target
    train_inputs = take(raw.inputs, train_rows)
    reg = regularization.effective(cfg.regularization)

    def request(input_shape: tuple[int, ...]) -> ModelRequest:
        return ModelRequest(
            input_shape=input_shape,
            num_outputs=target.num_outputs,
            modality=raw.modality,
            dropout=reg.dropout,
            batch_norm=cfg.batch_norm.enabled,
            head_batch_norm=cfg.batch_norm.head,
            scratch=cfg.finetuning.strategy == "scratch",
            trust_code=trust_code,
        )

    if raw.modality == "text":
        # the tokenizer comes with the model, so the model is built first
        built = build_model(cfg.model, request((cfg.data.max_length,)))
        encoder = fit_encoder(
            "text", train_inputs, tokenizer=built.tokenizer, max_length=cfg.data.max_length
        )
    else:
        encoder = fit_encoder(raw.modality, train_inputs, categorical=cfg.data.categorical)
        built = build_model(cfg.model, request(encoder.input_shape))
    plan = build_plan(
        cfg, task=target.task, modality=raw.modality, encoder=encoder, tokenizer=built.tokenizer
    )
    scale = None
    if target.task == "regression":
        values = target.values[train_rows]
        scale = (float(values.mean()), float(values.std() or 1.0))

    def tensors(rows: np.ndarray) -> TensorData:
        y = target.values[rows]
        if scale is not None:
            y_tensor = torch.from_numpy(((y - scale[0]) / scale[1]).astype(np.float32))
        else:
            y_tensor = torch.from_numpy(y)
        return TensorData(encoder.transform(take(raw.inputs, rows)), y_tensor)

    train_data = tensors(train_rows)
    val_data = tensors(validation_rows) if validation_rows is not None else None
    val_truth = target.values[validation_rows] if validation_rows is not None else None

    def score(outputs: np.ndarray) -> dict[str, float]:
        assert val_truth is not None
        predicted = outputs_to_predictions(outputs, task=target.task, target_scale=scale)
        return compute_metrics(target.task, val_truth, predicted)

    size_mb = (train_data.nbytes + (val_data.nbytes if val_data else 0)) / 2**20
    result = fit(
        built.module,
        train_data,
        val_data,
        train_cfg=cfg.train,
        early_cfg=cfg.early_stopping,
        loss_fn=loss_function(target.task),
        score=score,
        metric=prepared.metric,
        seed=cfg.seed,
        stream=size_mb > cfg.data.stream_above_mb,
        callbacks=callbacks,
        plan=plan,
    )
    columns = prepared.input_columns
    if raw.modality == "text":
        columns = [cfg.data.text_column or "text"]
    elif raw.modality in ("image", "signal"):
        columns = array_columns(encoder.input_shape)
    info: dict[str, Any] = {"notes": built.notes, "techniques": plan.describe()}
    if cfg.data.source.startswith("images:"):
        # new image files are decoded and resized exactly as the training images were
        info["image"] = {"size": list(cfg.data.image_size), "mode": cfg.data.image_mode}
    predictor = Predictor(
        model=built.module,
        built=built,
        encoder=encoder,
        task=target.task,
        classes=target.classes,
        modality=raw.modality,
        input_columns=columns,
        target_scale=scale,
        info=info,
    )
    return Fitted(predictor=predictor, result=result, seconds=time.perf_counter() - started)


@dataclass
class TrainSummary:
    run_dir: Path
    metrics: dict[str, Any]
    fitted: Fitted


def train(
    cfg: RunConfig,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    callbacks: list[EpochCallback] | None = None,
    prepared: Prepared | None = None,
    trust_code: bool = False,
) -> TrainSummary:
    """Fine-tune once on the train rows, evaluate once on the test rows, write the run.

    Writes ``config.yaml``, ``history.json``, ``metrics.json``, ``test_inputs.csv``,
    ``test_predictions.csv`` and ``final/`` (the predictor) into the run directory.
    """
    run_dir = run_directory(cfg, out, overwrite=overwrite)
    prepared = prepared or prepare(cfg)
    split = prepared.split
    fitted = fit_on_rows(
        cfg, prepared, split.train, split.validation, callbacks=callbacks, trust_code=trust_code
    )
    metrics = evaluate_and_write(run_dir, prepared, fitted, seed=cfg.seed)
    return TrainSummary(run_dir=run_dir, metrics=metrics, fitted=fitted)


def evaluate_and_write(
    run_dir: Path,
    prepared: Prepared,
    fitted: Fitted,
    *,
    seed: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Save the predictor, evaluate it once on the test rows, write the run's files.

    Writes ``history.json``, ``final/``, ``test_inputs.csv``, ``test_predictions.csv`` and
    ``metrics.json`` (with ``extra`` merged in) and returns the metrics.
    """
    split, target = prepared.split, prepared.target
    history = fitted.result.history
    write_json(run_dir / "history.json", history)
    fitted.predictor.save(run_dir / "final")

    test_inputs = take(prepared.raw.inputs, split.test)
    frame = _inputs_frame(test_inputs, fitted.predictor)
    frame.to_csv(run_dir / "test_inputs.csv", index=False)
    predictions = predictions_frame(fitted.predictor, frame)
    truth = target.values[split.test]
    predictions.insert(
        0,
        "target",
        truth if target.classes is None else np.asarray(target.classes, dtype=object)[truth],
    )
    predictions.to_csv(run_dir / "test_predictions.csv", index=False)

    predicted = (
        fitted.predictor.predict(frame)
        if target.task == "regression"
        else fitted.predictor.predict_proba(frame)
    )
    test = compute_metrics(target.task, truth, predicted)
    low, high = bootstrap_interval(target.task, truth, predicted, prepared.metric, seed=seed)
    best = history[fitted.result.best_epoch]
    metrics = {
        "task": target.task,
        "metric": prepared.metric,
        "validation": {k: v for k, v in best.items() if k not in ("epoch", "lr", "seconds")},
        "test": test,
        "test_interval": {
            "metric": prepared.metric,
            "level": 0.95,
            "low": low,
            "high": high,
            "method": "bootstrap over test rows (1000 resamples)",
        },
        "rows": {
            "train": len(split.train),
            "validation": len(split.validation),
            "test": len(split.test),
        },
        "best_epoch": fitted.result.best_epoch,
        "epochs_run": len(history),
        "stop_reason": fitted.result.stop_reason,
        "monitor": fitted.result.monitor,
        "seconds": fitted.seconds,
        "notes": fitted.predictor.info.get("notes", []),
        "techniques": fitted.predictor.info.get("techniques", {}),
        **(extra or {}),
    }
    write_json(run_dir / "metrics.json", metrics)
    return metrics


def predictions_frame(predictor: Predictor, inputs: Any) -> pd.DataFrame:
    """A table with ``prediction`` and, for classification, one ``proba_<class>`` column each."""
    if predictor.task == "regression":
        return pd.DataFrame({"prediction": predictor.predict(inputs)})
    proba = predictor.predict_proba(inputs)
    assert predictor.classes is not None
    labels = np.asarray(predictor.classes, dtype=object)[proba.argmax(1)]
    frame = pd.DataFrame({"prediction": labels})
    for i, label in enumerate(predictor.classes):
        frame[f"proba_{label}"] = proba[:, i]
    return frame


def _inputs_frame(inputs: Any, predictor: Predictor) -> pd.DataFrame:
    """Raw inputs as the table ``tunelab predict --input`` takes."""
    if isinstance(inputs, pd.DataFrame):
        return inputs
    if predictor.modality == "text":
        return pd.DataFrame({predictor.input_columns[0]: list(inputs)})
    flat = np.asarray(inputs).reshape(len(inputs), -1)
    return pd.DataFrame(flat, columns=predictor.input_columns)
