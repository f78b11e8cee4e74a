"""One fit, decided once: the recipe, the data, the rows and which fitter trains them; for a
network, also the encoder fitted on the training rows, the fresh model, and whether the
frozen backbone's features are cached.

Every function of a fit takes the plan instead of passing ``(cfg, prepared, encoder, built,
train_rows, validation_rows)`` along (as a Lightning ``Trainer`` holds its state).

Example::

    plan = plan_fit(cfg, prepared, train_rows, validation_rows)  # tunelab.evaluation.fitting
    plan.fitter, plan.scale
    plan.encoder, plan.built.module, plan.caches_features  # a ModelPlan
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch

from tunelab.config import RunConfig
from tunelab.data import take
from tunelab.data.encoding import Encoder, fit_encoder
from tunelab.evaluation.prepare import Prepared
from tunelab.models import ModelRequest, build_model
from tunelab.models.base import BuiltModel
from tunelab.techniques import model_request

Scale = tuple[float, float] | None


@dataclass(frozen=True, eq=False, kw_only=True)
class FitPlan:
    """What one fit trains on and how.

    Attributes:
        cfg: the recipe (``train.lr`` already a number).
        prepared: the loaded data.
        train_rows: the rows the model learns from.
        validation_rows: the rows that judge each epoch, or None (a refit).
        fitter: which fitter trains it (``tunelab.evaluation.fitting.FITTERS``).
        notes: what was decided before the fit (the rate ``train.lr: auto`` found).
    """

    cfg: RunConfig
    prepared: Prepared
    train_rows: np.ndarray
    validation_rows: np.ndarray | None = None
    fitter: str = "loop"
    notes: tuple[str, ...] = field(default=())

    @property
    def scale(self) -> Scale:
        """Regression: the training rows' target (mean, std); None for classification."""
        return self.prepared.target.scale(self.train_rows)


@dataclass(frozen=True, eq=False, kw_only=True)
class ModelPlan(FitPlan):
    """A fit of a network: the plan, the encoder fitted on the training rows, the model.

    Attributes:
        encoder: fitted on ``train_rows``.
        built: the fresh model (and its tokenizer, spec and notes).
        not_cached: why the frozen backbone's features are not cached for this fit ("" when
            there is nothing to say: its strategy trains the backbone), or None when they
            are.
    """

    encoder: Encoder
    built: BuiltModel
    not_cached: str | None = ""

    @property
    def caches_features(self) -> bool:
        return self.not_cached is None


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a config and seed give the same metrics on CPU."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_encoder_and_model(
    cfg: RunConfig, prepared: Prepared, train_rows: np.ndarray, *, trust_code: bool = False
) -> tuple[Encoder, BuiltModel]:
    """The encoder fitted on the training rows and a fresh model for its inputs.

    ``trust_code``: a ``py:`` architecture named inside a checkpoint may run (--trust-code).
    """
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
