"""LightGBM and XGBoost as model families: ``model.source: lightgbm:gbdt``, ``lightgbm:dart``,
``xgboost:gbtree`` (``pip install -c constraints.txt '.[trees]'``).

Like ``sklearn:hgb`` (``trees.py``): the library's scikit-learn estimator boosts for up to
``train.epochs`` iterations, stopped early on the validation rows by ``early_stopping``
(patience, min_delta; the trees up to the best iteration are kept). DART drops trees while it
boosts, so it cannot stop early: it boosts every iteration. The library's own settings are
``model.options`` under their scikit-learn names (``num_leaves``, ``max_depth``, ...),
searchable like any field; an unknown name is refused with the valid ones. Tables reach the
library with their categorical columns as category codes, which it splits natively
(``results/boosters.py`` says why).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import numpy as np

from tunelab.config import RunConfig
from tunelab.data import take
from tunelab.data.encoding import fit_encoder
from tunelab.errors import ConfigError, DataError
from tunelab.evaluation.plan import FitPlan
from tunelab.evaluation.prepare import Prepared
from tunelab.results.boosters import (
    LIBRARIES,
    BoosterPredictor,
    categorical_columns,
    library_module,
    native_matrix,
    parse,
)
from tunelab.results.scored import probabilities
from tunelab.training.cores import limited_threads, process_threads
from tunelab.training.loop import EpochCallback, FitResult, StopTraining
from tunelab.training.metrics import compute_metrics

# model.options each library takes (its scikit-learn estimator's names)
OPTIONS = {
    "lightgbm": (
        "learning_rate",
        "num_leaves",
        "max_depth",
        "min_child_samples",
        "min_child_weight",
        "min_split_gain",
        "subsample",
        "subsample_freq",
        "colsample_bytree",
        "reg_alpha",
        "reg_lambda",
        "max_bin",
        "extra_trees",
        "path_smooth",
        "cat_smooth",
        "cat_l2",
        "max_cat_to_onehot",
        "drop_rate",
        "skip_drop",
        "max_drop",
    ),
    "xgboost": (
        "learning_rate",
        "max_depth",
        "max_leaves",
        "min_child_weight",
        "gamma",
        "subsample",
        "colsample_bytree",
        "colsample_bylevel",
        "colsample_bynode",
        "reg_alpha",
        "reg_lambda",
        "max_bin",
        "grow_policy",
        "max_delta_step",
        "max_cat_to_onehot",
    ),
}


def is_booster_model(cfg: RunConfig) -> bool:
    """``model.source`` names LightGBM or XGBoost (the ``boosters`` fitter takes it)."""
    return cfg.model.source.partition(":")[0] in LIBRARIES


def fit_booster(
    plan: FitPlan, callbacks: Sequence[EpochCallback] = ()
) -> tuple[BoosterPredictor, FitResult]:
    """Boost on the plan's training rows with LightGBM or XGBoost, stopping early on its
    validation rows.

    Raises:
        ConfigError: an unknown family or option, a value the library refuses, text data.
        DataError: training rows that lack a class.
        MissingDependency: the library is not installed.
    """
    cfg, prepared = plan.cfg, plan.prepared
    train_rows, validation_rows = plan.train_rows, plan.validation_rows
    library, family = check_source(cfg)
    raw, target = prepared.raw, prepared.target
    library_module(library, purpose=f"model.source: {cfg.model.source}")
    encoder = fit_encoder(
        raw.modality, take(raw.inputs, train_rows), categorical=cfg.data.categorical
    )
    x_train = native_matrix(encoder, take(raw.inputs, train_rows))
    y_train, taught = _labels(target, train_rows)
    if not taught:
        _check_classes(y_train, target.classes)
    validation = None
    if validation_rows is not None and len(validation_rows) > 0:
        x_val = native_matrix(encoder, take(raw.inputs, validation_rows))
        validation = (x_val, target.values[validation_rows])
    early = validation is not None and cfg.early_stopping.enabled and family != "dart"
    task = "taught" if taught and target.task == "binary" else target.task
    model = _estimator(cfg, library, family, task, categorical_columns(encoder), early)
    with limited_threads(cfg.train.threads or process_threads()):
        _fit(cfg, model, (x_train, y_train), validation, categorical_columns(encoder), early=early)
    text = _model_text(library, model)
    predictor = BoosterPredictor(
        library=library,
        text=text,
        booster=parse(library, text),
        encoder=encoder,
        task=target.task,
        classes=target.classes,
        modality=raw.modality,
        input_columns=_columns(prepared, encoder),
        info={"notes": list(encoder.notes), "techniques": _describe(cfg, library, model)},
    )
    result = _result(cfg, model, predictor, validation, early=early)
    for record in result.history:  # after the fit: its iterations cannot be stopped
        for callback in callbacks:
            with suppress(StopTraining):
                callback(record)
    return predictor, result


def check_source(cfg: RunConfig) -> tuple[str, str]:
    """``(library, family)`` of ``model.source``, refused unless both are known."""
    library, _, family = cfg.model.source.partition(":")
    known = LIBRARIES[library].families
    if family not in known:
        raise ConfigError(
            f"model.source: unknown {library} model {cfg.model.source!r}; valid: "
            f"{', '.join(f'{library}:{f}' for f in known)}"
        )
    if cfg.model.options.keys() - set(OPTIONS[library]):
        unknown = sorted(cfg.model.options.keys() - set(OPTIONS[library]))
        raise ConfigError(
            f"model.options: {', '.join(unknown)} is not an option of {cfg.model.source}; "
            f"valid: {', '.join(OPTIONS[library])} (boosting iterations are train.epochs, "
            "early stopping is early_stopping.*)"
        )
    return library, family


def _labels(target: Any, rows: np.ndarray) -> tuple[np.ndarray, bool]:
    """What the booster learns on ``rows``: the labels, or a teacher's predictions where the
    target carries them (``ensembles/distill.py``: the positive class's probability, or the
    value for regression); and whether they are a teacher's."""
    soft = getattr(target, "soft", None)
    if soft is None or not np.isfinite(soft[rows]).all():
        return target.values[rows], False
    if target.task == "multiclass":
        raise ConfigError(
            f"a boosted student learns one probability per row; this task has "
            f"{len(target.classes)} classes: distill into a network instead"
        )
    return np.asarray(soft[rows, -1], np.float64), True


