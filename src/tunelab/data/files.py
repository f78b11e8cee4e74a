"""``csv:PATH``, ``parquet:PATH``, ``jsonl:PATH`` (tables) and ``npz:PATH`` (arrays).

A table needs ``data.target``; its other columns (or ``data.features``) are the inputs,
except ``data.group_column``, whose values become the group of each row. With
``data.text_column`` the inputs are that column's texts instead.

An ``.npz`` file holds the inputs as ``X`` (or ``x``, ``inputs``) and the target as ``y``
(or ``target``). Their shape decides the modality unless ``data.modality`` says otherwise:
(N, L) and (N, C, L) are signals, (N, C, H, W) images.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from tunelab.config import DataConfig
from tunelab.data.base import Inputs, Modality, RawData
from tunelab.errors import ConfigError, DataError
from tunelab.registry import closest

INPUT_KEYS = ("X", "x", "inputs")
TARGET_KEYS = ("y", "target")


def load_csv(value: str, cfg: DataConfig, *, field: str = "data.source") -> RawData:
    """A comma-separated file with a header row."""
    path = existing_file(value, prefix="csv", field=field)
    # low_memory=False: chunked type inference can mix numbers and text in one column.
    frame = read_table(path, "csv", lambda: pd.read_csv(path, low_memory=False))
    return table_data(frame, cfg, origin=str(path), prefix="csv")


def load_parquet(value: str, cfg: DataConfig, *, field: str = "data.source") -> RawData:
    """An Apache Parquet file."""
    path = existing_file(value, prefix="parquet", field=field)
    frame = read_table(path, "parquet", lambda: pd.read_parquet(path))
    return table_data(frame, cfg, origin=str(path), prefix="parquet")


def load_jsonl(value: str, cfg: DataConfig, *, field: str = "data.source") -> RawData:
    """One JSON object per line, each with the same keys."""
    path = existing_file(value, prefix="jsonl", field=field)
    # dtype=False keeps JSON's own types: no "075" -> 75, no text turned into dates.
    frame = read_table(path, "jsonl", lambda: pd.read_json(path, lines=True, dtype=False))
    return table_data(frame, cfg, origin=str(path), prefix="jsonl")


def load_npz(value: str, cfg: DataConfig, *, field: str = "data.source") -> RawData:
    """A numpy ``.npz`` archive holding the inputs and the target as arrays."""
    path = npz_file(value, field=field)
    origin = str(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(
            f"{origin}: cannot read it as a numpy .npz archive ({exc}); write it with "
            "np.savez(path, X=inputs, y=target) (object arrays are refused: nothing is "
            "unpickled)"
        ) from None
    inputs = _pick(arrays, INPUT_KEYS, origin=origin, what="inputs")
    target = _pick(arrays, TARGET_KEYS, origin=origin, what="target")
    if target.ndim == 2 and target.shape[1] == 1:
        target = target[:, 0]
    if inputs.ndim == 0 or target.ndim != 1 or len(inputs) != len(target):
        raise DataError(
            f"{origin}: the inputs have shape {inputs.shape} and the target has shape "
            f"{target.shape}; the target must be 1-D with one value per input row "
            f"(here {inputs.shape[0] if inputs.ndim else 0} rows)"
        )
    groups = _npz_groups(arrays, cfg.group_column, rows=len(target), origin=origin)
    modality = npz_modality(inputs.shape, cfg.modality, origin=origin)
    modality, shaped = array_inputs(inputs, modality=modality, origin=origin)
    return RawData(modality=modality, inputs=shaped, target=target, origin=origin, groups=groups)


def npz_file(value: str, *, field: str) -> Path:
    """The path of an ``npz:PATH`` source, which must be a zip archive."""
    path = existing_file(value, prefix="npz", field=field)
    # Checked first: numpy reads any non-zip file as a pickle and says so, which misleads.
    if not zipfile.is_zipfile(path):
        raise DataError(
            f"{path}: not a numpy .npz archive (those are zip files); write it with "
            "np.savez(path, X=inputs, y=target), or use the prefix of its format (csv:, "
            "parquet:, jsonl:)"
        )
    return path


def existing_file(value: str, *, prefix: str, field: str = "data.source") -> Path:
    """The path of a ``prefix:PATH`` source, which must be a readable file."""
    path = Path(value).expanduser()
    if not path.exists():
        raise DataError(
            f"{field}: {prefix}:{value} does not exist (looked for {path.absolute()}); "
            "check the path, which is relative to the directory tunelab runs in"
        )
    if not path.is_file():
        raise DataError(
            f"{field}: {prefix}:{value} is a directory, not a file; name the file "
            "itself (a folder of class sub-folders of images uses the images: prefix)"
        )
    return path


def read_table(path: Path, kind: str, read: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """``read()``'s table of the file at ``path``, or a ``DataError`` naming the file."""
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; fill it or point data.source elsewhere")
    try:
        frame = read()
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file holds no table; fill it or check the path") from None
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(
            f"{path}: cannot read it as {kind} ({type(exc).__name__}: {exc}); check that the "
            f"file is {kind} and that data.source uses the prefix of its format "
            "(csv:, parquet:, jsonl:, npz:)"
        ) from None
    if len(frame) == 0 or frame.shape[1] == 0:
        raise DataError(
            f"{path}: the file has {len(frame)} rows and {frame.shape[1]} columns; a "
            "dataset needs a header and at least a few rows"
        )
    frame.columns = [str(c) for c in frame.columns]
    return frame


