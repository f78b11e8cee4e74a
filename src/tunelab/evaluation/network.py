"""A network's fit from its plan: the encoder and fresh model built once, then what the loop
gets (the model and its inputs, the active techniques, the training and validation tensors).

Example::

    plan = plan_network(FitPlan(cfg=cfg, prepared=prepared, train_rows=rows))
    setup = set_up_fit(plan)
    fit(setup.inputs.model, setup.train, setup.validation, techniques=setup.techniques, ...)
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from tunelab.evaluation.features import TrainingInputs, training_inputs, why_not_cached
from tunelab.evaluation.plan import FitPlan, ModelPlan, Scale, build_encoder_and_model
from tunelab.evaluation.prepare import Prepared
from tunelab.results.predictor import outputs_to_predictions
from tunelab.techniques import DataFacts, build_techniques
from tunelab.training.batching import TensorData
from tunelab.training.hooks import LossFn, Technique
from tunelab.training.loop import Validation
from tunelab.training.losses import loss_function
from tunelab.training.metrics import compute_metrics


def plan_network(plan: FitPlan, *, trust_code: bool = False) -> ModelPlan:
    """``plan`` with its network: the encoder fitted on its training rows, a fresh model,
    and whether the frozen backbone's features are cached.

    ``trust_code``: a ``py:`` architecture named inside a checkpoint may run (--trust-code).
    """
    cfg = plan.cfg
    encoder, built = build_encoder_and_model(
        cfg, plan.prepared, plan.train_rows, trust_code=trust_code
    )
    decided = {field.name: getattr(plan, field.name) for field in fields(FitPlan)}
    return ModelPlan(
        **decided,
        encoder=encoder,
        built=built,
        not_cached=why_not_cached(cfg, built),
    )


@dataclass
class FitSetup:
    """What the loop gets: the model and its inputs, the techniques, the tensors, the loss,
    and whether batches stream to the device one at a time (large data)."""

    inputs: TrainingInputs
    techniques: list[Technique]
    train: TensorData
    validation: Validation | None
    loss_fn: LossFn
    stream: bool


def set_up_fit(plan: ModelPlan) -> FitSetup:
    """The model the loop trains (the head alone on cached features when the backbone stays
    frozen), the active techniques, and the training and validation tensors."""
    prepared, scale = plan.prepared, plan.scale
    inputs = training_inputs(plan)
    facts = DataFacts(
        task=prepared.target.task,
        modality=inputs.modality,
        encoder=inputs.encoder,
        tokenizer=plan.built.tokenizer,
    )
    techniques = build_techniques(plan.cfg, facts)
    train = _tensors(prepared, inputs, plan.train_rows, scale)
    validation = None
    if plan.validation_rows is not None:
        validation = Validation(
            data=_tensors(prepared, inputs, plan.validation_rows, scale),
            score=_scorer(prepared, plan.validation_rows, scale),
            metric=prepared.metric,
        )
    size_mb = (train.nbytes + (validation.data.nbytes if validation else 0)) / 2**20
    loss_fn = loss_function(prepared.target.task)
    stream = size_mb > plan.cfg.data.stream_above_mb
    return FitSetup(inputs, techniques, train, validation, loss_fn, stream)


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
