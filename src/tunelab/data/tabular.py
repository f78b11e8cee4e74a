"""Tables -> one float matrix: scaled numbers and one-hot categories, stored as plain JSON.

scikit-learn fits the encoding (median imputation + standard scaling for numbers,
most-frequent imputation + one-hot for categories); the fitted numbers are then copied into
plain lists, so a trained model's encoder is saved as JSON (never pickle) and applied with
numpy at predict time, where it gives the same matrix as the fitted scikit-learn
``ColumnTransformer``.

Example::

    encoder = TabularEncoder.fit(train_frame, categorical=["zip_code"])
    (features,) = encoder.transform(new_frame)  # float32 tensor (N, F)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from tunelab.data.base import Inputs
from tunelab.data.checks import stray_text_message
from tunelab.errors import DataError
from tunelab.registry import closest

if TYPE_CHECKING:  # scikit-learn fits; a saved encoder predicts without it (tunelab predict)
    from sklearn.compose import ColumnTransformer

# A categorical column is noted in the run's notes when it has more categories than this,
# or (with 10 or more) fewer than this many training rows per category on average.
_MANY_CATEGORIES = 500
_ROWS_PER_CATEGORY = 4


@dataclass(frozen=True)
class NumericColumn:
    """A numeric column: missing -> ``median``, then ``(x - mean) / scale``."""

    name: str
    median: float
    mean: float
    scale: float


@dataclass(frozen=True)
class CategoricalColumn:
    """A categorical column: missing -> ``fill``, then one 0/1 output per category.

    ``as_text`` marks a column whose training values mixed text and numbers; its values are
    compared as text (scikit-learn cannot one-hot such a column as it is).
    """

    name: str
    fill: Any
    categories: list[Any]
    as_text: bool = False


class TabularEncoder:
    """DataFrame -> ``(float32 tensor (N, F),)``; numeric columns first, then one-hots.

    Columns holding text, categories or booleans are one-hot encoded, as are the columns
    named in ``categorical``; all other columns must be numeric. Categories not seen in
    training encode as all zeros. A column that is empty in every training row is kept (its
    missing values become 0), so the number of features never depends on the rows drawn.
    """

    kind = "tabular"

    def __init__(
        self,
        *,
        feature_names_in: list[str],
        numeric: list[NumericColumn],
        categorical: list[CategoricalColumn],
        notes: list[str] | None = None,
    ) -> None:
        self.feature_names_in = feature_names_in
        self.numeric = numeric
        self.categorical = categorical
        # what the user should know about the fitted encoding (for the run's notes)
        self.notes = notes or []

    @classmethod
    def fit(
        cls, frame: pd.DataFrame, *, categorical: Sequence[str] | None = None
    ) -> TabularEncoder:
        """Fit the encoding on the training rows.

        Args:
            frame: the training inputs, one column per feature.
            categorical: columns to one-hot even though they hold numbers (codes, ids).

        Raises:
            DataError: no rows or columns, duplicate or unknown column names, a column
                whose type is neither numeric nor categorical (dates, for example), or a
                column of numbers with a few text cells (not named in ``categorical``).
        """
        frame = _string_columns(frame)
        _check_fit_frame(frame)
        forced = set(categorical or [])
        unknown = [name for name in forced if name not in frame.columns]
        if unknown:
            raise DataError(
                f"data.categorical names column(s) {_listed(sorted(unknown))} that the table "
                f"lacks; its columns are: {', '.join(frame.columns)}. Fix the names or "
                "remove them from data.categorical"
            )
        numeric_names, categorical_names = _split_columns(frame, forced)
        for name in categorical_names:
            stray = None if name in forced else stray_text_message(frame[name], name)
            if stray:
                raise DataError(stray)
        as_text = {name: _mixes_types(frame[name]) for name in categorical_names}
        prepared = pd.DataFrame(
            {name: _numeric_values(frame[name], name) for name in numeric_names}
            | {name: _categorical_values(frame[name], as_text[name]) for name in categorical_names},
            columns=[*numeric_names, *categorical_names],
        )
        transformer = _column_transformer(numeric_names, categorical_names).fit(prepared)
        categorical_columns = _categorical_params(transformer, categorical_names, as_text)
        return cls(
            feature_names_in=list(frame.columns),
            numeric=_numeric_params(transformer, numeric_names),
            categorical=categorical_columns,
            notes=[
                note
                for column in categorical_columns
                if (note := _many_categories_note(column, rows=len(frame)))
            ],
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(F,)``: the number of encoded features."""
        return (len(self.feature_names_out),)

    @property
    def feature_names_out(self) -> list[str]:
        """One name per encoded feature: ``column`` or ``column=category``."""
        names = [column.name for column in self.numeric]
        for column in self.categorical:
            names.extend(f"{column.name}={value}" for value in column.categories)
        return names

    def transform(self, inputs: Inputs) -> tuple[torch.Tensor, ...]:
        """Encode a table with the columns seen in training (extra columns are ignored).

        Raises:
            DataError: not a DataFrame, missing columns, or a numeric column holding text or
                infinite values; the message names the column, the row and the fix.
        """
        frame = self._check_inputs(inputs)
        blocks: list[np.ndarray] = []
        if self.numeric:
            values = self._numbers(frame)
            median = np.array([c.median for c in self.numeric])
            mean = np.array([c.mean for c in self.numeric])
            scale = np.array([c.scale for c in self.numeric])
            values = np.where(np.isnan(values), median, values)
            blocks.append((values - mean) / scale)
        blocks.extend(_one_hot(frame[c.name], c) for c in self.categorical)
        width = self.input_shape[0]
        matrix = np.hstack(blocks) if blocks else np.zeros((len(frame), width))
        return (torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32)),)

    def raw_columns(self, inputs: Inputs) -> tuple[np.ndarray, np.ndarray]:
        """The table before scaling and one-hot, as an exported model takes it.

        Returns:
            The numeric columns as float64 (N, numeric), NaN where missing; and each
            categorical column's category codes as int64 (N, categorical): the position in
            ``categories``, the fill value's for a missing cell, -1 for a category not seen
            in training.

        Raises:
            DataError: as ``transform``.
        """
        frame = self._check_inputs(inputs)
        numbers = self._numbers(frame) if self.numeric else np.zeros((len(frame), 0))
        codes = [_codes(frame[c.name], c) for c in self.categorical]
        stacked = np.column_stack(codes) if codes else np.zeros((len(frame), 0), np.int64)
        return numbers, stacked.astype(np.int64)

    def _numbers(self, frame: pd.DataFrame) -> np.ndarray:
        return np.column_stack(
            [_numeric_values(frame[c.name], c.name) for c in self.numeric]
        ).reshape(len(frame), len(self.numeric))

    def to_dict(self) -> dict[str, Any]:
        """The fitted encoding as JSON-able data (see ``from_dict``)."""
        return {
            "kind": self.kind,
            "feature_names_in": list(self.feature_names_in),
            "numeric": [
                {"name": c.name, "median": c.median, "mean": c.mean, "scale": c.scale}
                for c in self.numeric
            ],
            "categorical": [
                {
                    "name": c.name,
                    "fill": c.fill,
                    "categories": list(c.categories),
                    "as_text": c.as_text,
                }
                for c in self.categorical
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], directory: Path) -> TabularEncoder:
        """Rebuild an encoder saved with ``to_dict`` (``directory`` is unused)."""
        try:
            return cls(
                feature_names_in=[str(name) for name in data["feature_names_in"]],
                numeric=[
                    NumericColumn(
                        name=str(c["name"]),
                        median=float(c["median"]),
                        mean=float(c["mean"]),
                        scale=float(c["scale"]),
                    )
                    for c in data["numeric"]
                ],
                categorical=[
                    CategoricalColumn(
                        name=str(c["name"]),
                        fill=c["fill"],
                        categories=list(c["categories"]),
                        as_text=bool(c.get("as_text", False)),
                    )
                    for c in data["categorical"]
                ],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"the saved tabular encoder in {directory} is incomplete or damaged ({exc!r}); "
                "re-train the model to write it again"
            ) from None

    def _check_inputs(self, inputs: Inputs) -> pd.DataFrame:
        if not isinstance(inputs, pd.DataFrame):
            raise DataError(
                f"this model takes a pandas DataFrame with the columns "
                f"{', '.join(self.feature_names_in)}, but got {type(inputs).__name__}; "
                "build one with pd.DataFrame(rows, columns=[...])"
            )
        frame = _string_columns(inputs)
        missing = [name for name in self.feature_names_in if name not in frame.columns]
        if missing:
            present = [str(c) for c in frame.columns]
            hints = []
            for name in missing:
                close = closest(name, present)
                if close:
                    hints.append(f"{close[0]!r} for {name!r}")
            hint = f" Did you mean {', '.join(hints)}?" if hints else ""
            raise DataError(
                f"the input table lacks {len(missing)} column(s) the model was trained on: "
                f"{_listed(missing)}. The model expects the columns "
                f"{', '.join(self.feature_names_in)} (extra columns are ignored). Add the "
                f"missing columns; leave cells empty where a value is unknown.{hint}"
            )
        return frame


