"""Target encoding, task detection and the seeded train / validation / test split.

The test rows are set aside first (stratified for classification, seeded) and are never
used for training or selection; the validation rows come from what is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

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

    def scale(self, rows: np.ndarray) -> tuple[float, float] | None:
        """Regression: the (mean, std) of ``rows``' targets, which training standardizes
        with; None for classification."""
        if self.task != "regression":
            return None
        values = self.values[rows]
        return float(values.mean()), float(values.std() or 1.0)

    def training_values(self, rows: np.ndarray, scale: tuple[float, float] | None) -> np.ndarray:
        """The targets of ``rows`` as the model learns them (standardized for regression)."""
        values: np.ndarray = self.values[rows]
        if scale is None:
            return values
        return np.asarray((values - scale[0]) / scale[1], dtype=np.float32)


@dataclass(frozen=True)
class Split:
    """Row indices of each part."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def check_target_values(raw: RawData) -> None:
    """Raise ``DataError`` naming the rows whose target is missing, empty or infinite."""
    series = pd.Series(raw.target)
    if series.empty:
        raise DataError(
            f"{raw.origin}: the data has no rows; a dataset needs at least a few rows of "
            "inputs and targets"
        )
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
        # decided by the training rows, as it would be without a separate test file
        known = series if raw.test_rows is None else _without(series, raw.test_rows)
        task = _infer_task(known, numeric=numeric)
    if task == "regression":
        if not numeric:
            example = series[~series.map(_is_number)].iloc[0]
            raise DataError(
                f"{raw.origin}: regression needs a numeric target, but it holds {example!r}; "
                "set data.task to binary or multiclass, or fix the target column"
            )
        return Target(task="regression", values=_float32_target(series, raw.origin), classes=None)
    if raw.test_rows is not None:
        _check_test_classes(series, raw.test_rows, origin=raw.origin, test=raw.test_origin)
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
    test_rows: np.ndarray | None = None,
) -> Split:
    """Split rows into train / validation / test (stratified when classifying).

    Args:
        target: the encoded target of every row.
        test_size: the share of rows drawn for the test part (unused with ``test_rows``).
        validation_size: the share of the remaining rows drawn for validation.
        seed: seeds both draws.
        origin: the data's origin, for messages.
        groups: group id per row; a group is never split between parts.
        test_rows: the test part when it is fixed (``data.test_source``): only the other
            rows are split, into train and validation.

    Raises:
        DataError: too few rows, classes or groups for the parts.
    """
    rows = np.arange(len(target.values))
    rest = rows if test_rows is None else np.setdiff1d(rows, test_rows)
    parts = ["train", "validation"] if test_rows is not None else ["train", "validation", "test"]
    if groups is not None:
        _check_group_count(groups[rest], parts=parts, origin=origin)
    else:
        check_class_counts(
            Target(task=target.task, values=target.values[rest], classes=target.classes),
            needed=len(parts),
            why=f"to appear in the {', '.join(parts[:-1])} and {parts[-1]} parts",
            origin=origin,
        )
    try:
        if test_rows is None:
            rest, test = _draw(rows, test_size, target=target, groups=groups, seed=seed)
        else:
            test = np.sort(test_rows)
        train, val = _draw(rest, validation_size, target=target, groups=groups, seed=seed)
    except ValueError as exc:
        sizes = f"data.validation_size={validation_size}"
        if test_rows is None:
            sizes = f"data.test_size={test_size} and {sizes}"
        raise DataError(
            f"{origin}: cannot split {len(rest if test_rows is not None else rows)} rows with "
            f"{sizes}: {exc}. Use more rows or other sizes"
        ) from None
    if groups is not None:
        return Split(train=train, validation=val, test=test)
    return Split(train=np.sort(train), validation=np.sort(val), test=np.sort(test))


def _draw(
    rows: np.ndarray, size: float, *, target: Target, groups: np.ndarray | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``rows`` into (kept, drawn): ``size`` of them drawn, by group or stratified."""
    # imported here: loading a predictor imports this package, and scikit-learn (with
    # SciPy) takes seconds that tunelab predict does not need
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    if groups is not None:
        splitter = GroupShuffleSplit(n_splits=1, test_size=size, random_state=seed)
        kept, drawn = next(splitter.split(rows, groups=groups[rows]))
        return rows[kept], rows[drawn]
    stratify = target.values[rows] if target.classes is not None else None
    kept, drawn = train_test_split(rows, test_size=size, random_state=seed, stratify=stratify)
    return np.asarray(kept), np.asarray(drawn)


def _check_group_count(groups: np.ndarray, *, parts: list[str], origin: str) -> None:
    distinct = pd.unique(pd.Series(groups))
    if len(distinct) >= len(parts):
        return
    shown = ", ".join(repr(_plain(g)) for g in distinct[:5])
    raise DataError(
        f"{origin}: data.group_column gives {len(distinct)} group(s) ({shown}); a group "
        f"is kept whole in one part, so the {', '.join(parts[:-1])} and {parts[-1]} parts "
        f"need at least {len(parts)} groups. Use data with more groups, or unset "
        "data.group_column"
    )


def _check_test_classes(
    series: pd.Series, test_rows: np.ndarray, *, origin: str, test: str | None
) -> None:
    """Refuse test classes the training rows never show: no model can predict them."""
    seen = set(_without(series, test_rows))
    unseen = series.iloc[test_rows][~series.iloc[test_rows].isin(seen)]
    if unseen.empty:
        return
    counts = unseen.value_counts(sort=False)
    listed = ", ".join(f"{_plain(label)!r} ({count} rows)" for label, count in counts.items())
    raise DataError(
        f"{test}: the test rows hold class(es) that the training rows of {origin} never show: "
        f"{listed}; a model cannot predict a class it never saw. Drop those test rows or add "
        "examples of them to the training data"
    )


def _without(series: pd.Series, rows: np.ndarray) -> pd.Series:
    return series.iloc[np.setdiff1d(np.arange(len(series)), rows)]


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
