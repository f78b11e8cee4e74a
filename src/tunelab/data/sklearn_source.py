"""``sklearn:NAME``: the datasets bundled with scikit-learn (no download).

digits are 8x8 grey images, so they load as images (N, 1, 8, 8); the rest are tables.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn import datasets

from tunelab.config import DataConfig
from tunelab.data.base import RawData
from tunelab.errors import ConfigError

# what scikit-learn's bundled sets (sklearn:NAME) are: digits are 8x8 grey images
BUNDLED = {
    "digits": "image",
    "breast_cancer": "tabular",
    "wine": "tabular",
    "iris": "tabular",
    "diabetes": "tabular",
}
_LOADERS: dict[str, Callable[..., Any]] = {
    "digits": datasets.load_digits,
    "breast_cancer": datasets.load_breast_cancer,
    "wine": datasets.load_wine,
    "iris": datasets.load_iris,
    "diabetes": datasets.load_diabetes,
}


def load_sklearn(name: str, cfg: DataConfig, *, field: str = "data.source") -> RawData:
    """One of scikit-learn's bundled datasets, by name."""
    if name not in _LOADERS:
        raise ConfigError(
            f"{field}: unknown scikit-learn dataset {name!r}; valid: {', '.join(sorted(_LOADERS))}"
        )
    bunch = _LOADERS[name]()
    target = np.asarray(bunch.target)
    if name in ("breast_cancer", "wine", "iris"):
        target = np.asarray(bunch.target_names)[target]
    origin = f"sklearn:{name}"
    if BUNDLED[name] == "image" and cfg.modality in ("auto", "image"):
        images = np.asarray(bunch.images, dtype=np.float32)[:, None, :, :]
        return RawData(modality="image", inputs=images, target=target, origin=origin)
    columns = [str(c) for c in getattr(bunch, "feature_names", [])] or [
        f"x{i}" for i in range(bunch.data.shape[1])
    ]
    frame = pd.DataFrame(np.asarray(bunch.data), columns=columns)
    return RawData(modality="tabular", inputs=frame, target=target, origin=origin)
