"""Data sources by prefix, target encoding, splits, encoders and batching."""

from __future__ import annotations

from typing import Any

from tunelab.config import DataConfig
from tunelab.data.base import RawData, SourceFn, take
from tunelab.data.checks import check_loaded
from tunelab.data.prepare import Split, Target, check_target_values, encode_target, make_split
from tunelab.data.test_source import append_test_rows
from tunelab.registry import DATA_SOURCES

__all__ = [
    "RawData",
    "Split",
    "Target",
    "encode_target",
    "load_arrays",
    "load_data",
    "make_split",
    "take",
]


def load_data(cfg: DataConfig) -> RawData:
    """Load the raw dataset named by ``cfg.source`` and check its values.

    With ``cfg.test_source`` its rows are appended and marked as the fixed test rows
    (``RawData.test_rows``).

    Raises:
        DataError: a source cannot be read, or it holds NaN or infinite inputs (missing
            table cells excepted: they are imputed), or missing or infinite targets, or the
            test set does not look like the training set.
    """
    raw = _load(cfg.source, cfg, field="data.source")
    if cfg.test_source is None:
        return raw
    test = _load(cfg.test_source, cfg, field="data.test_source")
    return append_test_rows(raw, test, categorical=cfg.categorical)


def load_arrays(inputs: Any, target: Any, cfg: DataConfig, *, origin: str) -> RawData:
    """In-memory inputs and target (what an estimator's ``fit`` gets) -> ``RawData``, read
    as a ``py:`` loader's ``(inputs, target)`` and checked as every source's data is.

    Raises:
        DataError: as ``load_data``: shapes, types, non-finite inputs or targets.
    """
    from tunelab.data.pysource import raw_from_returned

    raw = raw_from_returned((inputs, target), cfg, origin=origin)
    check_loaded(raw)
    check_target_values(raw)
    return raw


def _load(source: str, cfg: DataConfig, *, field: str) -> RawData:
    prefix, _, value = source.partition(":")
    load: SourceFn = DATA_SOURCES.get(prefix, field=field)
    raw = load(value, cfg, field=field)
    # checked file by file, so that messages name the file and its own row numbers
    check_loaded(raw)
    check_target_values(raw)
    return raw
