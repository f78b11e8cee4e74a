"""The one training loop.

Read it top to bottom: pick the device, build the optimizer, then for each epoch train on
shuffled batches (mixed precision on CUDA, gradient accumulation and clipping, the learning
rate set from a pure schedule function), evaluate on the validation part, record the epoch,
let early stopping decide, and keep the best weights. Per-epoch values go to plain callbacks,
so a search can prune without this module importing Optuna.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from tunelab.config import EarlyStoppingConfig, TrainConfig
from tunelab.techniques.early_stopping import EarlyStopping, StopReason
from tunelab.techniques.plan import TechniquePlan
from tunelab.training.batching import Batches, TensorData
from tunelab.training.metrics import GREATER_IS_BETTER
from tunelab.training.optim import add_trainable, make_optimizer
from tunelab.training.schedules import lr_at

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Scorer = Callable[[np.ndarray], dict[str, float]]
# Called after every epoch with that epoch's record; raising stops training (e.g. pruning).
EpochCallback = Callable[[dict[str, Any]], None]


@dataclass
class FitResult:
    """What one call of ``fit`` produced.

    Attributes:
        history: one dict per epoch (epoch, train_loss, val_loss, metrics, lr, seconds).
        best_epoch: the epoch whose weights the model holds at the end (restore_best).
        best_value: the monitored value at ``best_epoch``.
        monitor: what was monitored (a metric name, ``val_loss`` or ``train_loss``).
        stop_reason: patience_exhausted, non_finite or max_epochs.
        validation_outputs: the model's outputs on the validation rows with the weights it
            holds at the end (as float32 numpy); None without validation rows or under
            mixed precision.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = -1
    best_value: float | None = None
    monitor: str = "val_loss"
    stop_reason: str = StopReason.MAX_EPOCHS.value
    validation_outputs: np.ndarray | None = field(default=None, repr=False)


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


