"""The one training loop.

Read ``fit`` top to bottom: start (device, seeds, batches), let the techniques set up the
fresh model, build the optimizer, then for each epoch ``train_one_epoch`` (shuffled batches,
mixed precision on CUDA, gradient accumulation and clipping, the learning rate from a pure
schedule function), ``validate``, and ``decide`` whether to stop; at the end the techniques
may restore or average the weights, and ``finish`` says which weights the model holds and
what they score. Techniques are plug-ins (``training/hooks.py``): this module knows none of
them by name. Per-epoch values go to plain callbacks, so a search can prune without this
module importing Optuna.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from tunelab.config import TrainConfig
from tunelab.training.batching import Batches, TensorData, inference_batches
from tunelab.training.cores import default_threads, inference_threads
from tunelab.training.hooks import Batch, FitState, LossFn, Technique, overriding
from tunelab.training.optim import add_trainable, make_optimizer
from tunelab.training.schedules import lr_at

Scorer = Callable[[np.ndarray], dict[str, float]]
# Called after every epoch with that epoch's record; raising StopTraining ends training
# after this epoch, keeping the model; any other exception aborts the fit (e.g. pruning).
EpochCallback = Callable[[dict[str, Any]], None]
NON_FINITE = "non_finite"
MAX_EPOCHS = "max_epochs"
TIME_BUDGET = "time_budget"


class StopTraining(Exception):
    """Raised by an epoch callback: training ends after this epoch, for ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def would_pass(deadline: float, record: dict[str, Any]) -> bool:
    """Whether an epoch as long as ``record``'s would end after ``deadline`` (Unix time)."""
    return time.time() + float(record.get("seconds", 0.0)) > deadline


def stop_before(deadline: float) -> EpochCallback:
    """An epoch callback that ends training when the next epoch would end after
    ``deadline``: the time budget's stop, at an epoch boundary."""

    def check(record: dict[str, Any]) -> None:
        if would_pass(deadline, record):
            raise StopTraining(TIME_BUDGET)

    return check


@dataclass
class FitResult:
    """What one call of ``fit`` produced.

    Attributes:
        history: one dict per epoch (epoch, train_loss, val_loss, metrics, lr, seconds).
        best_epoch: the epoch whose weights the model holds at the end (the last epoch
            unless early stopping restored an earlier one; -1 when a technique replaced
            them, e.g. with averaged weights).
        final: validation metrics and loss of the weights the model holds at the end (the
            score of the fit; with the training loss of their epoch); without validation
            rows, only the training loss.
        monitor: what early stopping monitored, or None when it was off.
        stop_reason: patience_exhausted, non_finite, max_epochs or time_budget (a callback
            stopped it: ``stop_before``).
        validation_outputs: the model's outputs on the validation rows with the weights it
            holds at the end (float32 numpy); None without validation rows or under
            mixed precision.
        events: what the techniques did (before training, then ``epoch N: ...``).
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = -1
    final: dict[str, float] = field(default_factory=dict)
    monitor: str | None = None
    stop_reason: str = MAX_EPOCHS
    validation_outputs: np.ndarray | None = field(default=None, repr=False)
    events: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Validation:
    """The rows that judge each epoch: tensors, how outputs are scored, the chosen metric."""

    data: TensorData
    score: Scorer
    metric: str


def resolve_device(name: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype, or None for full precision (always None off CUDA)."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager[Any]:
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass
class _Run:
    """What the epoch steps share (built once by ``fit``)."""

    state: FitState
    cfg: TrainConfig
    techniques: Sequence[Technique]
    validation: Validation | None
    val_batches: Batches | None
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler
    generator: torch.Generator
    total_steps: int
    steps_per_epoch: int
    val_loss_fn: LossFn
    step: int = 0


def fit(
    model: nn.Module,
    train: TensorData,
    validation: Validation | None,
    *,
    train_cfg: TrainConfig,
    loss_fn: LossFn,
    seed: int,
    stream: bool = False,
    techniques: Sequence[Technique] = (),
    callbacks: Sequence[EpochCallback] = (),
) -> FitResult:
    """Train ``model`` in place and return its history.

    Args:
        model: called as ``model(*features)``.
        train: training tensors.
        validation: the validation rows and their scorer, or None (no per-epoch metrics).
        train_cfg: optimizer, schedule, batch size, precision, device.
        loss_fn: ``loss_fn(outputs, target)``, the validation loss and, unless a technique
            replaces it (label smoothing), the training loss.
        seed: seeds initialization-independent randomness (shuffling, dropout).
        stream: move batches to the device one at a time (large data).
        techniques: the active techniques, in the order their hooks run.
        callbacks: called with every epoch's record.
    """
    run = _start(model, train, validation, train_cfg, loss_fn, seed, stream, techniques)
    fit_state, result = run.state, FitResult()
    for epoch in range(train_cfg.epochs):
        fit_state.epoch = epoch
        started, before = time.perf_counter(), len(fit_state.events)
        record = _train_one_epoch(run)
        _validate(run, record)
        reason = _decide(run, record)
        new_events = fit_state.events[before:] if epoch else fit_state.events
        if new_events:
            record["events"] = [e.removeprefix(f"epoch {epoch}: ") for e in new_events]
        record["seconds"] = time.perf_counter() - started
        result.history.append(record)
        for callback in callbacks:
            try:
                callback(record)
            except StopTraining as stop:
                reason = reason or stop.reason
        if reason is not None:
            result.stop_reason = reason
            break
    return _finish(run, result)


def _start(
    model: nn.Module,
    train: TensorData,
    validation: Validation | None,
    cfg: TrainConfig,
    loss_fn: LossFn,
    seed: int,
    stream: bool,
    techniques: Sequence[Technique],
) -> _Run:
    """Device, seeds and batches; the techniques' set-up; then the optimizer."""
    device = resolve_device(cfg.device)
    torch.set_num_threads(cfg.threads or default_threads(model))
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model.to(device)
    amp_dtype = autocast_dtype(cfg.precision, device)
    train_batches = Batches(train, batch_size=cfg.batch_size, device=device, stream=stream)
    val_batches = None
    if validation is not None and len(validation.data):
        val_batches = Batches(
            validation.data, batch_size=max(cfg.batch_size, 256), device=device, stream=stream
        )
    state = FitState(
        model=model,
        train=train_batches,
        device=device,
        loss_fn=loss_fn,
        metric=validation.metric if validation else "train_loss",
        has_validation=val_batches is not None,
        epochs=cfg.epochs,
    )
    for technique in techniques:
        technique.setup(state)
    optimizer = make_optimizer(
        model, cfg, weight_decay=state.weight_decay, lr_scales=state.lr_scales
    )
    state.optimizer = optimizer

    def add(params: list[nn.Parameter], lr_scale: float) -> None:
        add_trainable(optimizer, model, params, weight_decay=state.weight_decay, lr_scale=lr_scale)

    state.add_trainable = add
    steps_per_epoch = max(len(train_batches) // cfg.grad_accumulation, 1)
    return _Run(
        state=state,
        cfg=cfg,
        techniques=techniques,
        validation=validation,
        val_batches=val_batches,
        amp_dtype=amp_dtype,
        scaler=torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16),
        generator=generator,
        total_steps=steps_per_epoch * cfg.epochs,
        steps_per_epoch=steps_per_epoch,
        val_loss_fn=loss_fn,
    )


