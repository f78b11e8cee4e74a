"""``model.head: logistic | hgb``: a scikit-learn head fitted on the frozen backbone's cached
features, in place of the training loop.

The fitted head is written into the model (``tunelab.models.classical.install_head``), so
the fold's predictor is the usual network on raw inputs; its validation outputs come from
that network's head, so the out-of-fold predictions equal the predictor's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from tunelab.data import Target
from tunelab.errors import ConfigError
from tunelab.evaluation.features import backbone_features
from tunelab.evaluation.plan import ModelPlan
from tunelab.models.base import BuiltModel
from tunelab.models.classical import fit_head, install_head
from tunelab.models.frozen import embedding_of
from tunelab.results.predictor import outputs_to_predictions
from tunelab.training.loop import MAX_EPOCHS, FitResult
from tunelab.training.losses import loss_function
from tunelab.training.metrics import compute_metrics


@dataclass
class ClassicalFit:
    result: FitResult
    notes: list[str] = field(default_factory=list)


def fit_classical_head(plan: ModelPlan) -> ClassicalFit:
    """Fit ``cfg.model.head`` on the training rows' features and score it like an epoch.

    Raises:
        ConfigError: the model has no ``embed`` (its features are not defined), or the head
            does not fit the task.
    """
    started = time.perf_counter()
    cfg, built = plan.cfg, plan.built
    train_rows, validation_rows = plan.train_rows, plan.validation_rows
    if embedding_of(built.module) is None:
        raise ConfigError(
            f"model.head: {cfg.model.head!r} is fitted on the backbone's features, but the "
            f"{type(built.module).__name__} model has no embed() method that gives them; use "
            "model.head linear"
        )
    target, cache, scale = plan.prepared.target, cfg.finetuning.cache_features, plan.scale
    train = backbone_features(plan, train_rows, use_cache=cache)
    estimator = fit_head(
        cfg.model.head,
        train.values,
        target.training_values(train_rows, scale),
        task=target.task,
        seed=cfg.seed,
        c=cfg.model.head_c,
    )
    built.spec.update(
        install_head(built.module, estimator, kind=cfg.model.head, outputs=target.num_outputs)
    )
    record: dict[str, float] = {
        "epoch": 0,
        "train_loss": _loss(built, train.values, target, train_rows, scale),
    }
    result = FitResult(best_epoch=0, stop_reason=MAX_EPOCHS)
    if validation_rows is not None:
        values = backbone_features(plan, validation_rows, use_cache=cache)
        outputs = _outputs(built, values.values)
        record["val_loss"] = _loss(built, values.values, target, validation_rows, scale)
        predicted = outputs_to_predictions(outputs, task=target.task, target_scale=scale)
        record.update(compute_metrics(target.task, target.values[validation_rows], predicted))
        result.validation_outputs = outputs
    record["seconds"] = time.perf_counter() - started
    result.history = [record]
    result.final = {k: v for k, v in record.items() if k not in ("epoch", "seconds")}
    notes = [f"model.head: {cfg.model.head} (scikit-learn) fitted on {len(train_rows)} rows"]
    if train.rows_computed:
        notes.append(
            f"features: the frozen backbone ran once on {train.rows_computed} rows "
            f"({train.seconds:.1f} s)"
        )
    return ClassicalFit(result, notes)


@torch.inference_mode()
def _outputs(built: BuiltModel, values: np.ndarray) -> np.ndarray:
    head = built.module.head
    assert isinstance(head, torch.nn.Module)
    head.eval()
    tensors = [*head.parameters(), *head.buffers()]
    device = tensors[0].device if tensors else torch.device("cpu")
    outputs: torch.Tensor = head(torch.from_numpy(values).to(device))
    return outputs.float().cpu().numpy()


def _loss(
    built: BuiltModel,
    values: np.ndarray,
    target: Target,
    rows: np.ndarray,
    scale: tuple[float, float] | None,
) -> float:
    outputs = torch.from_numpy(_outputs(built, values))
    truth = torch.from_numpy(target.training_values(rows, scale))
    return float(loss_function(target.task)(outputs, truth))
