"""A cheap look at a data source, for ``tunelab check``: the file exists and can be read, and
what its inputs are, without loading it.

Tables are read to their first rows (their columns are checked against ``data.target``,
``data.features`` and the other column fields, as loading does); an ``.npz`` archive's
array headers give the inputs' shape; an ``images:`` folder's class folders are listed
(nothing decoded); scikit-learn's bundled sets are small and simply loaded. ``py:`` sources
are code and ``hfds:`` datasets need ``datasets``: they are first read when a run loads
them.

Example::

    peek_data(cfg.data)  # Peek(origin='sklearn:digits', modality='image', example_shape=(1, 8, 8))
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tunelab.config import DataConfig
from tunelab.errors import DataError

PEEK_ROWS = 5


@dataclass(frozen=True)
class Peek:
    """What a look at a source found: its modality and one example's shape (arrays), when
    known without loading it."""

    origin: str
    modality: str | None = None
    example_shape: tuple[int, ...] | None = None


def peek_data(cfg: DataConfig) -> Peek:
    """Look at ``data.source`` (and ``data.test_source``, which must be readable too).

    Raises:
        DataError, ConfigError: a file is missing or unreadable, or a named column is not
            in a table, with the file named.
    """
    found = peek_source(cfg.source, cfg, field="data.source")
    if cfg.test_source is not None:
        peek_source(cfg.test_source, cfg, field="data.test_source")
    return found


def peek_source(source: str, cfg: DataConfig, *, field: str) -> Peek:
    prefix, _, value = source.partition(":")
    look = _LOOKS.get(prefix)
    return look(value, cfg, field) if look is not None else Peek(origin=source)


def _table(kind: str, read: Callable[[str], pd.DataFrame]) -> Callable[..., Peek]:
    def look(value: str, cfg: DataConfig, field: str) -> Peek:
        from tunelab.data.files import existing_file, read_table, table_data

        path = existing_file(value, prefix=kind, field=field)
        frame = read_table(path, kind, lambda: read(str(path)))
        raw = table_data(frame, cfg, origin=str(path), prefix=kind)
        return Peek(origin=str(path), modality=raw.modality)

    return look


def _first_parquet_rows(path: str) -> pd.DataFrame:
    import pyarrow.parquet as pq

    table = pq.ParquetFile(path)
    batch = next(table.iter_batches(batch_size=PEEK_ROWS), None)
    if batch is None:
        return pd.DataFrame(columns=table.schema_arrow.names)
    frame: pd.DataFrame = batch.to_pandas()
    return frame


def _npz(value: str, cfg: DataConfig, field: str) -> Peek:
    from tunelab.data.files import INPUT_KEYS, npz_file, npz_modality

    path = npz_file(value, field=field)
    try:
        with zipfile.ZipFile(path) as archive:
            shapes = {
                name.removesuffix(".npy"): _npy_shape(archive, name) for name in archive.namelist()
            }
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(
            f"{path}: cannot read it as a numpy .npz archive ({exc}); write it with "
            "np.savez(path, X=inputs, y=target)"
        ) from None
    key = next((k for k in INPUT_KEYS if k in shapes), None)
    if key is None:
        raise DataError(
            f"{path}: no inputs array; expected one named {' or '.join(INPUT_KEYS)}, found "
            f"{', '.join(sorted(shapes)) or 'no arrays'}. Save it with np.savez(path, X=..., y=...)"
        )
    shape = shapes[key]
    modality = npz_modality(tuple(shape), cfg.modality, origin=str(path))
    return Peek(origin=str(path), modality=modality, example_shape=tuple(shape[1:]))


def _npy_shape(archive: zipfile.ZipFile, name: str) -> tuple[int, ...]:
    """An array's shape from its ``.npy`` header (the data is not read)."""
    with archive.open(name) as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, _ = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, _, _ = np.lib.format.read_array_header_2_0(handle)
    return tuple(int(n) for n in shape)


def _images(value: str, cfg: DataConfig, field: str) -> Peek:
    from tunelab.data.images import class_files, image_root

    root = image_root(value, field=field)
    class_files(root)  # the class folders and their image files, none decoded
    channels = 1 if cfg.image_mode in ("grayscale", "L") else 3
    return Peek(origin=str(root), modality="image", example_shape=(channels, *cfg.image_size))


def _sklearn(value: str, cfg: DataConfig, field: str) -> Peek:
    from tunelab.data.sklearn_source import load_sklearn

    raw = load_sklearn(value, cfg, field=field)  # bundled and small
    shape = None if raw.modality == "tabular" else tuple(np.asarray(raw.inputs).shape[1:])
    return Peek(origin=raw.origin, modality=raw.modality, example_shape=shape)


_LOOKS: dict[str, Callable[[str, DataConfig, str], Peek]] = {
    "csv": _table("csv", lambda path: pd.read_csv(path, nrows=PEEK_ROWS)),
    "jsonl": _table(
        "jsonl", lambda path: pd.read_json(path, lines=True, nrows=PEEK_ROWS, dtype=False)
    ),
    "parquet": _table("parquet", _first_parquet_rows),
    "npz": _npz,
    "images": _images,
    "sklearn": _sklearn,
}
