"""``data.test_source``: a predefined test set (a benchmark's, a competition's, a later period).

The test file is loaded like the training file and its rows are appended after the training
rows; ``RawData.test_rows`` marks them, so the split uses them as the test part and draws
only the validation rows from the training file. Everything after the split is unchanged:
the test rows are used once, for the final metrics. The test file must look like the
training file: the same kind of inputs, the same columns holding the same kind of values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from tunelab.data.base import Inputs, RawData
from tunelab.data.files import mark_categorical
from tunelab.errors import DataError


def append_test_rows(
    train: RawData, test: RawData, *, categorical: Sequence[str] | None = None
) -> RawData:
    """The training data with the test file's rows appended and marked as ``test_rows``.

    Args:
        train: what ``data.source`` loaded.
        test: what ``data.test_source`` loaded.
        categorical: ``data.categorical``, marked again on the joined table.

    Raises:
        DataError: the two differ in kind of inputs, columns, kind of column values, example
            shape, or in whether they give groups.
    """
    if test.modality != train.modality:
        raise DataError(
            f"{test.origin}: data.test_source gives {test.modality} inputs but data.source "
            f"({train.origin}) gives {train.modality} inputs; give a test set of the same kind"
        )
    if (train.groups is None) != (test.groups is None):
        has, lacks = (train, test) if test.groups is None else (test, train)
        raise DataError(
            f"{lacks.origin} gives no groups but {has.origin} does; give a group for every "
            "row of both, or unset data.group_column"
        )
    inputs = _joined_inputs(train, test, categorical)
    return replace(
        train,
        inputs=inputs,
        target=_joined(train.target, test.target),
        groups=None if train.groups is None else _joined(train.groups, test.groups),
        test_rows=np.arange(len(train), len(train) + len(test)),
        test_origin=test.origin,
    )


def _joined_inputs(train: RawData, test: RawData, categorical: Sequence[str] | None) -> Inputs:
    if isinstance(train.inputs, pd.DataFrame) and isinstance(test.inputs, pd.DataFrame):
        table = _same_columns(train.inputs, test.inputs, origin=train.origin, test=test.origin)
        joined = pd.concat([train.inputs, table], ignore_index=True)
        # concat turns category columns with different categories into plain objects
        return mark_categorical(joined, categorical)
    first, second = np.asarray(train.inputs), np.asarray(test.inputs)
    if first.shape[1:] != second.shape[1:]:
        raise DataError(
            f"{test.origin}: the test examples have shape {second.shape[1:]} but the training "
            f"examples ({train.origin}) have shape {first.shape[1:]}; give test inputs of the "
            "same shape"
        )
    return np.concatenate([first, second])


def _same_columns(
    table: pd.DataFrame, test_table: pd.DataFrame, *, origin: str, test: str
) -> pd.DataFrame:
    """The test table with the training table's columns, in their order, once both are
    known to hold the same columns with the same kind of values."""
    columns = [str(c) for c in table.columns]
    present = [str(c) for c in test_table.columns]
    missing = [name for name in columns if name not in present]
    extra = [name for name in present if name not in columns]
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"lacks the input column(s) {_listed(missing)}")
        if extra:
            problems.append(f"has the column(s) {_listed(extra)}, which {origin} lacks")
        raise DataError(
            f"{test}: the test file {' and '.join(problems)}; its input columns must be those "
            f"of the training file: {', '.join(columns)}. Add or remove those columns, or "
            "name the inputs in data.features"
        )
    for name in columns:
        _same_kind(table[name], test_table[name], name=name, origin=origin, test=test)
    return test_table[columns]


def _same_kind(
    values: pd.Series, test_values: pd.Series, *, name: str, origin: str, test: str
) -> None:
    """Refuse a column of numbers in one file that holds text in the other: the encoder
    fitted on the training rows would read every test value as an unseen category."""
    kind, test_kind = _kind(values), _kind(test_values)
    if kind is None or test_kind is None or kind == test_kind:
        return
    row = int(np.flatnonzero(test_values.notna().to_numpy())[0])
    raise DataError(
        f"{test}: column {name!r} holds {test_kind} (row {row} holds "
        f"{test_values.iloc[row]!r}) but {kind} in the training file {origin}; a column "
        "must hold the same kind of values in both files. Fix the test file's column"
    )


def _kind(values: pd.Series) -> str | None:
    """``numbers`` or ``text``; None for a column that is empty, or categorical by the
    user's word (data.categorical), which fits either."""
    if isinstance(values.dtype, pd.CategoricalDtype) or not values.notna().any():
        return None
    numeric = pd.api.types.is_numeric_dtype(values.dtype)
    return "numbers" if numeric and not pd.api.types.is_bool_dtype(values.dtype) else "text"


def _listed(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)


def _joined(first: np.ndarray, second: np.ndarray | None) -> np.ndarray:
    # pandas' rules, not numpy's: ints next to strings stay as they are, not all strings
    parts = [pd.Series(first), pd.Series(second)]
    return np.asarray(pd.concat(parts, ignore_index=True).to_numpy())
