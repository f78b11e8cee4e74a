"""Checks a loaded dataset passes before anything is fitted on it.

A NaN in an array gives NaN standardization statistics and a model that predicts one class;
an infinite target gives null metrics. Neither raises by itself, so every source's data is
checked here, once, with the row numbers of the file the user can open (an encoder fitted
later sees only the training rows, renumbered). Missing cells of a table are the exception:
the tabular encoder imputes them, as documented, and only infinities are refused. A table
column of numbers with a few text cells is refused here too, before it is one-hot encoded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tunelab.data.base import RawData
from tunelab.errors import DataError

# Rows listed in a message; the rest are counted.
_SHOWN_ROWS = 10
# A text column whose filled cells are at least this share of numbers is taken for a
# numeric column with typos ("oops", "?"), not for categories.
_MOSTLY_NUMBERS = 0.9


def check_loaded(raw: RawData) -> None:
    """Raise ``DataError`` for non-finite inputs of any kind, or a table column of numbers
    with stray text (see the module docstring)."""
    if isinstance(raw.inputs, pd.DataFrame):
        check_table_values(raw.inputs, origin=raw.origin)
    elif raw.modality in ("image", "signal"):
        problem = nonfinite_problem(np.asarray(raw.inputs))
        if problem:
            raise DataError(f"{raw.origin}: the inputs {problem}")


def nonfinite_problem(array: np.ndarray, *, flat_columns: bool = False) -> str | None:
    """What is wrong with the NaN or infinite values of an (N, C, ...) array, or None.

    Args:
        array: images (N, C, H, W) or signals (N, C, L), numeric.
        flat_columns: also name the column (``x17``) of the value in a flattened table, for
            inputs that came as one column per value.

    Returns:
        A sentence fragment naming how many values, the rows, and where the first one is.
    """
    if not np.issubdtype(array.dtype, np.floating):
        return None  # integers and booleans are always finite
    bad = ~np.isfinite(array)
    if not bad.any():
        return None
    rows = np.flatnonzero(bad.reshape(len(array), -1).any(axis=1))
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    where = _position(first)
    if flat_columns:
        where += f" (value column x{int(np.ravel_multi_index(first[1:], array.shape[1:]))})"
    return (
        f"hold {int(bad.sum())} NaN or infinite value(s) in {len(rows)} row(s) "
        f"(rows {shown_rows(rows)}); the first is {array[first]} at {where}. Replace them with "
        "finite numbers (interpolate, or fill in a value) or drop those rows"
    )


def check_table_values(frame: pd.DataFrame, *, origin: str) -> None:
    """Refuse infinite values and numeric columns with stray text, naming column and rows.

    Missing values (NaN, empty cells) pass: the tabular encoder imputes them with the
    training median. An infinity has no such meaning, so it is refused rather than guessed.
    A column of numbers with a few text cells would be one-hot encoded, one column per
    distinct number; it is refused (see ``stray_text_message``).
    """
    for name in frame.columns:
        series = frame[name]
        stray = stray_text_message(series, str(name))
        if stray:
            raise DataError(f"{origin}: {stray}")
        if not pd.api.types.is_float_dtype(series.dtype):
            continue  # only float columns can hold infinities
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        rows = np.flatnonzero(np.isinf(values))
        if len(rows):
            raise DataError(
                f"{origin}: column {name!r} holds {values[rows[0]]} in {len(rows)} row(s) "
                f"(rows {shown_rows(rows)}, counting data rows from 0); replace infinities "
                "with finite numbers, or empty those cells to have them imputed with the "
                "training median"
            )


def stray_text_message(series: pd.Series, name: str) -> str | None:
    """What is wrong with a column of numbers holding a few text cells, or None.

    Such a column (``23, 41, oops, 37``) reads as text, so it would be one-hot encoded with
    one column per distinct number. Columns with the category dtype (``data.categorical``)
    are taken as the user says and never flagged.
    """
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) or not (
        pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
    ):
        return None
    values = series.astype(object)
    # blank cells are missing values, as they are in a CSV file
    filled = values.notna() & (series.astype("string").str.strip() != "").fillna(False)
    if not filled.any():
        return None
    is_number = filled & pd.to_numeric(values.where(filled), errors="coerce").notna()
    stray = np.flatnonzero((filled & ~is_number).to_numpy())
    numbers, total = int(is_number.sum()), int(filled.sum())
    if len(stray) == 0 or numbers < _MOSTLY_NUMBERS * total:
        return None
    examples = ", ".join(f"row {r} holds {values.iloc[r]!r}" for r in stray[:3])
    if len(stray) > 3:
        examples += f", ... (rows {shown_rows(stray)})"
    return (
        f"column {name!r} holds numbers in {numbers} of its {total} filled rows but text in "
        f"{len(stray)}: {examples}, counting data rows from 0. As it is, the column would be "
        "one-hot encoded with one column per distinct number. Fix those cells or empty them "
        f"(empty cells are imputed), or list {name!r} in data.categorical if its values "
        "are categories"
    )


def shown_rows(rows: np.ndarray) -> str:
    """``"3, 7, 9"``: the first row numbers, with ``...`` when there are more."""
    more = " ..." if len(rows) > _SHOWN_ROWS else ""
    return ", ".join(str(int(r)) for r in rows[:_SHOWN_ROWS]) + more


def _position(index: tuple[int, ...]) -> str:
    row, channel, *rest = index
    if len(rest) == 2:
        return f"row {row}, channel {channel}, pixel (y={rest[0]}, x={rest[1]})"
    return f"row {row}, channel {channel}, position {rest[0]}" if rest else f"row {row}"
