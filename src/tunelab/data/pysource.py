"""``py:module:function``: your own loader, called with the entries of ``data.options``.

It returns ``(inputs, target)`` or a dict with the keys ``inputs`` and ``target`` and,
optionally, ``modality`` and ``groups``; or a Hugging Face ``datasets.Dataset`` (or
``DatasetDict``), read like an ``hfds:`` source (``data.target``, ``data.text_column``,
``data.split``). A ``Dataset`` given as the inputs is read as a table. The inputs decide
the modality unless ``modality`` (or ``data.modality``) says otherwise: a DataFrame or a
2-D array is a table, a 3-D array signals (N, C, L), a 4-D array images (N, C, H, W), a
list or 1-D array of strings text.

Example::

    # my_data.py
    def load(rows: int = 100):
        X = np.random.default_rng(0).normal(size=(rows, 4))
        return X, (X[:, 0] > 0).astype(int)

    # config: data: {source: "py:my_data:load", options: {rows: 200}}
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, get_args

import numpy as np
import pandas as pd

from tunelab.config import DataConfig
from tunelab.data.base import Inputs, Modality, RawData
from tunelab.data.files import array_inputs, check_columns, mark_categorical, text_inputs
from tunelab.errors import ConfigError, DataError

_KEYS = ("inputs", "target", "modality", "groups")
_BY_NDIM: dict[int, Modality] = {2: "tabular", 3: "signal", 4: "image"}
_ACCEPTED = (
    "return (inputs, target) or a dict with the keys inputs and target (optionally modality "
    "and groups), where inputs is a DataFrame, an array (N, F), (N, C, L) or (N, C, H, W), "
    "or a list of strings"
)


def load_py(value: str, cfg: DataConfig, *, field: str = "data.source") -> RawData:
    """Call the user's ``module:function`` and check what it returns."""
    # Imported here: tunelab.models is heavy (torch.nn) and may import tunelab.data itself.
    from tunelab.models.local import import_function

    origin = f"py:{value}"
    function = import_function(value, field=field)
    if not callable(function):
        raise ConfigError(
            f"{field}: {origin} names a {type(function).__name__}, not a function; "
            "point it at a function that returns the data"
        )
    _check_options(function, cfg.options, origin)
    return raw_from_returned(function(**cfg.options), cfg, origin=origin)


def raw_from_returned(result: Any, cfg: DataConfig, *, origin: str) -> RawData:
    """What a ``py:`` loader returned (or the ``X, y`` an estimator's ``fit`` got) ->
    ``RawData``, shaped and checked as every source's data is.

    Raises:
        DataError: the inputs or target cannot be used (shape, type, row counts).
    """
    if _is_hf_dataset(result):
        return _from_hf_dataset(result, cfg, origin)
    inputs, target, said, groups = _unpack(result, origin)
    modality = _modality(said, cfg, origin)
    shaped_modality, shaped = _shape_inputs(inputs, modality, cfg, origin)
    target_array = _column(target, name="target", rows=len(shaped), origin=origin)
    group_array = (
        None if groups is None else _column(groups, name="groups", rows=len(shaped), origin=origin)
    )
    return RawData(
        modality=shaped_modality,
        inputs=shaped,
        target=target_array,
        origin=origin,
        groups=group_array,
    )


def _is_hf_dataset(value: Any) -> bool:
    # by module, so that datasets is imported only when the function returned one of its own
    return type(value).__module__.split(".")[0] == "datasets"


def _from_hf_dataset(dataset: Any, cfg: DataConfig, origin: str) -> RawData:
    from tunelab.data.hfds import dataset_rows, splits_of
    from tunelab.data.test_source import append_test_rows

    if not hasattr(dataset, "features") and not hasattr(dataset, "keys"):
        raise DataError(f"{origin} returned a {type(dataset).__name__}; {_ACCEPTED}")
    train, test = splits_of(dataset, cfg.split, origin=origin)
    raw = dataset_rows(train[1], cfg, origin=origin)
    if test is None:
        return raw
    rows = dataset_rows(test[1], cfg, origin=f"{origin} [{test[0]}]")
    return append_test_rows(raw, rows, categorical=cfg.categorical)


def _check_options(function: Callable[..., Any], options: dict[str, Any], origin: str) -> None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # some builtins have no signature; the call itself will complain
    try:
        signature.bind(**options)
    except TypeError as exc:
        raise ConfigError(
            f"data.options: {origin} cannot be called with {sorted(options) or 'no options'} "
            f"({exc}); its parameters are {list(signature.parameters) or 'none'}. Fix "
            "data.options"
        ) from None