def _train_one_epoch(run: _Run) -> dict[str, Any]:
    """One pass over the shuffled training batches; returns the epoch's first record."""
    state, cfg, model = run.state, run.cfg, run.state.model
    optimizer = state.optimizer
    assert optimizer is not None
    model.train()
    for technique in run.techniques:
        technique.on_epoch_start(state)
    batch_hooks = overriding(list(run.techniques), "on_batch")
    loss_terms = overriding(list(run.techniques), "loss_term")
    step_hooks = overriding(list(run.techniques), "after_step")
    accumulate, batches_per_epoch = cfg.grad_accumulation, len(state.train)
    total_loss = torch.zeros((), device=state.device)
    batches = 0
    optimizer.zero_grad(set_to_none=True)
    for micro, (features, target) in enumerate(
        state.train.iterate(shuffle=True, generator=run.generator, drop_single=True)
    ):
        batch = Batch(features, target)
        for technique in batch_hooks:
            batch = technique.on_batch(batch, state)
        with autocast(state.device, run.amp_dtype):
            outputs = model(*batch.features)
            loss = (
                batch.loss(outputs, state.loss_fn)
                if batch.loss is not None
                else state.loss_fn(outputs, batch.target)
            )
            for technique in loss_terms:
                term = technique.loss_term(outputs, batch, state)
                if term is not None:
                    loss = loss + term
        scaled = loss / accumulate if accumulate > 1 else loss
        run.scaler.scale(scaled).backward()  # type: ignore[no-untyped-call]
        state.loss = detached = loss.detach()
        total_loss += detached
        batches += 1
        if (micro + 1) % accumulate == 0 or micro + 1 == batches_per_epoch:
            _step(run, optimizer)
            for technique in step_hooks:
                technique.after_step(state)
            if state.stop is not None:  # a technique ends training now (lr-find)
                break
    record: dict[str, Any] = {
        "epoch": state.epoch,
        "train_loss": total_loss.item() / max(batches, 1),
    }
    return record


