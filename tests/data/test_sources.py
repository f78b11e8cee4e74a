"""Every file, folder and py: source on small data the tests write, and each refusal."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tunelab.config import config_from_dict
from tunelab.data import RawData, encode_target, load_data
from tunelab.data.images import load_image_files
from tunelab.data.tabular import TabularEncoder
from tunelab.errors import ConfigError, DataError


def load(**data: Any) -> RawData:
    cfg = config_from_dict({"data": data, "model": {"source": "builtin:mlp"}})
    return load_data(cfg.data)


# --- csv, parquet, jsonl ----------------------------------------------------------------


@pytest.fixture
def people_csv(tmp_path: Path) -> Path:
    path = tmp_path / "people.csv"
    path.write_text(
        "age,city,zip,team,label\n"
        "23,paris,75,a,yes\n"
        ",lyon,69,a,no\n"
        "45,,75,b,yes\n"
        "52,nice,6,b,no\n"
        "38,lyon,69,c,yes\n"
        "29,paris,75,c,no\n",
        encoding="utf-8",
    )
    return path


def test_csv_with_numbers_categories_and_missing_values(people_csv: Path) -> None:
    raw = load(source=f"csv:{people_csv}", target="label")
    assert raw.modality == "tabular"
    assert raw.origin == str(people_csv)
    assert isinstance(raw.inputs, pd.DataFrame)
    assert list(raw.inputs.columns) == ["age", "city", "zip", "team"]
    assert raw.target.tolist() == ["yes", "no", "yes", "no", "yes", "no"]
    assert raw.groups is None
    assert encode_target(raw).classes == ["no", "yes"]
    encoder = TabularEncoder.fit(raw.inputs)
    assert [c.name for c in encoder.numeric] == ["age", "zip"]
    assert [c.name for c in encoder.categorical] == ["city", "team"]
    assert encoder.transform(raw.inputs)[0].isfinite().all()


def test_csv_features_groups_and_categorical(people_csv: Path) -> None:
    raw = load(
        source=f"csv:{people_csv}",
        target="label",
        features=["age", "zip"],
        categorical=["zip"],
        group_column="team",
    )
    assert isinstance(raw.inputs, pd.DataFrame)
    assert list(raw.inputs.columns) == ["age", "zip"]
    assert raw.groups is not None and raw.groups.tolist() == ["a", "a", "b", "b", "c", "c"]
    # data.categorical reaches the encoder through the column's dtype.
    encoder = TabularEncoder.fit(raw.inputs)
    assert encoder.feature_names_out == ["age", "zip=6", "zip=69", "zip=75"]


def test_group_column_is_not_an_input_by_default(people_csv: Path) -> None:
    raw = load(source=f"csv:{people_csv}", target="label", group_column="team")
    assert isinstance(raw.inputs, pd.DataFrame)
    assert "team" not in raw.inputs.columns


def test_csv_without_target_lists_the_columns(people_csv: Path) -> None:
    expected = (
        "data.target: required for csv: sources; set it to one of the columns: "
        "age, city, zip, team, label"
    )
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load(source=f"csv:{people_csv}")


def test_unknown_target_names_file_column_and_close_match(people_csv: Path) -> None:
    with pytest.raises(DataError) as info:
        load(source=f"csv:{people_csv}", target="labl")
    message = str(info.value)
    assert str(people_csv) in message
    assert "data.target names column(s) 'labl'" in message
    assert "its columns are: age, city, zip, team, label" in message
    assert "Did you mean 'label' for 'labl'?" in message


def test_unknown_features_and_group_column_are_named(people_csv: Path) -> None:
    with pytest.raises(DataError, match=r"data.features names column\(s\) 'agee', 'height'"):
        load(source=f"csv:{people_csv}", target="label", features=["agee", "height", "zip"])
    with pytest.raises(DataError, match=r"data.group_column names column\(s\) 'group'"):
        load(source=f"csv:{people_csv}", target="label", group_column="group")
    with pytest.raises(DataError, match=r"data.categorical names column\(s\) 'town'"):
        load(source=f"csv:{people_csv}", target="label", categorical=["town"])


def test_target_listed_as_a_feature_is_refused(people_csv: Path) -> None:
    with pytest.raises(ConfigError, match=r"data.features: includes the target column 'label'"):
        load(source=f"csv:{people_csv}", target="label", features=["age", "label"])


def test_missing_group_values_are_refused_with_rows(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_text("x,g,y\n1,a,0\n2,,1\n3,b,0\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"group column 'g' is empty in 1 row\(s\) \(rows 1\)"):
        load(source=f"csv:{path}", target="y", group_column="g")


def test_missing_file_and_directory_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=rf"csv:{re.escape(str(missing))} does not exist.*path"):
        load(source=f"csv:{missing}", target="y")
    with pytest.raises(DataError, match=r"is a directory, not a file.*images: prefix"):
        load(source=f"csv:{tmp_path}", target="y")


def test_empty_and_header_only_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match=rf"{re.escape(str(empty))}: the file is empty"):
        load(source=f"csv:{empty}", target="y")
    header = tmp_path / "header.csv"
    header.write_text("x,y\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"header.csv: the file has 0 rows"):
        load(source=f"csv:{header}", target="y")


def test_unreadable_files_name_the_path_and_the_format(tmp_path: Path) -> None:
    garbage = tmp_path / "data.csv"
    garbage.write_bytes(b"x,y\n\xff\xfe\x00bad,\x81\n")
    with pytest.raises(DataError, match=r"data.csv: cannot read it as csv"):
        load(source=f"csv:{garbage}", target="y")
    not_parquet = tmp_path / "data.parquet"
    not_parquet.write_text("x,y\n1,2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"data.parquet: cannot read it as parquet.*prefix"):
        load(source=f"parquet:{not_parquet}", target="y")


def test_parquet_keeps_column_types(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame(
        {
            "x": [1.5, 2.5, np.nan, 4.0],
            "kind": ["a", "b", "a", None],
            "y": [0, 1, 0, 1],
        }
    ).to_parquet(path)
    raw = load(source=f"parquet:{path}", target="y")
    assert raw.modality == "tabular"
    assert isinstance(raw.inputs, pd.DataFrame)
    assert list(raw.inputs.columns) == ["x", "kind"]
    assert raw.target.tolist() == [0, 1, 0, 1]
    assert TabularEncoder.fit(raw.inputs).input_shape == (3,)


def test_table_sources_refuse_array_modalities(people_csv: Path) -> None:
    with pytest.raises(ConfigError, match=r"data.modality: got 'image'.*npz:"):
        load(source=f"csv:{people_csv}", target="label", modality="image")


@pytest.fixture
def reviews_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "reviews.jsonl"
    path.write_text(
        '{"text": "great value", "stars": 5}\n'
        '{"text": "broke in a day", "stars": 1}\n'
        '{"text": "fine", "stars": 3}\n',
        encoding="utf-8",
    )
    return path


def test_jsonl_text_column_gives_text(reviews_jsonl: Path) -> None:
    raw = load(source=f"jsonl:{reviews_jsonl}", target="stars", text_column="text")
    assert raw.modality == "text"
    assert isinstance(raw.inputs, np.ndarray)
    assert raw.inputs.dtype == object
    assert raw.inputs.tolist() == ["great value", "broke in a day", "fine"]
    assert raw.target.tolist() == [5, 1, 3]


def test_jsonl_table_keeps_json_types(tmp_path: Path) -> None:
    path = tmp_path / "shops.jsonl"
    path.write_text(
        '{"zip": "075", "opened": "2024-01-01", "area": 12.5, "y": 1}\n'
        '{"zip": "13", "opened": "2023-05-02", "area": null, "y": 0}\n',
        encoding="utf-8",
    )
    raw = load(source=f"jsonl:{path}", target="y")
    assert raw.modality == "tabular"
    assert isinstance(raw.inputs, pd.DataFrame)
    # Text stays text: no zip code loses its leading zero, no string becomes a date.
    assert raw.inputs["zip"].tolist() == ["075", "13"]
    assert raw.inputs["opened"].tolist() == ["2024-01-01", "2023-05-02"]
    assert TabularEncoder.fit(raw.inputs).feature_names_out[0] == "area"


def test_missing_and_blank_texts_name_file_and_rows(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"text": "ok", "y": 1}\n{"text": null, "y": 0}\n{"text": "  ", "y": 1}\n{"y": 0}\n',
        encoding="utf-8",
    )
    with pytest.raises(DataError) as info:
        load(source=f"jsonl:{path}", target="y", text_column="text")
    message = str(info.value)
    assert str(path) in message
    assert "'text' is missing or blank in 3 row(s) (rows 1, 2, 3" in message
    assert "fill in those texts or drop the rows" in message


def test_text_column_with_features_is_refused(reviews_jsonl: Path) -> None:
    with pytest.raises(ConfigError, match=r"data.features: text models read only"):
        load(source=f"jsonl:{reviews_jsonl}", target="stars", text_column="text", features=["text"])
    with pytest.raises(DataError, match=r"data.text_column names column\(s\) 'body'"):
        load(source=f"jsonl:{reviews_jsonl}", target="stars", text_column="body")


# --- npz ------------------------------------------------------------------------------------


def _npz(tmp_path: Path, **arrays: np.ndarray) -> str:
    path = tmp_path / "arrays.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return f"npz:{path}"


def test_npz_2d_is_one_channel_signals(tmp_path: Path) -> None:
    raw = load(source=_npz(tmp_path, X=np.arange(12).reshape(4, 3), y=np.array([0, 1, 0, 1])))
    assert raw.modality == "signal"
    assert isinstance(raw.inputs, np.ndarray)
    assert raw.inputs.shape == (4, 1, 3)
    assert raw.inputs.dtype == np.float32


def test_npz_2d_as_tabular_has_named_columns(tmp_path: Path) -> None:
    source = _npz(tmp_path, x=np.ones((4, 3)), target=np.arange(4))
    raw = load(source=source, modality="tabular")
    assert isinstance(raw.inputs, pd.DataFrame)
    assert list(raw.inputs.columns) == ["x0", "x1", "x2"]


def test_npz_3d_signals_and_4d_images(tmp_path: Path) -> None:
    signals = load(source=_npz(tmp_path, X=np.zeros((5, 2, 8)), y=np.arange(5)))
    assert signals.modality == "signal"
    assert isinstance(signals.inputs, np.ndarray)
    assert signals.inputs.shape == (5, 2, 8)
    images = load(
        source=_npz(tmp_path, inputs=np.zeros((3, 1, 4, 4), np.uint8), y=np.arange(3).reshape(3, 1))
    )
    assert images.modality == "image"
    assert isinstance(images.inputs, np.ndarray)
    assert images.inputs.dtype == np.float32
    assert images.target.shape == (3,)


def test_npz_groups_come_from_the_named_array(tmp_path: Path) -> None:
    source = _npz(tmp_path, X=np.zeros((4, 3)), y=np.arange(4), subject=np.array([1, 1, 2, 2]))
    raw = load(source=source, group_column="subject")
    assert raw.groups is not None and raw.groups.tolist() == [1, 1, 2, 2]


def test_npz_strings_with_text_modality_are_text(tmp_path: Path) -> None:
    raw = load(
        source=_npz(tmp_path, X=np.array(["good", "bad"]), y=np.array([1, 0])), modality="text"
    )
    assert raw.modality == "text"
    assert isinstance(raw.inputs, np.ndarray)
    assert raw.inputs.tolist() == ["good", "bad"]


def test_npz_bad_inputs_are_explained(tmp_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"no inputs array; expected one named X or x or inputs, "
        r"found data, y",
    ):
        load(source=_npz(tmp_path, data=np.zeros((3, 2)), y=np.arange(3)))
    with pytest.raises(DataError, match=r"no target array.*found X, labels"):
        load(source=_npz(tmp_path, X=np.zeros((3, 2)), labels=np.arange(3)))
    with pytest.raises(DataError, match=r"shape \(3, 2\) and the target has shape \(4,\)"):
        load(source=_npz(tmp_path, X=np.zeros((3, 2)), y=np.arange(4)))
    with pytest.raises(DataError, match=r"inputs have shape \(3,\); expected"):
        load(source=_npz(tmp_path, X=np.zeros(3), y=np.arange(3)))
    with pytest.raises(DataError, match=r"shape \(3, 1, 1, 1, 2\)"):
        load(source=_npz(tmp_path, X=np.zeros((3, 1, 1, 1, 2)), y=np.arange(3)))
    with pytest.raises(DataError, match=r"image inputs must have shape \(N, H, W\) or"):
        load(source=_npz(tmp_path, X=np.zeros((3, 2)), y=np.arange(3)), modality="image")


def test_npz_that_is_not_an_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"broken.npz: not a numpy .npz archive.*np.savez"):
        load(source=f"npz:{path}")
    # Object arrays would need unpickling, which a data file must never trigger.
    source = _npz(tmp_path, X=np.array([[1], "a"], dtype=object), y=np.arange(2))
    with pytest.raises(DataError, match=r"arrays.npz: cannot read it.*nothing is unpickled"):
        load(source=source)


# --- images -------------------------------------------------------------------------------


def _png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (10, 6)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    root = tmp_path / "pets"
    _png(root / "cat" / "b.png", (255, 0, 0))
    _png(root / "cat" / "a.PNG", (255, 0, 0))
    _png(root / "dog" / "1.png", (0, 0, 255), size=(20, 20))
    (root / "dog" / "notes.txt").write_text("not an image", encoding="utf-8")
    return root


def test_image_folder_gives_labelled_resized_arrays(image_folder: Path) -> None:
    raw = load(source=f"images:{image_folder}", image_size=[4, 7])
    assert raw.modality == "image"
    assert isinstance(raw.inputs, np.ndarray)
    assert raw.inputs.shape == (3, 3, 4, 7)  # (N, C, height, width)
    assert raw.inputs.dtype == np.float32
    assert raw.target.tolist() == ["cat", "cat", "dog"]
    assert raw.origin == str(image_folder)
    np.testing.assert_allclose(raw.inputs[0, :, 0, 0], [255.0, 0.0, 0.0])
    np.testing.assert_allclose(raw.inputs[2, :, 0, 0], [0.0, 0.0, 255.0])


def test_grayscale_images_have_one_channel(image_folder: Path) -> None:
    raw = load(source=f"images:{image_folder}", image_size=[5, 5], image_mode="grayscale")
    assert isinstance(raw.inputs, np.ndarray)
    assert raw.inputs.shape == (3, 1, 5, 5)


def test_unreadable_image_is_named_with_the_fix(image_folder: Path) -> None:
    broken = image_folder / "dog" / "2.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(DataError) as info:
        load(source=f"images:{image_folder}")
    message = str(info.value)
    assert "1 image file(s) cannot be read" in message
    assert str(broken) in message
    assert "Remove those files or replace them" in message


def test_image_folder_layout_problems_are_explained(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    _png(root / "loose.png", (0, 0, 0))
    with pytest.raises(DataError, match=r"found no class folders; .*one sub-folder per class"):
        load(source=f"images:{root}")
    _png(root / "cat" / "1.png", (0, 0, 0))
    with pytest.raises(DataError, match=r"only the class folder 'cat'.*at least two classes"):
        load(source=f"images:{root}")
    (root / "dog").mkdir()
    with pytest.raises(DataError, match=r"class folder\(s\) 'dog' hold no images.*\.png"):
        load(source=f"images:{root}")
    with pytest.raises(DataError, match=r"images:.*missing does not exist.*one sub-folder"):
        load(source=f"images:{tmp_path / 'missing'}")


def test_image_size_is_height_then_width(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    image = Image.new("RGB", (8, 4), (255, 0, 0))  # PIL sizes are (width, height)
    image.paste((0, 0, 255), (4, 0, 8, 4))  # right half blue
    image.save(path)
    batch = load_image_files([path], size=(2, 4), mode="rgb")
    assert batch.shape == (1, 3, 2, 4)
    # Mostly red on the left half of every row, mostly blue on the right (resizing blends
    # the two columns at the edge).
    for row in range(2):
        assert (batch[0, 0, row] > 127).tolist() == [True, True, False, False]
        assert (batch[0, 2, row] > 127).tolist() == [False, False, True, True]


def test_load_image_files_decodes_new_files_for_prediction(image_folder: Path) -> None:
    paths = [image_folder / "dog" / "1.png", image_folder / "cat" / "a.PNG"]
    batch = load_image_files(paths, size=(2, 3), mode="rgb")
    assert batch.shape == (2, 3, 2, 3)
    np.testing.assert_allclose(batch[:, :, 0, 0], [[0, 0, 255], [255, 0, 0]])


# --- py: -------------------------------------------------------------------------------------

_LOADERS = """
import numpy as np
import pandas as pd


