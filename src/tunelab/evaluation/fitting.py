"""Fit one fresh model on any rows: the encoder and model, the techniques, the loop, and
the predictor that carries the fitted preprocessing.

Example::

    fitted = fit_on_rows(cfg, prepared, prepared.split.train, prepared.split.validation)
    fitted.result.final["accuracy"], fitted.predictor.predict(frame)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunelab.config import RunConfig
from tunelab.evaluation.boosters import fit_booster, is_booster_model
from tunelab.evaluation.classical import fit_classical_head
from tunelab.evaluation.lr_find import resolve_lr
from tunelab.evaluation.network import plan_network, set_up_fit
from tunelab.evaluation.plan import FitPlan, ModelPlan, seed_everything
from tunelab.evaluation.prepare import Prepared
from tunelab.evaluation.trees import fit_trees, is_tree_model
from tunelab.results.predictor import AnyPredictor, Predictor, array_columns
from tunelab.techniques import after_fit, describe
from tunelab.training.cores import limited_threads, process_threads
from tunelab.training.loop import EpochCallback, FitResult, fit, resolve_device

Fit = Callable[[FitPlan, Sequence[EpochCallback]], tuple[AnyPredictor, FitResult]]


@dataclass
class Fitted:
    """A trained predictor and how its training went."""

    predictor: AnyPredictor
    result: FitResult
    seconds: float


@dataclass(frozen=True)
class Fitter:
    """One way to fit a recipe.

    Attributes:
        name: what the plan calls it (``FitPlan.fitter``).
        takes: whether it fits this recipe (the first fitter in ``FITTERS`` that takes it
            fits it).
        builds_network: the plan holds the encoder and a fresh model (trees encode their
            own inputs and build no network).
        fit: trains the plan's model and returns its predictor and how training went.
    """

    name: str
    takes: Callable[[RunConfig], bool]
    builds_network: bool
    fit: Fit


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
    cfg, lr_notes = resolve_lr(cfg, prepared, train_rows, trust_code=trust_code)
    seed_everything(cfg.seed)
    plan = plan_fit(
        cfg, prepared, train_rows, validation_rows, notes=tuple(lr_notes), trust_code=trust_code
    )
    predictor, result = FITTERS[plan.fitter].fit(plan, callbacks)
    return Fitted(predictor, result, seconds=time.perf_counter() - started)


def plan_fit(
    cfg: RunConfig,
    prepared: Prepared,
    train_rows: np.ndarray,
    validation_rows: np.ndarray | None,
    *,
    notes: tuple[str, ...] = (),
    trust_code: bool = False,
) -> FitPlan:
    """The plan of one fit: which fitter takes ``cfg`` and, for a network, the encoder
    fitted on ``train_rows`` and a fresh model."""
    fitter = fitter_for(cfg)
    plan = FitPlan(
        cfg=cfg,
        prepared=prepared,
        train_rows=train_rows,
        validation_rows=validation_rows,
        fitter=fitter.name,
        notes=notes,
    )
    return plan_network(plan, trust_code=trust_code) if fitter.builds_network else plan


def fitter_for(cfg: RunConfig) -> Fitter:
    """The first fitter of ``FITTERS`` that takes ``cfg``."""
    return next(fitter for fitter in FITTERS.values() if fitter.takes(cfg))


def _fit_classical_head(
    plan: FitPlan, callbacks: Sequence[EpochCallback]
) -> tuple[AnyPredictor, FitResult]:
    """A scikit-learn head on the frozen features, no loop (and no epochs to call back)."""
    assert isinstance(plan, ModelPlan)
    cfg = plan.cfg
    # a logistic head of a few thousand weights fits fastest on one thread (the backbone's
    # pass, when it runs, takes every core itself)
    threads = cfg.train.threads or (process_threads() if cfg.model.head == "hgb" else 1)
    with limited_threads(threads):
        fitted = fit_classical_head(plan)
    notes = [*plan.built.notes, *plan.encoder.notes, *fitted.notes]
    return make_predictor(plan, {"notes": notes, "techniques": {}}), fitted.result


def _fit_with_loop(
    plan: FitPlan, callbacks: Sequence[EpochCallback]
) -> tuple[AnyPredictor, FitResult]:
    """The one training loop, with the recipe's techniques."""
    assert isinstance(plan, ModelPlan)
    cfg, built = plan.cfg, plan.built
    setup = set_up_fit(plan)
    result = fit(
        setup.inputs.model,
        setup.train,
        setup.validation,
        train_cfg=cfg.train,
        loss_fn=setup.loss_fn,
        seed=cfg.seed,
        stream=setup.stream,
        techniques=setup.techniques,
        callbacks=callbacks,
    )
    after_fit(built.module)  # what the techniques declare the saved model needs
    built.module.to(resolve_device(cfg.train.device))  # a head trained alone joins its backbone
    notes = [*built.notes, *plan.encoder.notes, *setup.inputs.notes, *plan.notes]
    events = describe(setup.techniques, result.events)
    return make_predictor(plan, {"notes": notes, "techniques": events}), result


# which fitter trains a recipe: the first that takes it (boosters before trees, which takes
# every tree source)
FITTERS: dict[str, Fitter] = {
    fitter.name: fitter
    for fitter in (
        Fitter("boosters", is_booster_model, builds_network=False, fit=fit_booster),
        Fitter("trees", is_tree_model, builds_network=False, fit=fit_trees),
        Fitter(
            "classical_head",
            lambda cfg: cfg.model.head != "linear",
            builds_network=True,
            fit=_fit_classical_head,
        ),
        Fitter("loop", lambda cfg: True, builds_network=True, fit=_fit_with_loop),
    )
}


def make_predictor(plan: ModelPlan, info: dict[str, Any]) -> Predictor:
    """The predictor: the trained model with its preprocessing and the columns it takes."""
    cfg, prepared, encoder = plan.cfg, plan.prepared, plan.encoder
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
        model=plan.built.module,
        built=plan.built,
        encoder=encoder,
        task=prepared.target.task,
        classes=prepared.target.classes,
        modality=raw.modality,
        input_columns=columns,
        target_scale=plan.scale,
        info=info,
    )
