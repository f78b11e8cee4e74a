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
from tunelab.evaluation.classical import fit_classical_head
from tunelab.evaluation.features import TrainingInputs, training_inputs
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
from tunelab.techniques import DataFacts, after_fit, build_techniques, describe, model_request
from tunelab.training.batching import TensorData
from tunelab.training.cores import limited_threads, process_threads
from tunelab.training.hooks import Technique
from tunelab.training.loop import EpochCallback, FitResult, Validation, fit, resolve_device
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
    lr_notes: list[str] = []
    if cfg.train.lr == "auto":
        # imported here: lr_find builds its fits with this module's helpers
        from tunelab.evaluation.lr_find import resolve_lr

        cfg, lr_notes = resolve_lr(cfg, prepared, train_rows, trust_code=trust_code)
    seed_everything(cfg.seed)
    if is_tree_model(cfg):
        trees, result = fit_trees(cfg, prepared, train_rows, validation_rows, callbacks=callbacks)
        return Fitted(predictor=trees, result=result, seconds=time.perf_counter() - started)
    encoder, built = build_encoder_and_model(cfg, prepared, train_rows, trust_code=trust_code)
    scale = prepared.target.scale(train_rows)
    if cfg.model.head != "linear":  # a scikit-learn head on the frozen features, no loop
        # a logistic head of a few thousand weights fits fastest on one thread (the
        # backbone's pass, when it runs, takes every core itself)
        threads = cfg.train.threads or (process_threads() if cfg.model.head == "hgb" else 1)
        with limited_threads(threads):
            fitted = fit_classical_head(cfg, prepared, encoder, built, train_rows, validation_rows)
        about = {"notes": [*built.notes, *encoder.notes, *fitted.notes], "techniques": {}}
        predictor = make_predictor(cfg, prepared, built, encoder, scale, about)
        return Fitted(predictor, fitted.result, seconds=time.perf_counter() - started)
    setup = set_up_fit(cfg, prepared, encoder, built, train_rows, validation_rows, scale)
    validation = setup.validation
    size_mb = (setup.train.nbytes + (validation.data.nbytes if validation else 0)) / 2**20
    result = fit(
        setup.inputs.model,
        setup.train,
        validation,
        train_cfg=cfg.train,
        loss_fn=loss_function(prepared.target.task),
        seed=cfg.seed,
        stream=size_mb > cfg.data.stream_above_mb,
        techniques=setup.techniques,
        callbacks=callbacks,
    )
    after_fit(built.module)  # what the techniques declare the saved model needs
    built.module.to(resolve_device(cfg.train.device))  # a head trained alone joins its backbone
    notes = [*built.notes, *encoder.notes, *setup.inputs.notes, *lr_notes]
    events = describe(setup.techniques, result.events)
    info: dict[str, Any] = {"notes": notes, "techniques": events}
    predictor = make_predictor(cfg, prepared, built, encoder, scale, info)
    return Fitted(predictor=predictor, result=result, seconds=time.perf_counter() - started)


@dataclass
class FitSetup:
    """What the loop gets: the model and its inputs, the techniques, the tensors."""

    inputs: TrainingInputs
    techniques: list[Technique]
    train: TensorData
    validation: Validation | None


def set_up_fit(
    cfg: RunConfig,
    prepared: Prepared,
    encoder: Encoder,
    built: BuiltModel,
    train_rows: np.ndarray,
    validation_rows: np.ndarray | None,
    scale: Scale,
) -> FitSetup:
    """The model the loop trains (the head alone on cached features when the backbone stays
    frozen), the active techniques, and the training and validation tensors."""
    inputs = training_inputs(cfg, prepared, encoder, built, train_rows)
    facts = DataFacts(
        task=prepared.target.task,
        modality=inputs.modality,
        encoder=inputs.encoder,
        tokenizer=built.tokenizer,
    )
    techniques = build_techniques(cfg, facts)
    train = _tensors(prepared, inputs, train_rows, scale)
    validation = None
    if validation_rows is not None:
        validation = Validation(
            data=_tensors(prepared, inputs, validation_rows, scale),
            score=_scorer(prepared, validation_rows, scale),
            metric=prepared.metric,
        )
    return FitSetup(inputs, techniques, train, validation)


def build_encoder_and_model(
    cfg: RunConfig, prepared: Prepared, train_rows: np.ndarray, *, trust_code: bool = False
) -> tuple[Encoder, BuiltModel]:
    """The encoder fitted on the training rows and a fresh model for its inputs."""
    raw, target = prepared.raw, prepared.target
    techniques = model_request(cfg)  # head dropout, BN layers, fresh weights

    def request(input_shape: tuple[int, ...]) -> ModelRequest:
        return ModelRequest(
            input_shape=input_shape,
            num_outputs=target.num_outputs,
            modality=raw.modality,
            trust_code=trust_code,
            **techniques,
        )

    train_inputs = take(raw.inputs, train_rows)
    # a backbone that is never changed (linear probe) is loaded once per process
    share = cfg.finetuning.strategy == "linear_probe" and cfg.batch_norm.backbone != "reestimate"
    if raw.modality == "text":
        # the tokenizer comes with the model, so the model is built first
        built = build_model(cfg.model, request((cfg.data.max_length,)), share_backbone=share)
        encoder = fit_encoder(
            "text", train_inputs, tokenizer=built.tokenizer, max_length=cfg.data.max_length
        )
    else:
        encoder = fit_encoder(raw.modality, train_inputs, categorical=cfg.data.categorical)
        built = build_model(cfg.model, request(encoder.input_shape), share_backbone=share)
    return encoder, built


def _tensors(
    prepared: Prepared, inputs: TrainingInputs, rows: np.ndarray, scale: Scale
) -> TensorData:
    values = prepared.target.training_values(rows, scale)
    features, lengths = inputs.tensors(rows)
    target = torch.from_numpy(values)
    return TensorData(features, target, lengths=lengths, buckets=inputs.buckets)


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
