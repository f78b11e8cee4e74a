"""hfds: (a dataset saved with save_to_disk) and py: sources that return a Dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_config
from tunelab.data import load_data
from tunelab.errors import ConfigError, DataError

datasets = pytest.importorskip("datasets")

TEXTS = [f"review number {i}: {'great' if i % 2 else 'awful'} product" for i in range(30)]


def saved(tmp_path: Path, *, splits: tuple[str, ...] = ("train", "test")) -> Path:
    label = datasets.ClassLabel(names=["negative", "positive"])
    features = datasets.Features({"text": datasets.Value("string"), "label": label})
    parts = {
        name: datasets.Dataset.from_dict(
            {"text": TEXTS[i::3], "label": [j % 2 for j in range(i, 30, 3)]}, features=features
        )
        for i, name in enumerate(splits)
    }
    folder = tmp_path / "reviews"
    datasets.DatasetDict(parts).save_to_disk(str(folder))
    return folder


def data(source: str, **fields: object) -> object:
    return make_config(data={"source": source, "target": "label", "text_column": "text",
                             **fields}).data  # fmt: skip


def test_train_and_test_splits_become_the_rows_and_the_fixed_test_rows(tmp_path: Path) -> None:
    raw = load_data(data(f"hfds:{saved(tmp_path)}"))  # type: ignore[arg-type]
    assert raw.modality == "text" and len(raw) == 20
    assert raw.test_rows is not None and list(raw.test_rows) == list(range(10, 20))
    assert set(raw.target) == {"negative", "positive"}  # ClassLabel names, not codes


def test_data_split_chooses_and_joins_splits(tmp_path: Path) -> None:
    folder = saved(tmp_path, splits=("train", "validation", "test"))
    raw = load_data(data(f"hfds:{folder}", split="train+validation"))  # type: ignore[arg-type]
    assert len(raw) == 20 and raw.test_rows is None
    chosen = load_data(data(f"hfds:{folder}", split={"train": "validation", "test": "test"}))  # type: ignore[arg-type]
    assert len(chosen) == 20 and chosen.test_rows is not None
    with pytest.raises(ConfigError, match=r"no split 'dev'; its splits are train, validation"):
        load_data(data(f"hfds:{folder}", split="dev"))  # type: ignore[arg-type]


def test_a_folder_that_is_no_saved_dataset_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="save_to_disk"):
        load_data(data(f"hfds:{tmp_path}"))  # type: ignore[arg-type]


def test_a_py_source_may_return_a_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hf_loader.py").write_text(
        "import datasets\n"
        "def load():\n"
        f"    return datasets.Dataset.from_dict({{'text': {TEXTS!r}, "
        "'label': [i % 2 for i in range(30)]})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    raw = load_data(data("py:hf_loader:load"))  # type: ignore[arg-type]
    assert raw.modality == "text" and len(raw) == 30
    assert np.asarray(raw.inputs)[0] == TEXTS[0]
