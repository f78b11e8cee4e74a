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
from dataclasses import dataclass, replace

import numpy as np
import torch

from tunelab.config import RunConfig, apply_params
from tunelab.evaluation.crossval import cv_splits
from tunelab.evaluation.features import training_inputs
from tunelab.evaluation.fitting import fit_on_rows, fitter_for
from tunelab.evaluation.network import plan_network, set_up_fit
from tunelab.evaluation.plan import FitPlan, ModelPlan
from tunelab.evaluation.prepare import Prepared
from tunelab.models.base import BuiltModel
from tunelab.training.cores import (
    FEWER_JOBS_TOLERANCE,
    SMALL_MODEL_PARAMS,
    Speeds,
    inference_threads,
)
from tunelab.training.loop import fit

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
    if fitter_for(cfg).name != "loop":
        return _one_fit(cfg, prepared, train_rows, validation_rows, folds=folds, cores=cores)
    plan = plan_network(FitPlan(cfg=cfg, prepared=prepared, train_rows=train_rows))
    model_bytes = _bytes(plan.built.module)
    # a frozen backbone's features, computed here on every core before the timed fits
    training_inputs(replace(plan, built=_copy(plan.built)))
    one = _steps_per_second(plan, threads=1, copies=1)
    trainable = one.trainable
    batches = math.ceil(len(train_rows) / cfg.train.batch_size)
    trial = batches * cfg.train.epochs * folds / one.rate
    if trainable < SMALL_MODEL_PARAMS or cores == 1:
        return Measured(trainable, model_bytes, trial)
    timed = {"threads": cores, "copies": 1, "epochs": one.epochs}
    every = _steps_per_second(plan, **timed).rate
    if every >= FEWER_JOBS_TOLERANCE * cores * one.rate:
        side = cores * one.rate  # side by side cannot beat this: one trial on every core wins
    else:
        timed = {"threads": 1, "copies": cores, "epochs": one.epochs}
        side = _steps_per_second(plan, **timed).rate
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
    plan: ModelPlan, *, threads: int, copies: int, epochs: int | None = None
) -> _Rate:
    """Train ``copies`` copies of the plan's model side by side (Python threads: torch
    releases the interpreter while it computes) on ``threads`` torch threads, for ``epochs``
    over a few batches (default: after a warm-up step, about ``MEASURE_SECONDS``); their
    steps per second together."""
    settings = {"train.threads": threads, "early_stopping.enabled": False}
    tuned = apply_params(plan.cfg, settings)
    batch = tuned.train.batch_size
    subset = plan.train_rows[: 4 * batch]  # a few steps: a transformer's take a second each
    results: list[tuple[int, float, int]] = []
    errors: list[BaseException] = []

    def train(model: BuiltModel, epochs: int) -> None:
        try:
            _train(model, epochs, subset)
        except BaseException as exc:  # raised again in the calling thread
            errors.append(exc)

    def _train(model: BuiltModel, epochs: int, rows: np.ndarray) -> None:
        timed = replace(plan, cfg=tuned, built=model, train_rows=rows, validation_rows=None)
        setup = set_up_fit(timed)
        steps_cfg = apply_params(tuned, {"train.epochs": epochs}).train
        result = fit(
            setup.inputs.model,
            setup.train,
            None,
            train_cfg=steps_cfg,
            loss_fn=setup.loss_fn,
            seed=tuned.seed,
            techniques=setup.techniques,
        )
        steps = math.ceil(len(setup.train) / batch) * len(result.history)
        seconds = sum(record["seconds"] for record in result.history)
        trainable = sum(p.numel() for p in setup.inputs.model.parameters() if p.requires_grad)
        results.append((steps, seconds, trainable))

    if epochs is None:
        _train(_copy(plan.built), 1, subset[: 2 * batch])  # warm-up, and the time of a step
        steps, seconds, _ = results.pop()
        step = seconds / max(steps, 1)
        epochs = max(1, min(MAX_EPOCHS, math.ceil(MEASURE_SECONDS / max(step * 4, 1e-6))))
    workers = [
        threading.Thread(target=train, args=(_copy(plan.built), epochs)) for _ in range(copies)
    ]
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