def _step(run: _Run, optimizer: torch.optim.Optimizer) -> None:
    """Set the scheduled learning rate, clip, step, and clear the gradients."""
    if run.state.schedule is not None:  # a technique drives the rate (lr-find's sweep)
        lr = run.state.schedule(run.step)
    else:
        lr = lr_at(
            run.step, total_steps=run.total_steps, steps_per_epoch=run.steps_per_epoch, cfg=run.cfg
        )
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    if run.state.grad_clip is not None:
        run.scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(run.state.model.parameters(), run.state.grad_clip)
    run.scaler.step(optimizer)
    run.scaler.update()
    optimizer.zero_grad(set_to_none=True)
    run.step += 1


def _validate(run: _Run, record: dict[str, Any]) -> None:
    """Validation loss and metrics into ``record``; the learning rates of the epoch."""
    state = run.state
    state.outputs = None
    if run.val_batches is not None and run.validation is not None:
        record.update(_judge(run, run.validation))
    optimizer = state.optimizer
    assert optimizer is not None
    record["lr"] = max(group["lr"] for group in optimizer.param_groups)
    by_scale = {f"x{g.get('lr_scale', 1.0):g}": g["lr"] for g in optimizer.param_groups}
    if len(by_scale) > 1:  # layer-wise rates (discriminative, llrd, unfrozen groups)
        record["lr_groups"] = by_scale


def _judge(run: _Run, validation: Validation) -> dict[str, float]:
    """The current weights' validation loss and metrics; keeps their outputs in the state
    (not under autocast: the predictor predicts in float32, and these must equal its
    predictions)."""
    assert run.val_batches is not None
    outputs, val_loss = evaluate(
        run.state.model, run.val_batches, loss_fn=run.val_loss_fn, amp_dtype=run.amp_dtype
    )
    values: dict[str, float] = {"val_loss": val_loss}
    if math.isfinite(val_loss) and np.isfinite(outputs).all():
        values.update(validation.score(outputs))
    run.state.outputs = outputs if run.amp_dtype is None else None
    return values


def _decide(run: _Run, record: dict[str, Any]) -> str | None:
    """A non-finite training loss stops at once; otherwise the techniques decide (and a
    technique's ``stop``, set during the epoch, ends it)."""
    if not math.isfinite(record["train_loss"]):
        return NON_FINITE
    reason = None
    for technique in run.techniques:
        reason = technique.on_epoch_end(record, run.state) or reason
    return run.state.stop or reason


def _finish(run: _Run, result: FitResult) -> FitResult:
    """Let the techniques settle the final weights, then record what those weights score."""
    state = run.state
    last = result.history[-1] if result.history else {}
    state.held = None
    for technique in run.techniques:
        technique.on_fit_end(state)
    result.events = list(state.events)
    if state.weights_changed:
        result.best_epoch = -1
        if run.validation is not None and run.val_batches is not None:
            result.final = _judge(run, run.validation)
        result.validation_outputs = state.outputs
    elif state.held is not None:
        result.best_epoch = state.held.epoch
        result.final = _scores(result.history[state.held.epoch])
        result.validation_outputs = state.held.outputs
    else:
        result.best_epoch = len(result.history) - 1
        result.final = _scores(last)
        result.validation_outputs = state.outputs
    result.monitor = state.monitor
    return result


def _scores(record: dict[str, Any]) -> dict[str, float]:
    skip = ("epoch", "lr", "lr_groups", "seconds", "events")
    return {k: v for k, v in record.items() if k not in skip}


@torch.inference_mode()
def evaluate(
    model: nn.Module, batches: Batches, *, loss_fn: LossFn, amp_dtype: torch.dtype | None = None
) -> tuple[np.ndarray, float]:
    """Model outputs over all batches (as float32 numpy) and the mean loss."""
    model.eval()
    outputs, total, rows = [], 0.0, 0
    for features, target in batches:
        with autocast(batches.device, amp_dtype):
            out = model(*features)
        out = out.float()
        total += float(loss_fn(out, target)) * len(target)
        rows += len(target)
        outputs.append(out)
    return torch.cat(outputs).cpu().numpy(), total / max(rows, 1)


@torch.inference_mode()
def predict_outputs(
    model: nn.Module,
    features: tuple[torch.Tensor, ...],
    *,
    batch_size: int = 512,
    device: torch.device | None = None,
    lengths: torch.Tensor | None = None,
) -> np.ndarray:
    """Raw model outputs for encoded ``features`` (no target needed), in inference mode on
    this process's share of the free cores. Token sequences (``lengths``: each row's real
    length) run in order of length, each batch cut to its longest row."""
    device = device or next(model.parameters()).device
    model.eval()
    outputs: torch.Tensor | None = None
    with inference_threads():
        for rows, batch in inference_batches(features, lengths, batch_size):
            out = model(*(t.to(device) for t in batch)).float().cpu()
            if outputs is None:
                outputs = torch.empty((int(features[0].shape[0]), *out.shape[1:]))
            outputs[rows] = out
    return outputs.numpy() if outputs is not None else np.zeros((0, 1), np.float32)
