"""tunelab as a scikit-learn estimator: ``TunelabClassifier`` and ``TunelabRegressor``.

``fit(X, y)`` reads the arrays (or DataFrame) as a ``py:`` data source's ``(inputs, target)``
and checks them the same way, trains once with tunelab's own fitting (the validation rows
pick the best epoch; with ``cv.strategy: kfold`` the recipe is cross-validated first), writes
the run directory (a temporary folder the estimator owns, or ``out``) and keeps the predictor
loaded back from it. Every row given to ``fit`` is a training or validation row: there are
no test rows, since scikit-learn evaluates outside (``cross_val_score``, a held-out split).

Example::

    from sklearn.model_selection import cross_val_score
    from tunelab.sklearn import TunelabClassifier

    model = TunelabClassifier(config="examples/tabular.yaml", overrides={"train.epochs": 5})
    cross_val_score(model, X, y, cv=3)
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import issparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from tunelab.config import RunConfig, config_from_dict, load_config, set_dotted

# What fit uses, imported with this module and not inside fit: a module imported for the
# first time during fit may keep a traceback (Optuna keeps one for each optional backend it
# lacks), whose frames hold fit's frame, and with it the estimator and its folder, for good.
from tunelab.data import load_arrays
from tunelab.errors import ConfigError, DataError
from tunelab.evaluation.prepare import prepare_rows
from tunelab.flows.train import train
from tunelab.results.predictor import load_predictor

# The recipe when no config is given: a small MLP that trains in a second on CPU.
DEFAULT_CONFIG: dict[str, Any] = {
    "model": {"source": "builtin:mlp", "width": 64, "depth": 2},
    "train": {"epochs": 20, "batch_size": 32, "lr": 0.003},
}
# What config.yaml says the data was: the arrays given to fit, not a loadable source.
FIT_SOURCE = "py:tunelab.sklearn:arrays_given_to_fit"
_ORIGIN = "the X, y given to fit"


class InvalidInput(DataError, ValueError):
    """Data that tunelab refuses, raised as the ``ValueError`` scikit-learn expects."""


class InvalidConfig(ConfigError, ValueError):
    """A bad ``config`` or ``overrides``, raised as the ``ValueError`` scikit-learn expects."""


class _TunelabEstimator(BaseEstimator):  # type: ignore[misc]
    """What the classifier and the regressor share; see ``TunelabClassifier``."""

    _task: str = "regression"

    def __init__(
        self,
        config: str | Path | dict[str, Any] | None = None,
        *,
        overrides: dict[str, Any] | None = None,
        out: str | Path | None = None,
    ) -> None:
        self.config = config
        self.overrides = overrides
        self.out = out

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # missing cells are imputed with the training median, as in every tunelab table
        tags.input_tags.allow_nan = True
        tags.input_tags.sparse = False
        return tags

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> _TunelabEstimator:
        """Train on every row of ``X`` (a validation part picks the best epoch).

        Args:
            X: a DataFrame (numeric and categorical columns) or a 2-D array of numbers.
            y: one target per row.

        Raises:
            InvalidInput: inputs or target tunelab refuses (non-finite values, one class).
            InvalidConfig: the config or an override is invalid.
        """
        frame = _as_frame(X)
        validate_data(self, X, skip_check_array=True)
        target = self._checked_target(y)
        cfg = self._resolved_config(target)
        with _as_value_errors():
            raw = load_arrays(frame, target, cfg.data, origin=_ORIGIN)
            run_dir = self._run_dir()
            self.cross_validation_ = _train_run(cfg, raw, run_dir)
            self.predictor_ = load_predictor(run_dir)
        self.run_dir_ = run_dir
        return self

    def _checked_target(self, y: Any) -> np.ndarray:
        target: np.ndarray = column_or_1d(np.asarray(y), warn=True)
        if self._task != "regression":
            check_classification_targets(target)
            return target
        try:
            values: np.ndarray = pd.to_numeric(pd.Series(target)).to_numpy(np.float64)
            return values
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"{_ORIGIN}: a regression target must be numbers ({exc}); convert y to numbers, "
                "or use TunelabClassifier for labels"
            ) from None

    def _resolved_config(self, target: np.ndarray) -> RunConfig:
        with _as_value_errors():
            if isinstance(self.config, str | Path):
                raw = load_config(self.config).model_dump(mode="json")
            else:
                raw = copy.deepcopy(self.config if self.config is not None else DEFAULT_CONFIG)
            for dotted, value in (self.overrides or {}).items():
                set_dotted(raw, dotted, value, what=f"overrides[{dotted!r}]")
            raw["data"] = _data_section(raw.get("data") or {}, self._data_task(target))
            return config_from_dict(raw, source="the estimator's config and overrides")

    def _data_task(self, target: np.ndarray) -> str:
        if self._task == "regression":
            return "regression"
        return "binary" if len(pd.unique(pd.Series(target))) == 2 else "multiclass"

    def _run_dir(self) -> Path:
        if self.out is not None:
            return Path(self.out)
        path = Path(tempfile.mkdtemp(prefix="tunelab-"))
        # the estimator owns this folder: it goes when the estimator does
        weakref.finalize(self, shutil.rmtree, path, ignore_errors=True)
        return path

    # -- predicting ------------------------------------------------------------------------

    def predict(self, X: Any) -> np.ndarray:
        """Class labels, or values for regression."""
        frame = self._checked_inputs(X)
        with _as_value_errors():
            predictions = self.predictor_.predict(frame)
        if self._task == "regression":
            return np.asarray(predictions, dtype=np.float64)
        return np.asarray(list(predictions), dtype=self.classes_.dtype)

    def _checked_inputs(self, X: Any) -> pd.DataFrame:
        check_is_fitted(self, "predictor_")
        frame = _as_frame(X)
        validate_data(self, X, skip_check_array=True, reset=False)
        return frame


class TunelabClassifier(ClassifierMixin, _TunelabEstimator):  # type: ignore[misc]
    """A tunelab recipe as a scikit-learn classifier.

    Args:
        config: a YAML config path, a config as a dict, or None for a small MLP
            (``DEFAULT_CONFIG``); its ``data`` section's split sizes and ``categorical``
            apply, its ``source`` is replaced by the arrays given to ``fit``.
        overrides: dotted config fields and their values, e.g. ``{"train.epochs": 5}``.
        out: where ``fit`` writes the run directory (replaced at each fit); default a
            temporary folder removed with the estimator.

    Attributes:
        classes_: the class labels, sorted.
        predictor_: the predictor loaded from the run directory.
        run_dir_: the run directory of the last fit.
        cross_validation_: the fold scores when the config says ``cv.strategy: kfold``.

    Example::

        model = TunelabClassifier(overrides={"train.epochs": 5}).fit(X, y)
        model.predict_proba(X[:3])
    """

    _task = "classification"

    def fit(self, X: Any, y: Any) -> TunelabClassifier:
        super().fit(X, y)
        classes = self.predictor_.classes
        assert classes is not None
        self.classes_ = np.asarray(classes)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (N, K), columns in the order of ``classes_``."""
        frame = self._checked_inputs(X)
        with _as_value_errors():
            return np.asarray(self.predictor_.predict_proba(frame))


