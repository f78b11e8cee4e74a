"""How fast a recipe's model trains on this machine: a few steps of the real loop on one
thread, on every core, and side by side on one thread each. ``--jobs auto`` decides how
many trials run at once from it (``tunelab.training.cores.plan_jobs``).

Only the recipe's own values are measured (a searched ``model.width`` changes the model of
each trial, not the plan). A linear probe's frozen backbone runs here, once, on every
core: its features are cached for the trials that follow.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from tunelab.config import RunConfig, apply_params
from tunelab.evaluation.crossval import cv_splits
from tunelab.evaluation.features import training_inputs
from tunelab.evaluation.fitting import build_encoder_and_model, fit_on_rows, set_up_fit
from tunelab.evaluation.prepare import Prepared
from tunelab.evaluation.trees import is_tree_model
from tunelab.models.base import BuiltModel
from tunelab.training.cores import (
    FEWER_JOBS_TOLERANCE,
    SMALL_MODEL_PARAMS,
    Speeds,
    inference_threads,
)
from tunelab.training.loop import fit
from tunelab.training.losses import loss_function

MEASURE_SECONDS = 0.3  # of training, per measured setting (more steps for fast models)
MAX_EPOCHS = 20


@dataclass(frozen=True)
class Measured:
    """What ``measure`` found.

    Attributes:
        trainable: trainable weights of the model the loop trains.
        model_bytes: every weight and buffer of the model (a process holds them all).
        trial_seconds: one trial on one thread, estimated (None when not known).
        speeds: steps per second by threads and trials side by side (None for a small
            model, whose plan needs no measurement, or a fit without training steps).
    """

    trainable: int
    model_bytes: int
    trial_seconds: float | None
    speeds: Speeds | None = None


def measure(cfg: RunConfig, prepared: Prepared, *, cores: int) -> Measured:
    """Measure the recipe ``cfg`` on its first split's training rows."""
    train_rows, validation_rows = cv_splits(cfg, prepared)[0]
    folds = len(cv_splits(cfg, prepared))
    if cfg.train.lr == "auto":  # the sweep is not what is measured
        cfg = apply_params(cfg, {"train.lr": 1e-3})
    if is_tree_model(cfg) or cfg.model.head != "linear":
        return _one_fit(cfg, prepared, train_rows, validation_rows, folds=folds, cores=cores)
    encoder, built = build_encoder_and_model(cfg, prepared, train_rows)
    model_bytes = _bytes(built.module)
    # a frozen backbone's features, computed here on every core before the timed fits
    training_inputs(cfg, prepared, encoder, _copy(built), train_rows)
    one = _steps_per_second(cfg, prepared, encoder, built, train_rows, threads=1, copies=1)
    trainable = one.trainable
    batches = math.ceil(len(train_rows) / cfg.train.batch_size)
    trial = batches * cfg.train.epochs * folds / one.rate
    if trainable < SMALL_MODEL_PARAMS or cores == 1:
        return Measured(trainable, model_bytes, trial)
    timed = {"threads": cores, "copies": 1, "epochs": one.epochs}
    every = _steps_per_second(cfg, prepared, encoder, built, train_rows, **timed).rate
    if every >= FEWER_JOBS_TOLERANCE * cores * one.rate:
        side = cores * one.rate  # side by side cannot beat this: one trial on every core wins
    else:
        timed = {"threads": 1, "copies": cores, "epochs": one.epochs}
        side = _steps_per_second(cfg, prepared, encoder, built, train_rows, **timed).rate
    speeds = Speeds(one=one.rate, every=every, parallel=side, cores=cores)
    return Measured(trainable, model_bytes, trial, speeds)


def _one_fit(
    cfg: RunConfig,
    prepared: Prepared,
    train_rows: np.ndarray,
    validation_rows: np.ndarray,
    *,
    folds: int,
    cores: int,
) -> Measured:
    """A fit without training steps (a scikit-learn head, boosted trees): one fold, timed
    (a frozen backbone's features are computed here, on every core)."""
    started = time.perf_counter()
    with inference_threads(cores):
        fitted = fit_on_rows(cfg, prepared, train_rows, validation_rows)
    seconds = time.perf_counter() - started
    module = getattr(fitted.predictor, "model", None)
    size = _bytes(module) if isinstance(module, torch.nn.Module) else 0
    return Measured(trainable=0, model_bytes=size, trial_seconds=seconds * folds)


@dataclass(frozen=True)
class _Rate:
    rate: float  # steps per second, all copies together
    trainable: int
    epochs: int  # of the measured rows, for about MEASURE_SECONDS


def _steps_per_second(
    cfg: RunConfig,
    prepared: Prepared,
    encoder: object,
    built: BuiltModel,
    rows: np.ndarray,
    *,
    threads: int,
    copies: int,
    epochs: int | None = None,
) -> _Rate:
    """Train ``copies`` copies of the model side by side (Python threads: torch releases
    the interpreter while it computes) on ``threads`` torch threads, for ``epochs`` over a
    few batches (default: after a warm-up step, about ``MEASURE_SECONDS``); their steps
    per second together."""
    tuned = apply_params(cfg, {"train.threads": threads, "early_stopping.enabled": False})
    batch = tuned.train.batch_size
    subset = rows[: 4 * batch]  # a few steps: a transformer's take a second each
    scale = prepared.target.scale(subset)
    results: list[tuple[int, float, int]] = []
    errors: list[BaseException] = []

    def train(model: BuiltModel, epochs: int) -> None:
        try:
            _train(model, epochs, subset)
        except BaseException as exc:  # raised again in the calling thread
            errors.append(exc)

    def _train(model: BuiltModel, epochs: int, rows: np.ndarray) -> None:
        setup = set_up_fit(tuned, prepared, encoder, model, rows, None, scale)  # type: ignore[arg-type]
        steps_cfg = apply_params(tuned, {"train.epochs": epochs}).train
        result = fit(
            setup.inputs.model,
            setup.train,
            None,
            train_cfg=steps_cfg,
            loss_fn=loss_function(prepared.target.task),
            seed=cfg.seed,
            techniques=setup.techniques,
        )
        steps = math.ceil(len(setup.train) / batch) * len(result.history)
        seconds = sum(record["seconds"] for record in result.history)
        trainable = sum(p.numel() for p in setup.inputs.model.parameters() if p.requires_grad)
        results.append((steps, seconds, trainable))

    if epochs is None:
        _train(_copy(built), 1, subset[: 2 * batch])  # warm-up, and the time of a step
        steps, seconds, _ = results.pop()
        step = seconds / max(steps, 1)
        epochs = max(1, min(MAX_EPOCHS, math.ceil(MEASURE_SECONDS / max(step * 4, 1e-6))))
    workers = [threading.Thread(target=train, args=(_copy(built), epochs)) for _ in range(copies)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    return _Rate(rate=sum(r[0] for r in results) / wall, trainable=results[0][2], epochs=epochs)


def _copy(built: BuiltModel) -> BuiltModel:
    return BuiltModel(
        module=copy.deepcopy(built.module),
        tokenizer=built.tokenizer,
        spec=dict(built.spec),
        notes=list(built.notes),
    )


def _bytes(module: torch.nn.Module) -> int:
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.element_size() * t.nelement() for t in tensors)