def _string_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Column names as text, so names survive JSON (and ``0`` and ``'0'`` mean the same)."""
    if all(isinstance(c, str) for c in frame.columns):
        return frame
    renamed = frame.copy(deep=False)
    renamed.columns = [str(c) for c in frame.columns]
    return renamed


def _check_fit_frame(frame: pd.DataFrame) -> None:
    if frame.shape[1] == 0:
        raise DataError("the table has no feature columns; check data.features and data.target")
    if len(frame) == 0:
        raise DataError("the table has no rows to fit the encoding on; check the data file")
    duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if duplicated:
        raise DataError(
            f"the table has more than one column named {_listed(duplicated)}; "
            "give every column a distinct name"
        )


def _split_columns(frame: pd.DataFrame, forced: set[str]) -> tuple[list[str], list[str]]:
    numeric: list[str] = []
    categorical: list[str] = []
    for name in frame.columns:
        dtype = frame[name].dtype
        if name in forced or _is_categorical_dtype(dtype):
            categorical.append(name)
        elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
            numeric.append(name)
        else:
            raise DataError(
                f"column {name!r} has type {dtype}, which is neither numbers nor categories; "
                "convert it to numbers (e.g. a date to days since some day) or to text, list "
                "it in data.categorical, or leave it out of data.features"
            )
    return numeric, categorical


def _is_categorical_dtype(dtype: Any) -> bool:
    types = pd.api.types
    return bool(
        types.is_object_dtype(dtype)
        or types.is_string_dtype(dtype)
        or types.is_bool_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
    )


def _numeric_values(series: pd.Series, name: str) -> np.ndarray:
    """A column as float64 with NaN for missing; text or infinities raise ``DataError``."""
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        values = np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan))
    else:
        # Blank cells are missing values, as they are in a CSV file.
        cleaned = series.map(lambda v: np.nan if isinstance(v, str) and not v.strip() else v)
        coerced = pd.to_numeric(cleaned, errors="coerce")
        bad = np.flatnonzero(coerced.isna().to_numpy() & cleaned.notna().to_numpy())
        if len(bad):
            row = int(bad[0])
            raise DataError(
                f"column {name!r} must hold numbers, as it did in training, but row {row} "
                f"holds {series.iloc[row]!r} ({len(bad)} such row(s)); fix those values, or "
                "leave the cells empty to use the training median"
            )
        values = np.asarray(coerced.to_numpy(dtype=np.float64, na_value=np.nan))
    infinite = np.flatnonzero(np.isinf(values))
    if len(infinite):
        row = int(infinite[0])
        raise DataError(
            f"column {name!r} holds {values[row]} in row {row} ({len(infinite)} such row(s)); "
            "replace infinities with finite numbers or leave the cells empty"
        )
    return values


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number | np.bool_)


def _mixes_types(series: pd.Series) -> bool:
    """True when the values are neither all text nor all numbers."""
    present = [v for v in series.astype(object) if not _is_missing(v)]
    all_text = all(isinstance(v, str) for v in present)
    return not all_text and not all(_is_number(v) for v in present)


def _is_missing(value: Any) -> bool:
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float | np.floating) and bool(np.isnan(value)))
    )


def _categorical_values(series: pd.Series, as_text: bool) -> np.ndarray:
    """A column as an object array with NaN for missing (what the scikit-learn imputer sees)."""
    values = np.array(series.astype(object), dtype=object)
    missing = np.array([_is_missing(v) for v in values], dtype=bool)
    if as_text:
        values = np.array([str(v) for v in values], dtype=object)
    values[missing] = np.nan
    return values


def _many_categories_note(column: CategoricalColumn, *, rows: int) -> str | None:
    """A note for a column with so many categories that most are seen only a few times
    (ids, names, free text): each is one more input the model can only memorize."""
    count = len(column.categories)
    if count <= _MANY_CATEGORIES and (count < 10 or count * _ROWS_PER_CATEGORY <= rows):
        return None
    return (
        f"column {column.name!r} is categorical with {count} distinct values in {rows} "
        f"training rows (one-hot, {count} columns); consider dropping it (list the other "
        "columns in data.features) or grouping rare values, and if it holds free text, use "
        "data.text_column with a text model"
    )


def _column_transformer(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    # keep_empty_features: a column empty in every training row imputes 0 instead of being
    # dropped, so the number of features does not depend on which rows were drawn.
    steps: list[tuple[str, Any, list[str]]] = []
    if numeric:
        steps.append(
            (
                "numeric",
                make_pipeline(
                    SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()
                ),
                numeric,
            )
        )
    if categorical:
        steps.append(
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent", keep_empty_features=True),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                categorical,
            )
        )
    return ColumnTransformer(steps, sparse_threshold=0.0)


def _numeric_params(transformer: ColumnTransformer, names: list[str]) -> list[NumericColumn]:
    if not names:
        return []
    pipeline = transformer.named_transformers_["numeric"]
    imputer, scaler = pipeline.steps[0][1], pipeline.steps[1][1]
    return [
        NumericColumn(
            name=name,
            median=float(imputer.statistics_[i]),
            mean=float(scaler.mean_[i]),
            scale=float(scaler.scale_[i]),
        )
        for i, name in enumerate(names)
    ]


def _categorical_params(
    transformer: ColumnTransformer, names: list[str], as_text: dict[str, bool]
) -> list[CategoricalColumn]:
    if not names:
        return []
    pipeline = transformer.named_transformers_["categorical"]
    imputer, one_hot = pipeline.steps[0][1], pipeline.steps[1][1]
    return [
        CategoricalColumn(
            name=name,
            fill=_plain(imputer.statistics_[i]),
            categories=[_plain(v) for v in one_hot.categories_[i]],
            as_text=as_text[name],
        )
        for i, name in enumerate(names)
    ]


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so the encoder round-trips through JSON."""
    return value.item() if isinstance(value, np.generic) else value


def _key(value: Any) -> tuple[str, Any] | None:
    # Numbers compare by value (1 == 1.0 == True, as Python and scikit-learn compare them),
    # text by text; anything else is an unseen category.
    if isinstance(value, str):
        return ("text", value)
    if _is_number(value):
        return ("number", float(value))
    return None


def _codes(series: pd.Series, column: CategoricalColumn) -> np.ndarray:
    """Each cell's position in ``column.categories`` (missing: the fill's; unseen: -1)."""
    values = _categorical_values(series, column.as_text)
    fill = _key(column.fill)
    index = {_key(v): i for i, v in enumerate(column.categories)}
    return np.array(
        [index.get(fill if _is_missing(v) else _key(v), -1) for v in values], dtype=np.int64
    )


def _one_hot(series: pd.Series, column: CategoricalColumn) -> np.ndarray:
    codes = _codes(series, column)
    out = np.zeros((len(codes), len(column.categories)))
    seen = codes >= 0
    out[np.flatnonzero(seen), codes[seen]] = 1.0
    return out


def _listed(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)