class TunelabRegressor(RegressorMixin, _TunelabEstimator):  # type: ignore[misc]
    """A tunelab recipe as a scikit-learn regressor (arguments as ``TunelabClassifier``)."""

    def fit(self, X: Any, y: Any) -> TunelabRegressor:
        super().fit(X, y)
        return self


def _train_run(cfg: RunConfig, raw: Any, run_dir: Path) -> dict[str, Any] | None:
    """Fit once on train + validation rows with ``tunelab train``'s flow, write the run
    directory, return the k-fold summary (None with a holdout)."""
    # no test rows: scikit-learn scores the estimator on rows it never saw, outside fit
    prepared = prepare_rows(cfg, raw, test_rows=np.zeros(0, dtype=np.int64))
    summary = train(cfg, out=run_dir, overwrite=True, prepared=prepared)
    cross_validation: dict[str, Any] | None = summary.metrics.get("cross_validation")
    return cross_validation


def _data_section(data: dict[str, Any], task: str) -> dict[str, Any]:
    return {**data, "source": FIT_SOURCE, "test_source": None, "target": None, "task": task}


def _as_frame(X: Any) -> pd.DataFrame:
    """A DataFrame as it is; an array of numbers as columns ``x0 .. x{F-1}``, as a ``py:``
    source's 2-D array is read.

    Raises:
        TypeError: sparse input, or an array holding something that is not a number.
        ValueError: not 2-D, no columns, complex or text values in an array.
    """
    if issparse(X):
        raise TypeError(
            "sparse input is not supported by tunelab's estimators; pass X.toarray() or a "
            "dense DataFrame"
        )
    if isinstance(X, pd.DataFrame):
        return X
    array = np.asarray(X)
    if array.ndim != 2:
        raise ValueError(
            f"Expected a 2D array (rows, features), got {array.ndim}D array instead. Reshape "
            "your data either using array.reshape(-1, 1) if your data has a single feature "
            "or array.reshape(1, -1) if it contains a single sample."
        )
    if array.shape[1] == 0:
        raise ValueError(
            f"0 feature(s) (shape={array.shape}) while a minimum of 1 is required; give at "
            "least one input column"
        )
    if np.iscomplexobj(array):
        raise ValueError("Complex data not supported; pass real numbers")
    if array.dtype == object:
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise type(exc)(
                f"an array X must hold numbers ({exc}); pass text and category columns in a "
                "pandas DataFrame, where they are one-hot encoded"
            ) from None
    return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])


class _as_value_errors:  # noqa: N801 (used as a context manager, like contextlib's)
    """Re-raise tunelab's ``DataError`` / ``ConfigError`` as their ``ValueError`` kinds."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, traceback: Any) -> None:
        if isinstance(exc, InvalidInput | InvalidConfig):
            return
        if isinstance(exc, DataError):
            raise InvalidInput(str(exc)) from None
        if isinstance(exc, ConfigError):
            raise InvalidConfig(exc.problems, source=exc.source) from None
