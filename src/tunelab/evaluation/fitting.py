"""Fit one fresh model on any rows: the encoder and model, the techniques, the loop, and
the predictor that carries the fitted preprocessing.

Example::

    fitted = fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation)
    fitted.result.final["accuracy"], fitted.predictor.predict(frame)
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tunelab.config import RunConfig
from tunelab.data import take
from tunelab.data.encoding import Encoder, fit_encoder
from tunelab.evaluation.prepare import Prepared
from tunelab.evaluation.trees import fit_trees, is_tree_model
from tunelab.models import ModelRequest, build_model
from tunelab.models.base import BuiltModel
from tunelab.results.predictor import (
    AnyPredictor,
    Predictor,
    array_columns,
    outputs_to_predictions,
)
from tunelab.techniques import DataFacts, build_techniques, describe
from tunelab.techniques.regularization import effective
from tunelab.training.batching import TensorData
from tunelab.training.loop import EpochCallback, FitResult, Validation, fit
from tunelab.training.losses import loss_function
from tunelab.training.metrics import compute_metrics

Scale = tuple[float, float] | None


@dataclass
class Fitted:
    """A trained predictor and how its training went."""

    predictor: AnyPredictor
    result: FitResult
    seconds: float


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a config and seed give the same metrics on CPU."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fit_on_rows(
    cfg: RunConfig,
    prepared: Prepared,
    train_rows: np.ndarray,
    validation_rows: np.ndarray | None,
    *,
    callbacks: Sequence[EpochCallback] = (),
    trust_code: bool = False,
) -> Fitted:
    """Build a fresh model and train it on ``train_rows``, validating on ``validation_rows``.

    ``trust_code``: a ``py:`` architecture named inside a checkpoint may run (--trust-code).

    Raises:
        ConfigError: a technique that does not fit the data or the model.
        DataError: inputs the encoder cannot take.
    """
    started = time.perf_counter()
    seed_everything(cfg.seed)
    if is_tree_model(cfg):
        trees, result = fit_trees(cfg, prepared, train_rows, validation_rows, callbacks=callbacks)
        return Fitted(predictor=trees, result=result, seconds=time.perf_counter() - started)
    encoder, built = build_encoder_and_model(cfg, prepared, train_rows, trust_code=trust_code)
    target, modality = prepared.target, prepared.raw.modality
    facts = DataFacts(
        task=target.task, modality=modality, encoder=encoder, tokenizer=built.tokenizer
    )
    techniques = build_techniques(cfg, facts)
    scale = target.scale(train_rows)
    train = _tensors(prepared, encoder, train_rows, scale)
    validation = None
    if validation_rows is not None:
        validation = Validation(
            data=_tensors(prepared, encoder, validation_rows, scale),
            score=_scorer(prepared, validation_rows, scale),
            metric=prepared.metric,
        )
    size_mb = (train.nbytes + (validation.data.nbytes if validation else 0)) / 2**20
    result = fit(
        built.module,
        train,
        validation,
        train_cfg=cfg.train,
        loss_fn=loss_function(target.task),
        seed=cfg.seed,
        stream=size_mb > cfg.data.stream_above_mb,
        techniques=techniques,
        callbacks=callbacks,
    )
    notes = [*built.notes, *encoder.notes]
    info: dict[str, Any] = {"notes": notes, "techniques": describe(techniques, result.events)}
    predictor = make_predictor(cfg, prepared, built, encoder, scale, info)
    return Fitted(predictor=predictor, result=result, seconds=time.perf_counter() - started)


def build_encoder_and_model(
    cfg: RunConfig, prepared: Prepared, train_rows: np.ndarray, *, trust_code: bool = False
) -> tuple[Encoder, BuiltModel]:
    """The encoder fitted on the training rows and a fresh model for its inputs."""
    raw, target = prepared.raw, prepared.target
    reg = effective(cfg.regularization)

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

    train_inputs = take(raw.inputs, train_rows)
    if raw.modality == "text":
        # the tokenizer comes with the model, so the model is built first
        built = build_model(cfg.model, request((cfg.data.max_length,)))
        encoder = fit_encoder(
            "text", train_inputs, tokenizer=built.tokenizer, max_length=cfg.data.max_length
        )
    else:
        encoder = fit_encoder(raw.modality, train_inputs, categorical=cfg.data.categorical)
        built = build_model(cfg.model, request(encoder.input_shape))
    return encoder, built


def _tensors(prepared: Prepared, encoder: Encoder, rows: np.ndarray, scale: Scale) -> TensorData:
    values = prepared.target.training_values(rows, scale)
    return TensorData(encoder.transform(take(prepared.raw.inputs, rows)), torch.from_numpy(values))


def _scorer(prepared: Prepared, rows: np.ndarray, scale: Scale) -> Any:
    truth, task = prepared.target.values[rows], prepared.target.task

    def score(outputs: np.ndarray) -> dict[str, float]:
        predicted = outputs_to_predictions(outputs, task=task, target_scale=scale)
        return compute_metrics(task, truth, predicted)

    return score


def make_predictor(
    cfg: RunConfig,
    prepared: Prepared,
    built: BuiltModel,
    encoder: Encoder,
    scale: Scale,
    info: dict[str, Any],
) -> Predictor:
    """The predictor: the trained model with its preprocessing and the columns it takes."""
    raw = prepared.raw
    columns = prepared.input_columns
    if raw.modality == "text":
        columns = [cfg.data.text_column or "text"]
    elif raw.modality in ("image", "signal"):
        columns = array_columns(encoder.input_shape)
    if cfg.data.source.startswith("images:"):
        # new image files are decoded and resized exactly as the training images were
        info["image"] = {"size": list(cfg.data.image_size), "mode": cfg.data.image_mode}
    return Predictor(
        model=built.module,
        built=built,
        encoder=encoder,
        task=prepared.target.task,
        classes=prepared.target.classes,
        modality=raw.modality,
        input_columns=columns,
        target_scale=scale,
        info=info,
    )
