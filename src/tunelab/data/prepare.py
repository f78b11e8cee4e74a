"""Target encoding, task detection and the seeded train / validation / test split.

The test rows are set aside first (stratified for classification, seeded) and are never
used for training or selection; the validation rows come from what is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from tunelab.data.base import RawData, Task
from tunelab.data.checks import shown_rows
from tunelab.errors import DataError

# A numeric target with more distinct values than this is taken as regression.
_MAX_AUTO_CLASSES = 20


@dataclass(frozen=True)
class Target:
    """The encoded target.

    Attributes:
        task: binary, multiclass or regression.
        values: class codes 0..K-1 (int64) or numbers (float32).
        classes: the original label of each code (JSON-able), None for regression.
    """

    task: Task
    values: np.ndarray
    classes: list[Any] | None

    @property
    def num_outputs(self) -> int:
        return 1 if self.classes is None else len(self.classes)


@dataclass(frozen=True)
class Split:
    """Row indices of each part."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def check_target_values(raw: RawData) -> None:
    """Raise ``DataError`` naming the rows whose target is missing, empty or infinite."""
    series = pd.Series(raw.target)
    missing = series.isna() | (series.astype(str).str.strip() == "")
    if missing.any():
        rows = np.flatnonzero(missing.to_numpy())
        raise DataError(
            f"{raw.origin}: the target has {len(rows)} missing or empty value(s) "
            f"(rows {shown_rows(rows)}); drop those rows or fill in their target"
        )
    if pd.api.types.is_float_dtype(series.dtype):
        values = series.to_numpy(np.float64)
        rows = np.flatnonzero(np.isinf(values))
        if len(rows):
            raise DataError(
                f"{raw.origin}: the target holds {values[rows[0]]} in {len(rows)} row(s) "
                f"(rows {shown_rows(rows)}); a target must be a finite number: fix or drop "
                "those rows"
            )


def encode_target(raw: RawData, *, task: str = "auto") -> Target:
    """Check the raw target and encode it for ``task`` (``auto`` infers it)."""
    check_target_values(raw)
    series = pd.Series(raw.target)
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if task == "auto":
        task = _infer_task(series, numeric=numeric)
    if task == "regression":
        if not numeric:
            example = series[~series.map(_is_number)].iloc[0]
            raise DataError(
                f"{raw.origin}: regression needs a numeric target, but it holds {example!r}; "
                "set data.task to binary or multiclass, or fix the target column"
            )
        return Target(task="regression", values=_float32_target(series, raw.origin), classes=None)
    codes, uniques = pd.factorize(series, sort=True)
    classes = [_plain(v) for v in uniques]
    if len(classes) < 2:
        raise DataError(
            f"{raw.origin}: the target has only one class ({classes[0]!r}); classification "
            "needs at least two. Check the target column or the rows you selected"
        )
    if task == "binary" and len(classes) != 2:
        raise DataError(
            f"{raw.origin}: data.task is binary but the target has {len(classes)} classes; "
            "set data.task: multiclass"
        )
    kind: Task = "binary" if len(classes) == 2 else "multiclass"
    return Target(task=kind, values=codes.astype(np.int64), classes=classes)


def check_class_counts(target: Target, *, needed: int, why: str, origin: str) -> None:
    """Raise ``DataError`` naming every class with fewer than ``needed`` rows."""
    if target.classes is None:
        return
    counts = np.bincount(target.values, minlength=len(target.classes))
    small = [(target.classes[i], int(c)) for i, c in enumerate(counts) if c < needed]
    if small:
        listed = ", ".join(f"{label!r} has {count}" for label, count in small)
        raise DataError(
            f"{origin}: each class needs at least {needed} rows {why}, but {listed}; "
            "add rows, merge rare classes, or drop them"
        )


def make_split(
    target: Target,
    *,
    test_size: float,
    validation_size: float,
    seed: int,
    origin: str,
    groups: np.ndarray | None = None,
) -> Split:
    """Split rows into train / validation / test (stratified when classifying)."""
    rows = np.arange(len(target.values))
    if groups is not None:
        outer = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
        rest, test = next(outer.split(rows, groups=groups))
        inner = GroupShuffleSplit(n_splits=1, test_size=validation_size, random_state=seed)
        train, val = next(inner.split(rest, groups=groups[rest]))
        return Split(train=rest[train], validation=rest[val], test=test)
    check_class_counts(
        target, needed=3, why="to appear in the train, validation and test parts", origin=origin
    )
    stratify = target.values if target.classes is not None else None
    try:
        rest, test = train_test_split(
            rows, test_size=test_size, random_state=seed, stratify=stratify
        )
        inner = target.values[rest] if stratify is not None else None
        train, val = train_test_split(
            rest, test_size=validation_size, random_state=seed, stratify=inner
        )
    except ValueError as exc:
        raise DataError(
            f"{origin}: cannot split {len(rows)} rows with data.test_size={test_size} and "
            f"data.validation_size={validation_size}: {exc}. Use more rows or other sizes"
        ) from None
    return Split(train=np.sort(train), validation=np.sort(val), test=np.sort(test))


def _float32_target(series: pd.Series, origin: str) -> np.ndarray:
    wide = series.to_numpy(np.float64)
    rows = np.flatnonzero(np.abs(wide) > np.finfo(np.float32).max)
    if len(rows):
        raise DataError(
            f"{origin}: the target holds {series.iloc[rows[0]]} in {len(rows)} row(s) (rows "
            f"{shown_rows(rows)}), beyond the float32 range (about 3.4e38) that training "
            "uses; rescale the target (e.g. to other units or its logarithm)"
        )
    return wide.astype(np.float32)


def _infer_task(series: pd.Series, *, numeric: bool) -> Task:
    distinct = series.nunique()
    if numeric:
        values = series.to_numpy(np.float64)
        integral = bool(np.all(np.isclose(values, np.round(values))))
        if not integral or distinct > _MAX_AUTO_CLASSES:
            return "regression"
    return "binary" if distinct == 2 else "multiclass"


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so classes round-trip through JSON."""
    return value.item() if hasattr(value, "item") else value