def fit(
    model: nn.Module,
    train: TensorData,
    validation: TensorData | None,
    *,
    train_cfg: TrainConfig,
    early_cfg: EarlyStoppingConfig,
    loss_fn: LossFn,
    score: Scorer,
    metric: str,
    seed: int,
    stream: bool = False,
    callbacks: list[EpochCallback] | None = None,
    plan: TechniquePlan | None = None,
) -> FitResult:
    """Train ``model`` in place and return its history; the model ends on its best weights.

    Args:
        model: called as ``model(*features)``.
        train: training tensors.
        validation: validation tensors, or None to monitor the training loss.
        train_cfg: optimizer, schedule, batch size, precision, device.
        early_cfg: early stopping (its ``enabled: false`` still keeps the best epoch).
        loss_fn: ``loss_fn(outputs, target)``, the validation loss (and the training loss
            when no ``plan`` is given).
        score: validation outputs (as numpy) -> metrics.
        metric: the selection metric (what ``early_stopping.monitor: metric`` means).
        seed: seeds initialization-independent randomness (shuffling, dropout).
        stream: move batches to the device one at a time (large data).
        callbacks: called with every epoch's record.
        plan: the techniques (regularization, batch norm, augmentation, fine-tuning).
    """
    plan = plan or TechniquePlan(loss_fn=loss_fn)
    device = resolve_device(train_cfg.device)
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model.to(device)
    amp_dtype = autocast_dtype(train_cfg.precision, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    train_batches = Batches(train, batch_size=train_cfg.batch_size, device=device, stream=stream)
    prepared = plan.prepare(model, train_batches)
    optimizer = make_optimizer(
        model, train_cfg, weight_decay=plan.weight_decay, lr_scales=plan.lr_scales(model)
    )

    def add_params(params: list[nn.Parameter], lr_scale: float) -> None:
        add_trainable(optimizer, model, params, weight_decay=plan.weight_decay, lr_scale=lr_scale)

    val_batches = None
    if validation is not None and len(validation):
        val_batches = Batches(
            validation, batch_size=max(train_cfg.batch_size, 256), device=device, stream=stream
        )
    steps_per_epoch = max(len(train_batches) // train_cfg.grad_accumulation, 1)
    total_steps = steps_per_epoch * train_cfg.epochs

    monitor = _monitor_name(early_cfg.monitor, metric, has_validation=val_batches is not None)
    mode: Literal["min", "max"] = "max" if GREATER_IS_BETTER.get(monitor, False) else "min"
    stopper = EarlyStopping.from_config(early_cfg, mode=mode)
    result = FitResult(monitor=monitor)
    best_state: dict[str, torch.Tensor] | None = None
    step = 0
    accumulate, batches_per_epoch = train_cfg.grad_accumulation, len(train_batches)

    for epoch in range(train_cfg.epochs):
        started = time.perf_counter()
        model.train()
        events = plan.on_epoch_start(epoch, model, add_params)
        total_loss = torch.zeros((), device=device)
        batches = 0
        optimizer.zero_grad(set_to_none=True)
        for micro, (features, target) in enumerate(
            train_batches.iterate(shuffle=True, generator=generator, drop_single=True)
        ):
            features, mix = plan.augment(features, target)
            with autocast(device, amp_dtype):
                loss = plan.loss(model(*features), target, mix)
            scaled = loss / accumulate if accumulate > 1 else loss
            scaler.scale(scaled).backward()  # type: ignore[no-untyped-call]
            total_loss += loss.detach()
            batches += 1
            if (micro + 1) % accumulate == 0 or micro + 1 == batches_per_epoch:
                lr = lr_at(
                    step, total_steps=total_steps, steps_per_epoch=steps_per_epoch, cfg=train_cfg
                )
                for group in optimizer.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)
                if plan.grad_clip is not None:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), plan.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                step += 1

        record: dict[str, Any] = {"epoch": epoch, "train_loss": total_loss.item() / max(batches, 1)}
        outputs = None
        if val_batches is not None:
            outputs, val_loss = evaluate(model, val_batches, loss_fn=loss_fn, amp_dtype=amp_dtype)
            record["val_loss"] = val_loss
            if math.isfinite(val_loss) and np.isfinite(outputs).all():
                record.update(score(outputs))
        record["lr"] = max(group["lr"] for group in optimizer.param_groups)
        by_scale = {f"x{g.get('lr_scale', 1.0):g}": g["lr"] for g in optimizer.param_groups}
        if len(by_scale) > 1:  # layer-wise rates (discriminative, llrd, unfrozen groups)
            record["lr_groups"] = by_scale
        if events or (epoch == 0 and prepared):
            record["events"] = (prepared if epoch == 0 else []) + events
        record["seconds"] = time.perf_counter() - started
        result.history.append(record)

        reason: StopReason | None
        if not math.isfinite(record["train_loss"]):
            stop, reason, improved = True, StopReason.NON_FINITE, False
        else:
            value = record.get(monitor, float("nan"))
            stop, reason, improved = stopper.update(epoch, float(value))
        if improved:
            best_state = _snapshot(model) if early_cfg.restore_best else None
            result.best_epoch, result.best_value = epoch, stopper.best
        if (improved or best_state is None) and amp_dtype is None:
            # the outputs of the weights the model will hold (not under autocast: the
            # predictor predicts in float32, and these must equal its predictions)
            result.validation_outputs = outputs
        for callback in callbacks or []:
            callback(record)
        if stop:
            result.stop_reason = (reason or StopReason.MAX_EPOCHS).value
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    if result.best_epoch < 0:
        result.best_epoch = len(result.history) - 1
    return result


@torch.no_grad()
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


@torch.no_grad()
def predict_outputs(
    model: nn.Module,
    features: tuple[torch.Tensor, ...],
    *,
    batch_size: int = 512,
    device: torch.device | None = None,
) -> np.ndarray:
    """Raw model outputs for encoded ``features`` (no target needed)."""
    device = device or next(model.parameters()).device
    model.eval()
    rows = int(features[0].shape[0])
    chunks = [
        model(*(t[i : i + batch_size].to(device) for t in features)).float().cpu()
        for i in range(0, rows, batch_size)
    ]
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, 1), np.float32)


def _monitor_name(monitor: str, metric: str, *, has_validation: bool) -> str:
    if not has_validation:
        return "train_loss"
    return metric if monitor == "metric" else monitor


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in copy.copy(model.state_dict()).items()}
