"""What kind of data a source gives, without loading it when its name says so.

``tunelab check`` refuses settings that cannot apply to the data's modality; most sources
tell it by their prefix (``images:`` gives images, a table file gives a table, or text with
``data.text_column``), an ``npz:`` file by the shape in its array header. Only a ``py:``
source has to be called to know.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from tunelab.config import DataConfig
from tunelab.data.base import Modality

TABLES = ("csv", "parquet", "jsonl", "hfds")
HEADER_READERS = {1: np.lib.format.read_array_header_1_0, 2: np.lib.format.read_array_header_2_0}


def peek_modality(cfg: DataConfig) -> Modality | None:
    """The modality of ``cfg.source``, or None when only loading the data can tell (a
    ``py:`` source, an unreadable ``npz:`` file: loading says what is wrong with it)."""
    if cfg.modality != "auto":
        return cfg.modality
    if cfg.text_column is not None:
        return "text"
    prefix, _, value = cfg.source.partition(":")
    if prefix == "sklearn":
        from tunelab.data.sklearn_source import IMAGES

        return "image" if value in IMAGES else "tabular"
    if prefix in TABLES:
        return "tabular"
    if prefix == "images":
        return "image"
    if prefix == "npz":
        return _npz_header_modality(Path(value).expanduser(), origin=cfg.source)
    return None


def _npz_header_modality(path: Path, *, origin: str) -> Modality | None:
    """From the inputs array's ``.npy`` header alone (its shape), not its values."""
    from tunelab.data.files import INPUT_KEYS, npz_modality

    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            member = next((f"{key}.npy" for key in INPUT_KEYS if f"{key}.npy" in names), None)
            if member is None:
                return None
            with archive.open(member) as handle:
                major, _ = np.lib.format.read_magic(handle)
                read = HEADER_READERS.get(major)
                if read is None:
                    return None
                shape, _, _ = read(handle)
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    return npz_modality(tuple(shape), "auto", origin=origin) if len(shape) in (2, 3, 4) else None
