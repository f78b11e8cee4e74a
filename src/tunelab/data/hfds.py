"""``hfds:PATH``: a Hugging Face ``datasets`` dataset saved with ``save_to_disk``.

Its columns are read like a table's (``data.target``, ``data.text_column``,
``data.features``); a ``ClassLabel`` target gives its class names. ``data.split`` picks the
splits of a ``DatasetDict``: ``train`` (or ``train+validation``: joined) are the rows to
train and validate on, and ``{train: train, test: test}`` makes a split the fixed test rows
(as ``data.test_source`` does). Without ``data.split``: the ``train`` split, and the
``test`` split as the test rows when there is one.

Example::

    data:
      source: hfds:data/ag_news_small
      target: label
      text_column: text
      split: {train: train, test: test}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tunelab.config import DataConfig
from tunelab.data.base import RawData
from tunelab.data.files import table_data
from tunelab.data.test_source import append_test_rows
from tunelab.errors import ConfigError, DataError
from tunelab.optional import optional_import


def load_hfds(value: str, cfg: DataConfig, *, field: str = "data.source") -> RawData:
    """Load the dataset folder ``value`` (written by ``save_to_disk``)."""
    origin = f"hfds:{value}"
    dataset = _load_from_disk(value, field=field)
    train, test = splits_of(dataset, cfg.split, origin=origin)
    if test is not None and cfg.test_source is not None:
        raise ConfigError(
            f"data.split: {origin} gives the test split {test[0]!r} and data.test_source is "
            "set as well; keep one of them"
        )
    raw = dataset_rows(train[1], cfg, origin=f"{origin} [{train[0]}]")
    if test is None:
        return raw
    rows = dataset_rows(test[1], cfg, origin=f"{origin} [{test[0]}]")
    return append_test_rows(raw, rows, categorical=cfg.categorical)


def _load_from_disk(value: str, *, field: str) -> Any:
    datasets = optional_import("datasets", package="datasets", extra="hf", purpose="hfds: sources")
    path = Path(value).expanduser()
    if not path.is_dir():
        raise DataError(
            f"{field}: hfds:{value} is not a folder (looked for {path.absolute()}); give the "
            "folder written by Dataset.save_to_disk or DatasetDict.save_to_disk"
        )
    try:
        return datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{field}: hfds:{value} cannot be read as a saved dataset ({reason}); give the "
            "folder written by save_to_disk (load_dataset caches are not read)"
        ) from None


Named = tuple[str, Any]


def splits_of(
    dataset: Any, split: str | dict[str, str] | None, *, origin: str
) -> tuple[Named, Named | None]:
    """The (name, Dataset) to train on and the one fixed as test rows (or None)."""
    import datasets

    if isinstance(dataset, datasets.Dataset):
        if split is not None:
            raise ConfigError(
                f"data.split: {origin} is a single Dataset without splits; remove data.split"
            )
        return ("all rows", dataset), None
    names = list(dataset.keys())
    if split is None:
        if "train" not in names:
            raise ConfigError(
                f"data.split: {origin} has the splits {', '.join(names)} and none is called "
                f"'train'; set data.split to the one to train on, e.g. {names[0]!r}"
            )
        test = ("test", dataset["test"]) if "test" in names else None
        return ("train", dataset["train"]), test
    wanted = split if isinstance(split, dict) else {"train": split}
    train = (wanted["train"], _joined(dataset, wanted["train"], names, origin))
    test_name = wanted.get("test")
    test = None if test_name is None else (test_name, _joined(dataset, test_name, names, origin))
    return train, test


def _joined(dataset: Any, name: str, names: list[str], origin: str) -> Any:
    import datasets

    parts = [part.strip() for part in name.split("+")]
    missing = [part for part in parts if part not in names]
    if missing:
        raise ConfigError(
            f"data.split: {origin} has no split {missing[0]!r}; its splits are "
            f"{', '.join(names)}. Name one of them (join several with '+')"
        )
    chosen = [dataset[part] for part in parts]
    return chosen[0] if len(chosen) == 1 else datasets.concatenate_datasets(chosen)


def dataset_rows(dataset: Any, cfg: DataConfig, *, origin: str) -> RawData:
    """A ``datasets.Dataset`` read as a table (``table_data``); a ``ClassLabel`` target
    becomes its class names."""
    frame = dataset_frame(dataset, origin=origin)
    if cfg.target is not None and cfg.target in frame.columns:
        names = _class_names(dataset, cfg.target)
        if names is not None:
            frame[cfg.target] = [names[int(code)] for code in frame[cfg.target]]
    return table_data(frame, cfg, origin=origin, prefix="hfds")


def dataset_frame(dataset: Any, *, origin: str) -> pd.DataFrame:
    """The dataset's columns as a DataFrame (images and nested columns are refused)."""
    unsupported = [
        name
        for name, feature in dataset.features.items()
        if type(feature).__name__ not in ("Value", "ClassLabel")
    ]
    if unsupported:
        kinds = ", ".join(f"{n} ({type(dataset.features[n]).__name__})" for n in unsupported)
        raise DataError(
            f"{origin}: the columns {kinds} are not plain values; tunelab reads numbers, "
            "labels and text from a dataset. Remove them (dataset.remove_columns) or save "
            "images as files for the images: source"
        )
    if len(dataset) == 0:
        raise DataError(f"{origin}: the dataset has no rows")
    frame: pd.DataFrame = dataset.to_pandas()
    return frame


def _class_names(dataset: Any, column: str) -> list[str] | None:
    feature = dataset.features.get(column)
    names = getattr(feature, "names", None)
    return list(names) if type(feature).__name__ == "ClassLabel" and names else None