def _check_classes(y: np.ndarray, classes: list[Any] | None) -> None:
    if classes is None:
        return
    present = len(np.unique(y))
    if present != len(classes):
        raise DataError(
            f"the training rows of this fit hold {present} of the {len(classes)} classes; "
            "boosting learns one score per class from its own rows: give every class more "
            "rows, or use cv.strategy kfold (stratified) instead of a split without them"
        )


def _estimator(
    cfg: RunConfig, library: str, family: str, task: str, categorical: list[int], early: bool
) -> Any:
    module = library_module(library, purpose=f"model.source: {cfg.model.source}")
    threads = cfg.train.threads or process_threads()
    common: dict[str, Any] = {
        "n_estimators": cfg.train.epochs,
        "random_state": cfg.seed,
        "n_jobs": threads,
    }
    if library == "lightgbm":
        kind = module.LGBMClassifier if task in ("binary", "multiclass") else module.LGBMRegressor
        if task == "taught":  # a probability per row: the logistic loss on it, raw scores logits
            common["objective"] = "cross_entropy"
        return kind(boosting_type=family, verbose=-1, **common, **cfg.model.options)
    stop = module.callback.EarlyStopping(
        rounds=cfg.early_stopping.patience, min_delta=cfg.early_stopping.min_delta, save_best=True
    )
    kind = module.XGBClassifier if task in ("binary", "multiclass") else module.XGBRegressor
    if task == "taught":
        common["objective"] = "binary:logistic"
    return kind(
        booster=family,
        tree_method="hist",
        enable_categorical=bool(categorical),
        callbacks=[stop] if early else None,
        **common,
        **cfg.model.options,
    )


