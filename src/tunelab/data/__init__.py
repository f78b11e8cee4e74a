"""Data sources by prefix, target encoding, splits, encoders and batching."""

from __future__ import annotations

from tunelab.config import DataConfig
from tunelab.data import files, images, pysource, sklearn_source
from tunelab.data.base import DATA_SOURCES, RawData, take
from tunelab.data.checks import check_loaded
from tunelab.data.prepare import Split, Target, check_target_values, encode_target, make_split

__all__ = ["RawData", "Split", "Target", "encode_target", "load_data", "make_split", "take"]
_ = (files, images, pysource, sklearn_source)  # importing them registers their sources


def load_data(cfg: DataConfig) -> RawData:
    """Load the raw dataset named by ``cfg.source`` and check its values.

    Raises:
        DataError: the source cannot be read, or it holds NaN or infinite inputs (missing
            table cells excepted: they are imputed), or missing or infinite targets.
    """
    prefix, _, value = cfg.source.partition(":")
    raw = DATA_SOURCES.get(prefix, field="data.source")(value, cfg)
    check_loaded(raw)
    check_target_values(raw)
    return raw
