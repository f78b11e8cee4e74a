"""What every data source returns, and the registry of sources.

A source loads the *raw* dataset once: inputs as the user would hand them to ``predict``
(a DataFrame for tables, an array for images and signals, an array of strings for text)
and the raw target. Encoding (scaling, one-hot, tokenizing) is fitted later on the training
part only, so nothing leaks from validation or test rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias

import numpy as np
import pandas as pd

from tunelab.config import DataConfig

Modality = Literal["tabular", "image", "signal", "text"]
Task = Literal["binary", "multiclass", "regression"]
Inputs: TypeAlias = "pd.DataFrame | np.ndarray"


@dataclass(frozen=True)
class RawData:
    """A loaded dataset before any fitting.

    Attributes:
        modality: tabular (DataFrame), image (N, C, H, W), signal (N, C, L) or text
            (1-D object array of str).
        inputs: the raw inputs, indexable by row.
        target: raw target values, one per row (labels of any type, or numbers).
        origin: where it came from, for messages (a file, a dataset name).
        groups: optional group id per row (grouped cross-validation).
        test_rows: rows fixed as the test part (``data.test_source``), None when the test
            rows are drawn from all rows (``data.test_size``).
        test_origin: where the fixed test rows came from, for messages.
    """

    modality: Modality
    inputs: Inputs
    target: np.ndarray
    origin: str
    groups: np.ndarray | None = None
    test_rows: np.ndarray | None = None
    test_origin: str | None = None

    def __len__(self) -> int:
        return len(self.target)


def take(inputs: Inputs, rows: np.ndarray) -> Inputs:
    """Rows ``rows`` of raw inputs, whatever their kind."""
    if isinstance(inputs, pd.DataFrame):
        return inputs.iloc[rows].reset_index(drop=True)
    return np.asarray(inputs[rows])


class SourceFn(Protocol):
    """A data source: loads ``value`` (what follows the prefix) as ``cfg`` says.

    ``field`` is the config field that named it (``data.source`` or ``data.test_source``),
    for messages.
    """

    def __call__(
        self, value: str, cfg: DataConfig, /, *, field: str = "data.source"
    ) -> RawData: ...
