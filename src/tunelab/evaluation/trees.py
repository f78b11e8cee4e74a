"""Gradient-boosted trees as a model family: ``model.source: sklearn:hgb``.

scikit-learn's HistGradientBoosting on the encoded features (tables; images and signals
flattened), boosting for up to ``train.epochs`` iterations (an iteration plays the part of an
epoch: a study's refit trains as many as the folds kept), stopped early on the validation
rows by ``early_stopping`` (patience, min_delta). Its own settings are ``model.options``
(``learning_rate``, ``max_leaf_nodes``, ...), searchable like any field. The in-training
techniques of the neural loop (dropout, augmentation, ...) do not apply to trees.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import numpy as np

from tunelab.config import RunConfig
from tunelab.data import take
from tunelab.data.encoding import Encoder, fit_encoder
from tunelab.errors import ConfigError
from tunelab.evaluation.plan import FitPlan
from tunelab.evaluation.prepare import Prepared
from tunelab.results.trees import Forest, TreePredictor, probabilities
from tunelab.training.cores import limited_threads, process_threads
from tunelab.training.loop import EpochCallback, FitResult, StopTraining
from tunelab.training.metrics import compute_metrics

FAMILIES = ("hgb",)
# model.options an hgb model takes, with scikit-learn's meaning
HGB_OPTIONS = (
    "learning_rate",
    "max_leaf_nodes",
    "max_depth",
    "min_samples_leaf",
    "l2_regularization",
    "max_features",
    "max_bins",
)


# the model sources whose models are boosted trees: scikit-learn's here, the libraries' in
# boosters.py
TREE_SOURCES = ("sklearn", "lightgbm", "xgboost")


def not_a_network(value: str, cfg: Any, request: Any) -> Any:
    """The tree model sources: trees are fitted by a tree fitter (``FITTERS``), never built
    as a network (``fit_on_rows`` sends them there first)."""
    raise ConfigError(
        f"model.source: {cfg.source} is a tree model; it trains through tunelab train or "
        "run, not as a network (no finetuning, no export as a torch module)"
    )


def is_tree_model(cfg: RunConfig) -> bool:
    return cfg.model.source.partition(":")[0] in TREE_SOURCES


def fit_trees(
    plan: FitPlan, callbacks: Sequence[EpochCallback] = ()
) -> tuple[TreePredictor, FitResult]:
    """Boost trees on the plan's training rows, stopping early on its validation rows.

    Raises:
        ConfigError: an unknown family or option, or text data (trees need numbers).
    """
    cfg, prepared = plan.cfg, plan.prepared
    train_rows, validation_rows = plan.train_rows, plan.validation_rows
    family = cfg.model.source.partition(":")[2]
    if family not in FAMILIES:
        raise ConfigError(
            f"model.source: unknown tree model {cfg.model.source!r}; valid: "
            f"{', '.join('sklearn:' + f for f in FAMILIES)}"
        )
    raw, target = prepared.raw, prepared.target
    if raw.modality == "text":
        raise ConfigError(
            "model.source: sklearn:hgb needs numeric inputs (tables, images, signals), not text"
        )
    encoder = fit_encoder(
        raw.modality, take(raw.inputs, train_rows), categorical=cfg.data.categorical
    )
    x_train = _matrix(encoder, raw.inputs, train_rows)
    validate = validation_rows is not None and len(validation_rows) > 0
    early = validate and cfg.early_stopping.enabled
    model = _estimator(cfg, target.task, early=early)
    fit_args: dict[str, Any] = {}
    if validate:
        assert validation_rows is not None
        fit_args = {
            "X_val": _matrix(encoder, raw.inputs, validation_rows),
            "y_val": target.values[validation_rows],
        }
    # this process's share of the free cores (trials side by side split them); scikit-learn
    # takes validation rows only to stop on them: without early stopping they are scored
    # after the fit
    with limited_threads(cfg.train.threads or process_threads()):
        model.fit(x_train, target.values[train_rows], **(fit_args if early else {}))
    forest = Forest.from_sklearn(model)
    predictor = TreePredictor(
        forest=forest,
        encoder=encoder,
        task=target.task,
        classes=target.classes,
        modality=raw.modality,
        input_columns=_columns(prepared, encoder),
        info={"notes": list(encoder.notes), "techniques": _describe(model)},
    )
    result = _result(model, forest, fit_args, target.task, prepared.metric)
    for record in result.history:  # after the fit: its iterations cannot be stopped
        for callback in callbacks:
            with suppress(StopTraining):
                callback(record)
    return predictor, result


def _estimator(cfg: RunConfig, task: str, *, early: bool) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    unknown = sorted(set(cfg.model.options) - set(HGB_OPTIONS))
    if unknown:
        raise ConfigError(
            f"model.options: {', '.join(unknown)} is not an option of sklearn:hgb; valid: "
            f"{', '.join(HGB_OPTIONS)} (boosting iterations are train.epochs)"
        )
    common = {
        "max_iter": cfg.train.epochs,
        "early_stopping": early,
        "n_iter_no_change": cfg.early_stopping.patience,
        "tol": cfg.early_stopping.min_delta,
        "scoring": "loss",
        "categorical_features": None,
        "random_state": cfg.seed,
        **cfg.model.options,
    }
    if task == "regression":
        return HistGradientBoostingRegressor(loss="squared_error", **common)
    return HistGradientBoostingClassifier(loss="log_loss", **common)


def _matrix(encoder: Encoder, inputs: Any, rows: np.ndarray) -> np.ndarray:
    encoded = encoder.transform(take(inputs, rows))[0].numpy()
    return np.asarray(encoded.reshape(len(encoded), -1), np.float64)


def _columns(prepared: Prepared, encoder: Encoder) -> list[str]:
    from tunelab.results.predictor import array_columns

    if prepared.raw.modality in ("image", "signal"):
        return array_columns(encoder.input_shape)
    return prepared.input_columns


def _result(
    model: Any, forest: Forest, fit_args: dict[str, Any], task: str, metric: str
) -> FitResult:
    """Per-iteration losses (where scikit-learn scored them) and the final validation
    metrics of the trees the model keeps."""
    iterations = int(model.n_iter_)
    train_scores = getattr(model, "train_score_", np.zeros(0))[1:]
    val_scores = getattr(model, "validation_score_", np.zeros(0))[1:]
    history: list[dict[str, Any]] = []
    for i in range(iterations):
        record: dict[str, Any] = {"epoch": i, "lr": float(model.learning_rate)}
        if i < len(train_scores):
            record["train_loss"] = float(-train_scores[i])  # scoring="loss": negated
        if i < len(val_scores):
            record["val_loss"] = float(-val_scores[i])
        history.append(record)
    result = FitResult(history=history, best_epoch=iterations - 1)
    if fit_args:
        truth = fit_args["y_val"]
        raw = forest.raw(fit_args["X_val"])
        predicted = raw[:, 0] if task == "regression" else probabilities(raw)
        result.final = compute_metrics(task, truth, predicted)
        if history and "val_loss" in history[-1]:
            result.final["val_loss"] = history[-1]["val_loss"]
            history[-1].update(result.final)
    stopped = model.do_early_stopping_ and iterations < model.max_iter
    result.stop_reason = "patience_exhausted" if stopped else "max_epochs"
    result.monitor = "val_loss" if model.do_early_stopping_ else None
    return result


def _describe(model: Any) -> dict[str, Any]:
    params = model.get_params()
    kept = ("learning_rate", "max_iter", "max_leaf_nodes", "max_depth", "min_samples_leaf")
    return {
        "gradient_boosting": {
            **{k: params[k] for k in (*kept, "l2_regularization")},
            "iterations": int(model.n_iter_),
        },
        "note": "the neural techniques (dropout, augmentation, ...) do not apply to trees",
    }