def table_data(frame: pd.DataFrame, cfg: DataConfig, *, origin: str, prefix: str) -> RawData:
    """Split a table into inputs, target and groups as ``cfg`` says.

    Args:
        frame: the whole table, as read.
        cfg: the data section (target, features, text_column, group_column, categorical).
        origin: the file, for messages.
        prefix: the source prefix, for messages.

    Raises:
        ConfigError: ``data.target`` is not set, or the settings contradict each other.
        DataError: a named column is not in the table, or texts or groups are missing.
    """
    columns = list(frame.columns)
    if cfg.target is None:
        raise ConfigError(
            f"data.target: required for {prefix}: sources; set it to one of the columns: "
            f"{', '.join(columns)}"
        )
    named = {"data.target": [cfg.target]}
    if cfg.group_column is not None:
        named["data.group_column"] = [cfg.group_column]
    if cfg.text_column is not None:
        named["data.text_column"] = [cfg.text_column]
    if cfg.features is not None:
        named["data.features"] = cfg.features
    if cfg.categorical is not None:
        named["data.categorical"] = cfg.categorical
    for field, names in named.items():
        check_columns(names, columns, field=field, origin=origin)
    if cfg.features is not None and cfg.target in cfg.features:
        raise ConfigError(
            f"data.features: includes the target column {cfg.target!r}, which would let the "
            "model read the answer; remove it from data.features"
        )
    target = frame[cfg.target].to_numpy()
    groups = _groups(frame, cfg.group_column, origin) if cfg.group_column else None
    if cfg.text_column is not None:
        if cfg.modality not in ("auto", "text"):
            raise ConfigError(
                f"data.modality: got {cfg.modality!r} together with data.text_column; "
                "a text column gives text inputs: set data.modality to auto or text"
            )
        if cfg.features is not None:
            raise ConfigError(
                "data.features: text models read only data.text_column; remove data.features"
                " or unset data.text_column"
            )
        texts = text_inputs(frame[cfg.text_column], origin=origin, column=cfg.text_column)
        return RawData(modality="text", inputs=texts, target=target, origin=origin, groups=groups)
    if cfg.modality not in ("auto", "tabular"):
        raise ConfigError(
            f"data.modality: got {cfg.modality!r}, but a {prefix} file is a table; set it to "
            "auto or tabular, set data.text_column for text, or store images and signals "
            "as arrays in an npz: file"
        )
    excluded = {cfg.target, cfg.group_column}
    features = cfg.features or [c for c in columns if c not in excluded]
    if not features:
        raise DataError(
            f"{origin}: no feature columns are left after taking out the target "
            f"{cfg.target!r}; the table needs at least one input column"
        )
    inputs = mark_categorical(frame[features].reset_index(drop=True), cfg.categorical)
    return RawData(modality="tabular", inputs=inputs, target=target, origin=origin, groups=groups)


def check_columns(names: Sequence[str], columns: Sequence[str], *, field: str, origin: str) -> None:
    """Raise ``DataError`` naming every name in ``names`` that is not a column."""
    unknown = [name for name in names if name not in columns]
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = closest(name, columns)
        if close:
            hints.append(f"{close[0]!r} for {name!r}")
    hint = f" Did you mean {', '.join(hints)}?" if hints else ""
    raise DataError(
        f"{origin}: {field} names column(s) {', '.join(repr(n) for n in unknown)} that the "
        f"file lacks; its columns are: {', '.join(columns)}.{hint} Fix {field}"
    )


def mark_categorical(frame: pd.DataFrame, categorical: Sequence[str] | None) -> pd.DataFrame:
    """A copy whose ``categorical`` columns have the category dtype, so the encoder one-hots
    them even where they hold numbers (codes, ids)."""
    frame = frame.copy()
    for name in categorical or []:
        if name in frame.columns:
            frame[name] = frame[name].astype("category")
    return frame