def table(rows=6):
    frame = pd.DataFrame({"a": np.arange(rows, dtype=float), "b": ["x", "y"] * (rows // 2)})
    return frame, pd.Series([0, 1] * (rows // 2))


def as_dict():
    return {"inputs": np.zeros((4, 2, 5)), "target": [0, 1, 0, 1], "groups": [1, 1, 2, 2]}


def matrix():
    return np.ones((4, 3)), np.arange(4)


def pictures():
    return np.zeros((2, 3, 4, 4)), ["cat", "dog"]


def texts():
    return ["good", "bad", "ok"], np.array([1, 0, 1])


def flat():
    return {"inputs": np.zeros((4, 6)), "target": np.arange(4), "modality": "signal"}


def short_target():
    return np.zeros((4, 3)), np.arange(3)


def just_an_array():
    return np.zeros((4, 3))


def odd_keys():
    return {"X": np.zeros((4, 3)), "y": np.arange(4)}


def reviews():
    frame = pd.DataFrame({"body": ["good", "bad", None], "stars": [5, 1, 3]})
    return frame, [1, 0, 1]


NOT_A_FUNCTION = 3
"""


@pytest.fixture
def loaders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "tl_test_loaders.py").write_text(textwrap.dedent(_LOADERS), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tl_test_loaders", raising=False)
    return "py:tl_test_loaders"


def test_py_source_dataframe_with_options(loaders: str) -> None:
    raw = load(source=f"{loaders}:table", options={"rows": 8})
    assert raw.modality == "tabular"
    assert isinstance(raw.inputs, pd.DataFrame)
    assert raw.inputs.shape == (8, 2)
    assert raw.target.tolist() == [0, 1] * 4
    assert raw.origin == f"{loaders}:table"


def test_py_source_table_honours_features_categorical_and_text_column(loaders: str) -> None:
    raw = load(source=f"{loaders}:table", features=["b"], categorical=["b"])
    assert isinstance(raw.inputs, pd.DataFrame)
    assert list(raw.inputs.columns) == ["b"]
    with pytest.raises(DataError, match=r"data.features names column\(s\) 'c'.*columns are: a, b"):
        load(source=f"{loaders}:table", features=["c"])
    with pytest.raises(DataError, match=r"'body' is missing or blank in 1 row\(s\) \(rows 2"):
        load(source=f"{loaders}:reviews", text_column="body")
    with pytest.raises(ConfigError, match=r"data.text_column: .*returned a ndarray of shape"):
        load(source=f"{loaders}:matrix", text_column="body")


def test_py_source_dict_with_groups_gives_signals(loaders: str) -> None:
    raw = load(source=f"{loaders}:as_dict")
    assert raw.modality == "signal"
    assert isinstance(raw.inputs, np.ndarray)
    assert raw.inputs.shape == (4, 2, 5)
    assert raw.groups is not None and raw.groups.tolist() == [1, 1, 2, 2]


def test_py_source_shapes_decide_the_modality(loaders: str) -> None:
    matrix = load(source=f"{loaders}:matrix")
    assert matrix.modality == "tabular"
    assert isinstance(matrix.inputs, pd.DataFrame)
    assert list(matrix.inputs.columns) == ["x0", "x1", "x2"]
    pictures = load(source=f"{loaders}:pictures")
    assert pictures.modality == "image"
    assert pictures.target.tolist() == ["cat", "dog"]
    texts = load(source=f"{loaders}:texts")
    assert texts.modality == "text"
    assert isinstance(texts.inputs, np.ndarray)
    assert texts.inputs.tolist() == ["good", "bad", "ok"]


def test_py_source_returned_modality_is_honoured(loaders: str) -> None:
    raw = load(source=f"{loaders}:flat")
    assert raw.modality == "signal"
    assert isinstance(raw.inputs, np.ndarray)
    assert raw.inputs.shape == (4, 1, 6)
    with pytest.raises(ConfigError, match=r"data.modality: got 'image', but .* says .*'signal'"):
        load(source=f"{loaders}:flat", modality="image")


def test_py_source_bad_returns_are_explained(loaders: str) -> None:
    with pytest.raises(DataError, match=r"returned 4 input rows but target of shape \(3,\)"):
        load(source=f"{loaders}:short_target")
    with pytest.raises(
        DataError,
        match=r"returned a ndarray of shape \(4, 3\); return \(inputs, "
        r"target\) or a dict",
    ):
        load(source=f"{loaders}:just_an_array")
    with pytest.raises(DataError, match=r"missing: \['inputs', 'target'\], unknown: \['X', 'y'\]"):
        load(source=f"{loaders}:odd_keys")


def test_py_source_config_problems_are_explained(loaders: str) -> None:
    with pytest.raises(
        ConfigError,
        match=r"data.options: .*:table cannot be called with "
        r"\['size'\].*parameters are \['rows'\]",
    ):
        load(source=f"{loaders}:table", options={"size": 3})
    with pytest.raises(ConfigError, match=r"names a int, not a function"):
        load(source=f"{loaders}:NOT_A_FUNCTION")
    with pytest.raises(ConfigError, match=r"has no attribute 'nothing'"):
        load(source=f"{loaders}:nothing")
    with pytest.raises(ConfigError, match=r"cannot import module 'tl_no_such_module'"):
        load(source="py:tl_no_such_module:load")


# --- a numeric column with stray text ------------------------------------------------------


def test_csv_numeric_column_with_stray_text_names_file_rows(tmp_path: Path) -> None:
    lines = [f"{20 + i},{i % 2}" for i in range(40)]
    lines[33] = "oops,1"
    path = tmp_path / "ages.csv"
    path.write_text("age,y\n" + "\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load(source=f"csv:{path}", target="y")
    message = str(info.value)
    assert message.startswith(f"{path}: column 'age' holds numbers in 39 of its 40 filled rows")
    assert "text in 1: row 33 holds 'oops', counting data rows from 0" in message
    raw = load(source=f"csv:{path}", target="y", categorical=["age"])
    assert isinstance(raw.inputs, pd.DataFrame)


def test_jsonl_numbers_mixed_with_a_text_value_are_refused(tmp_path: Path) -> None:
    rows = [f'{{"area": {10 + i}, "y": {i % 2}}}' for i in range(12)]
    rows[4] = '{"area": "n/a", "y": 0}'
    path = tmp_path / "shops.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"column 'area' holds numbers in 11 .*row 4 holds 'n/a'"):
        load(source=f"jsonl:{path}", target="y")