def _fit(
    cfg: RunConfig,
    model: Any,
    training: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray] | None,
    categorical: list[int],
    *,
    early: bool,
) -> None:
    x, y = training
    library = cfg.model.source.partition(":")[0]
    module = library_module(library, purpose=f"model.source: {cfg.model.source}")
    refused: tuple[type[BaseException], ...] = (ValueError,)
    args: dict[str, Any] = {}
    if library == "lightgbm":
        refused += (module.basic.LightGBMError,)
        args["categorical_feature"] = categorical or "auto"
        if validation is not None:  # eval_set is deprecated from LightGBM 4.7
            new = "eval_X" in inspect.signature(model.fit).parameters
            args |= (
                {"eval_X": (validation[0],), "eval_y": (validation[1],)}
                if new
                else {"eval_set": [validation]}
            )
        if early:
            stop = module.early_stopping(
                cfg.early_stopping.patience, min_delta=cfg.early_stopping.min_delta, verbose=False
            )
            args["callbacks"] = [stop]
    else:
        refused += (module.core.XGBoostError,)
        types = ["c" if i in categorical else "q" for i in range(x.shape[1])]
        model.set_params(feature_types=types if categorical else None)
        args = {"eval_set": [validation], "verbose": False} if validation is not None else {}
    try:
        model.fit(x, y, **args)
    except refused as exc:
        raise ConfigError(
            f"model.source {cfg.model.source}: {library} refused to fit with model.options "
            f"{dict(cfg.model.options)} ({type(exc).__name__}: {str(exc).strip()[:300]}); fix "
            "the option it names"
        ) from None


def _model_text(library: str, model: Any) -> str:
    """The fitted model in the library's own format, up to its best iteration."""
    if library == "lightgbm":
        return str(model.booster_.model_to_string())  # the best iteration's, when it stopped
    return bytes(model.get_booster().save_raw("json")).decode()


def _columns(prepared: Prepared, encoder: Any) -> list[str]:
    from tunelab.results.predictor import array_columns

    if prepared.raw.modality in ("image", "signal"):
        return array_columns(encoder.input_shape)
    return prepared.input_columns


def _result(
    cfg: RunConfig,
    model: Any,
    predictor: BoosterPredictor,
    validation: tuple[np.ndarray, np.ndarray] | None,
    *,
    early: bool,
) -> FitResult:
    """The validation loss of every iteration and the final validation metrics of the
    iterations kept."""
    library = predictor.library
    evals = model.evals_result_ if library == "lightgbm" else model.evals_result()
    losses = next(iter(next(iter(evals.values())).values())) if evals else []
    kept = _iterations(library, model, len(losses) or cfg.train.epochs)
    lr = float(model.get_params().get("learning_rate") or 0.1)
    history: list[dict[str, Any]] = [
        {"epoch": i, "lr": lr, "val_loss": float(loss)} for i, loss in enumerate(losses)
    ] or [{"epoch": i, "lr": lr} for i in range(kept)]
    result = FitResult(history=history, best_epoch=kept - 1)
    if validation is not None:
        scores = predictor.scores(validation[0])
        task = predictor.task
        predicted = scores[:, 0] if task == "regression" else probabilities(scores)
        result.final = compute_metrics(task, validation[1], predicted)
        if losses:
            result.final["val_loss"] = float(losses[kept - 1])
            history[kept - 1].update(result.final)
    stopped = early and len(history) < cfg.train.epochs
    result.stop_reason = "patience_exhausted" if stopped else "max_epochs"
    result.monitor = "val_loss" if early else None
    return result


def _iterations(library: str, model: Any, run: int) -> int:
    """Iterations the saved model keeps: up to the best one when it stopped early."""
    if library == "lightgbm":  # 1-based; 0 when it did not stop early
        return int(model.best_iteration_) or run
    best = getattr(model, "best_iteration", None)  # 0-based; absent without early stopping
    return int(best) + 1 if best is not None else run


def _describe(cfg: RunConfig, library: str, model: Any) -> dict[str, Any]:
    params = model.get_params()
    shown = {k: params[k] for k in ("learning_rate", "n_estimators", *cfg.model.options)}
    return {
        "gradient_boosting": {"library": library, "source": cfg.model.source, **shown},
        "note": "the neural techniques (dropout, augmentation, ...) do not apply to trees",
    }
