"""Load the data once: the raw inputs, the encoded target, the split and the metric."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tunelab.config import RunConfig
from tunelab.data import RawData, Split, Target, encode_target, load_data, make_split
from tunelab.training.device import check_device
from tunelab.training.metrics import check_metric, default_metric


@dataclass(frozen=True)
class Prepared:
    """The loaded data, its encoded target and the split; shared by every fit.

    ``cache_dir``: where work done once per row (tokens, a frozen backbone's features) is
    kept for every fit of the run (the run's ``features/``); None keeps it in memory only.
    """

    raw: RawData
    target: Target
    split: Split
    metric: str
    cache_dir: Path | None = None

    @property
    def input_columns(self) -> list[str]:
        if isinstance(self.raw.inputs, pd.DataFrame):
            return [str(c) for c in self.raw.inputs.columns]
        return []


def prepare(cfg: RunConfig) -> Prepared:
    """Load the data, encode the target and set the test rows aside.

    Raises:
        DataError: the data cannot be used as configured.
        ConfigError: the selection or monitored metric does not fit the task.
    """
    check_device(cfg.train.device)  # before the data loads: a missing GPU is said at once
    raw = load_data(cfg.data)
    return prepare_rows(cfg, raw, test_rows=raw.test_rows)


def prepare_rows(
    cfg: RunConfig, raw: RawData, *, test_rows: np.ndarray | None, cache_dir: Path | None = None
) -> Prepared:
    """Loaded data as ``prepare`` makes it ready (``test_rows``: a predefined test set, an
    empty array for none, or None to draw ``data.test_size`` of the rows)."""
    target = encode_target(raw, task=cfg.data.task)
    metric = cfg.train.metric or default_metric(target.task)
    check_metric(metric, target.task)
    monitor = cfg.early_stopping.monitor
    if monitor not in ("metric", "val_loss", "train_loss"):
        check_metric(monitor, target.task, field="early_stopping.monitor")
    split = make_split(
        target,
        test_size=cfg.data.test_size,
        validation_size=cfg.data.validation_size,
        seed=cfg.seed,
        origin=raw.origin,
        groups=raw.groups,
        test_rows=test_rows,
    )
    return Prepared(raw=raw, target=target, split=split, metric=metric, cache_dir=cache_dir)