def _unpack(result: Any, origin: str) -> tuple[Any, Any, str | None, Any]:
    if isinstance(result, tuple | list) and len(result) == 2:
        return result[0], result[1], None, None
    if isinstance(result, dict):
        unknown = sorted(str(k) for k in result if k not in _KEYS)
        missing = [k for k in ("inputs", "target") if k not in result]
        if unknown or missing:
            raise DataError(
                f"{origin} returned a dict with the keys {sorted(map(str, result))}; "
                f"missing: {missing or 'none'}, unknown: {unknown or 'none'}. {_ACCEPTED}"
            )
        said = result.get("modality")
        if said is not None and not isinstance(said, str):
            raise DataError(f"{origin} returned modality {said!r}; it must be a string")
        return result["inputs"], result["target"], said, result.get("groups")
    raise DataError(f"{origin} returned {_describe(result)}; {_ACCEPTED}")


def _modality(said: str | None, cfg: DataConfig, origin: str) -> Modality | None:
    valid: tuple[Modality, ...] = get_args(Modality)
    if said is not None and said not in valid:
        raise DataError(
            f"{origin} returned modality {said!r}; valid: {', '.join(valid)}. Fix the "
            "function's return value"
        )
    if cfg.modality == "auto":
        return next((m for m in valid if m == said), None)
    if said is not None and said != cfg.modality:
        raise ConfigError(
            f"data.modality: got {cfg.modality!r}, but {origin} says its data is {said!r}; "
            "set data.modality to auto or to the same value"
        )
    return cfg.modality


def _shape_inputs(
    inputs: Any, modality: Modality | None, cfg: DataConfig, origin: str
) -> tuple[Modality, Inputs]:
    if _is_hf_dataset(inputs) and hasattr(inputs, "features"):
        from tunelab.data.hfds import dataset_frame

        inputs = dataset_frame(inputs, origin=origin)
    if isinstance(inputs, pd.DataFrame):
        return _table_inputs(inputs, modality, cfg, origin)
    if cfg.text_column is not None:
        raise ConfigError(
            f"data.text_column: {origin} returned {_describe(inputs)}, not a table, so there "
            "is no column to read; unset data.text_column or return a DataFrame"
        )
    if isinstance(inputs, pd.Series):
        inputs = inputs.to_numpy()
    if isinstance(inputs, list | tuple) and inputs and all(isinstance(v, str) for v in inputs):
        inputs = np.array(inputs, dtype=object)
    try:
        array = np.asarray(inputs)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{origin} returned inputs that are not an array ({exc}); {_ACCEPTED}"
        ) from None
    if array.ndim == 0 or len(array) == 0:
        raise DataError(f"{origin} returned no input rows ({_describe(inputs)}); {_ACCEPTED}")
    # Any string in a 1-D array makes it text; text_inputs then names the blank rows.
    texts = (
        array.ndim == 1
        and array.dtype.kind in "USO"
        and any(isinstance(v, str) for v in array.tolist())
    )
    if modality is None and texts:
        modality = "text"
    elif modality is None:
        if array.ndim not in _BY_NDIM:
            raise DataError(
                f"{origin} returned inputs of shape {array.shape} and dtype {array.dtype}; "
                f"{_ACCEPTED}"
            )
        modality = _BY_NDIM[array.ndim]
    if modality == "text":
        return "text", text_inputs(pd.Series(array.tolist()), origin=origin, column="inputs")
    return array_inputs(array, modality=modality, origin=origin)


def _table_inputs(
    inputs: pd.DataFrame, modality: Modality | None, cfg: DataConfig, origin: str
) -> tuple[Modality, Inputs]:
    frame = inputs.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    wanted = "text" if cfg.text_column is not None else "tabular"
    if modality not in (None, wanted):
        raise DataError(
            f"{origin} returned a DataFrame, which gives {wanted} inputs, but the modality is "
            f"{modality!r}; return an array for images and signals, or set the modality to "
            f"{wanted}"
        )
    named = {
        "data.features": cfg.features,
        "data.categorical": cfg.categorical,
        "data.text_column": None if cfg.text_column is None else [cfg.text_column],
    }
    for field, names in named.items():
        if names is not None:
            check_columns(names, list(frame.columns), field=field, origin=origin)
    if cfg.text_column is not None:
        texts = text_inputs(frame[cfg.text_column], origin=origin, column=cfg.text_column)
        return "text", texts
    if cfg.features is not None:
        frame = frame[cfg.features]
    if len(frame) == 0 or frame.shape[1] == 0:
        raise DataError(
            f"{origin} returned a table with {len(frame)} rows and {frame.shape[1]} "
            "columns; it needs rows and at least one input column"
        )
    return "tabular", mark_categorical(frame, cfg.categorical)


def _column(values: Any, *, name: str, rows: int, origin: str) -> np.ndarray:
    array = np.asarray(values.to_numpy() if isinstance(values, pd.Series) else values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or len(array) != rows:
        raise DataError(
            f"{origin} returned {rows} input rows but {name} of shape {array.shape}; "
            f"return one {name} value per input row"
        )
    return array


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"a {type(value).__name__} of shape {tuple(shape)}"
    if isinstance(value, tuple | list):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"