def text_inputs(values: pd.Series, *, origin: str, column: str) -> np.ndarray:
    """Texts as a 1-D object array of ``str``; missing or blank texts raise ``DataError``."""
    texts = np.array(values, dtype=object)
    blank = [i for i, text in enumerate(texts) if _is_missing(text) or not str(text).strip()]
    if blank:
        shown = ", ".join(str(i) for i in blank[:10]) + (" ..." if len(blank) > 10 else "")
        raise DataError(
            f"{origin}: the text column {column!r} is missing or blank in {len(blank)} row(s) "
            f"(rows {shown}, counting data rows from 0); fill in those texts or drop the rows"
        )
    return np.array([str(text) for text in texts], dtype=object)


def array_inputs(array: np.ndarray, *, modality: Modality, origin: str) -> tuple[Modality, Inputs]:
    """Shape an array for ``modality``: signals (N, C, L), images (N, C, H, W) as float32.

    (N, L) becomes one-channel signals, (N, H, W) one-channel images, and a 2-D array read
    as tabular a DataFrame with columns ``x0 .. x{F-1}``.

    Raises:
        DataError: the array's shape or type does not fit ``modality``.
    """
    if modality == "text":
        if array.ndim != 1 or not all(isinstance(v, str) for v in array.tolist()):
            raise DataError(
                f"{origin}: text inputs must be a 1-D array of strings, but they have shape "
                f"{array.shape} and dtype {array.dtype}; pass one string per row or set "
                "data.modality to auto"
            )
        return "text", text_inputs(pd.Series(array.tolist()), origin=origin, column="inputs")
    allowed = {"tabular": (2,), "signal": (2, 3), "image": (3, 4)}[modality]
    if array.ndim not in allowed:
        wanted = {
            "tabular": "(N, F)",
            "signal": "(N, L) or (N, C, L)",
            "image": "(N, H, W) or (N, C, H, W)",
        }[modality]
        raise DataError(
            f"{origin}: {modality} inputs must have shape {wanted}, but they have shape "
            f"{array.shape}; reshape them or set data.modality to match"
        )
    if np.issubdtype(array.dtype, np.complexfloating):
        raise DataError(
            f"{origin}: {modality} inputs must be real numbers, but the array has dtype "
            f"{array.dtype}; store the magnitude (np.abs) or the real and imaginary parts "
            "as separate channels"
        )
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise DataError(
            f"{origin}: {modality} inputs must be numbers, but the array has dtype "
            f"{array.dtype}; convert it to numbers (text belongs in a table's text column)"
        )
    if modality == "tabular":
        columns = [f"x{i}" for i in range(array.shape[1])]
        return "tabular", pd.DataFrame(array, columns=columns)
    if array.ndim == allowed[0]:
        array = array[:, None]
    return modality, np.ascontiguousarray(array, dtype=np.float32)


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _npz_groups(
    arrays: dict[str, np.ndarray], name: str | None, *, rows: int, origin: str
) -> np.ndarray | None:
    if name is None:
        return None
    if name not in arrays:
        raise DataError(
            f"{origin}: data.group_column is {name!r} but the archive has no such array; it "
            f"holds: {', '.join(sorted(arrays))}. Add it or unset data.group_column"
        )
    groups = arrays[name].reshape(-1)
    if len(groups) != rows:
        raise DataError(
            f"{origin}: the groups array {name!r} has {len(groups)} values but there are "
            f"{rows} rows; give one group per row"
        )
    return groups


def npz_modality(
    shape: tuple[int, ...], configured: Modality | Literal["auto"], *, origin: str
) -> Modality:
    """What an ``npz:`` source's inputs of ``shape`` are: ``data.modality``, else 2-D and
    3-D arrays are signals, 4-D images."""
    if configured != "auto":
        return configured
    if len(shape) in (2, 3):
        return "signal"
    if len(shape) == 4:
        return "image"
    raise DataError(
        f"{origin}: the inputs have shape {shape}; expected (N, L) or (N, C, L) "
        "signals or (N, C, H, W) images. Reshape them, or set data.modality (a 1-D "
        "array of strings is text with data.modality: text)"
    )


def _pick(
    arrays: dict[str, np.ndarray], keys: tuple[str, ...], *, origin: str, what: str
) -> np.ndarray:
    for key in keys:
        if key in arrays:
            return arrays[key]
    raise DataError(
        f"{origin}: no {what} array; expected one named {' or '.join(keys)}, found "
        f"{', '.join(sorted(arrays)) or 'no arrays'}. Save it with np.savez(path, X=..., y=...)"
    )


def _groups(frame: pd.DataFrame, column: str, origin: str) -> np.ndarray:
    values = frame[column]
    missing = np.flatnonzero(values.isna().to_numpy())
    if len(missing):
        shown = ", ".join(str(i) for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise DataError(
            f"{origin}: the group column {column!r} is empty in {len(missing)} row(s) "
            f"(rows {shown}); give every row a group or drop those rows"
        )
    return np.asarray(values.to_numpy())
