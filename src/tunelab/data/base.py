"""What every data source returns, and the registry of sources.

A source loads the *raw* dataset once: inputs as the user would hand them to ``predict``
(a DataFrame for tables, an array for images and signals, an array of strings for text)
and the raw target. Encoding (scaling, one-hot, tokenizing) is fitted later on the training
part only, so nothing leaks from validation or test rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import pandas as pd

from tunelab.config import DataConfig
from tunelab.registry import Registry

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
    """

    modality: Modality
    inputs: Inputs
    target: np.ndarray
    origin: str
    groups: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.target)


def take(inputs: Inputs, rows: np.ndarray) -> Inputs:
    """Rows ``rows`` of raw inputs, whatever their kind."""
    if isinstance(inputs, pd.DataFrame):
        return inputs.iloc[rows].reset_index(drop=True)
    return np.asarray(inputs[rows])


SourceFn = Callable[[str, DataConfig], RawData]
DATA_SOURCES: Registry[SourceFn] = Registry("data source")
