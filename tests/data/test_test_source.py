"""data.test_source: a predefined test set is the test part, used once; the validation rows
come from the training file; a test file unlike the training file is refused by name.
Also: grouped splits with too few groups."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.config import config_from_dict
from tunelab.data import RawData, Target, encode_target, load_data, make_split
from tunelab.errors import ConfigError, DataError
from tunelab.evaluation.prepare import prepare

runner = CliRunner()


def config(**data: Any) -> Any:
    return config_from_dict(
        {"data": data, "model": {"source": "builtin:mlp", "width": 8}, "train": {"threads": 1}}
    )


def load(**data: Any) -> RawData:
    return load_data(config(**data).data)


def table(rows: int, *, seed: int, labels: tuple[str, ...] = ("no", "yes")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, rows),
            "city": rng.choice(["paris", "lyon", "nice"], rows),
            "label": [labels[i % len(labels)] for i in range(rows)],
        }
    )


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    table(50, seed=0).to_csv(train, index=False)
    table(12, seed=1).to_csv(test, index=False)
    return train, test


def test_test_rows_come_from_the_test_file_and_are_appended(files: tuple[Path, Path]) -> None:
    train, test = files
    raw = load(source=f"csv:{train}", test_source=f"csv:{test}", target="label")
    assert raw.origin == str(train) and raw.test_origin == str(test)
    assert raw.test_rows is not None and raw.test_rows.tolist() == list(range(50, 62))
    assert isinstance(raw.inputs, pd.DataFrame)
    expected = pd.read_csv(test)
    pd.testing.assert_frame_equal(
        raw.inputs.iloc[50:].reset_index(drop=True), expected[["age", "city"]]
    )
    assert raw.target[50:].tolist() == expected["label"].tolist()


def test_split_uses_the_test_file_whatever_test_size_says(files: tuple[Path, Path]) -> None:
    train, test = files
    for test_size in (0.2, 0.5):
        cfg = config(
            source=f"csv:{train}", test_source=f"csv:{test}", target="label", test_size=test_size
        )
        split = prepare(cfg).split
        assert split.test.tolist() == list(range(50, 62))
        assert len(split.train) + len(split.validation) == 50
        assert max(split.train.max(), split.validation.max()) < 50
        assert len(split.validation) == 10  # validation_size 0.2 of the training file


def test_cli_train_evaluates_once_on_the_test_file(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    train, test = files
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data": {"source": f"csv:{train}", "test_source": f"csv:{test}", "target": "label"},
                "model": {"source": "builtin:mlp", "width": 8},
            }
        )
    )
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["train", str(path), "--out", str(out), "--set", "train.epochs=2", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rows"] == {"train": 40, "validation": 10, "test": 12}
    written = pd.read_csv(out / "test_inputs.csv")
    pd.testing.assert_frame_equal(written, pd.read_csv(test)[["age", "city"]])
    assert pd.read_csv(out / "test_predictions.csv")["target"].tolist() == (
        pd.read_csv(test)["label"].tolist()
    )


def test_missing_and_extra_columns_are_named(files: tuple[Path, Path]) -> None:
    train, test = files
    frame = pd.read_csv(test).drop(columns=["city"]).assign(height=1.8)
    frame.to_csv(test, index=False)
    with pytest.raises(DataError) as info:
        load(source=f"csv:{train}", test_source=f"csv:{test}", target="label")
    message = str(info.value)
    assert message.startswith(f"{test}: the test file lacks the input column(s) 'city' and has")
    assert f"the column(s) 'height', which {train} lacks" in message
    assert "must be those of the training file: age, city" in message


def test_missing_target_and_missing_file_name_the_test_source(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    train, test = files
    pd.read_csv(test).drop(columns=["label"]).to_csv(test, index=False)
    with pytest.raises(DataError, match=r"test.csv: data.target names column\(s\) 'label'"):
        load(source=f"csv:{train}", test_source=f"csv:{test}", target="label")
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=rf"^data.test_source: csv:{re.escape(str(missing))} does"):
        load(source=f"csv:{train}", test_source=f"csv:{missing}", target="label")


def test_classes_unseen_in_training_are_refused_by_name(files: tuple[Path, Path]) -> None:
    train, test = files
    table(12, seed=1, labels=("no", "yes", "maybe")).to_csv(test, index=False)
    raw = load(source=f"csv:{train}", test_source=f"csv:{test}", target="label")
    with pytest.raises(DataError) as info:
        encode_target(raw)
    message = str(info.value)
    assert message.startswith(f"{test}: the test rows hold class(es) that the training rows")
    assert "never show: 'maybe' (4 rows); a model cannot predict a class it never saw" in message


def test_a_column_of_numbers_holding_text_in_the_test_file_is_refused(
    files: tuple[Path, Path],
) -> None:
    train, test = files
    frame = pd.read_csv(test)
    frame["age"] = ["young", "old"] * 6
    frame.to_csv(test, index=False)
    with pytest.raises(DataError, match=r"column 'age' holds text \(row 0 holds 'young'\) but"):
        load(source=f"csv:{train}", test_source=f"csv:{test}", target="label")


def test_a_test_column_left_empty_is_accepted_and_imputed(files: tuple[Path, Path]) -> None:
    train, test = files
    frame = pd.read_csv(test)
    frame["city"] = np.nan
    frame.to_csv(test, index=False)
    raw = load(source=f"csv:{train}", test_source=f"csv:{test}", target="label")
    assert isinstance(raw.inputs, pd.DataFrame)
    assert raw.inputs["city"].iloc[50:].isna().all()


def test_test_file_values_are_checked_with_its_own_rows(files: tuple[Path, Path]) -> None:
    train, test = files
    frame = pd.read_csv(test).astype({"age": float})
    frame.loc[3, "age"] = np.inf
    frame.to_csv(test, index=False)
    with pytest.raises(
        DataError, match=rf"^{re.escape(str(test))}: column 'age' holds inf .*rows 3"
    ):
        load(source=f"csv:{train}", test_source=f"csv:{test}", target="label")


def test_a_class_needs_two_training_rows_when_the_test_rows_are_fixed(tmp_path: Path) -> None:
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    frame = table(20, seed=0)
    frame.loc[0, "label"] = "rare"
    frame.to_csv(train, index=False)
    table(6, seed=1).to_csv(test, index=False)
    cfg = config(source=f"csv:{train}", test_source=f"csv:{test}", target="label")
    with pytest.raises(
        DataError, match=r"to appear in the train and validation parts.*'rare' has 1"
    ):
        prepare(cfg)


def test_arrays_of_another_shape_are_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", X=np.zeros((10, 2, 8)), y=np.arange(10) % 2)
    np.savez(tmp_path / "b.npz", X=np.zeros((4, 2, 8)), y=np.arange(4) % 2)
    np.savez(tmp_path / "c.npz", X=np.zeros((4, 2, 9)), y=np.arange(4) % 2)
    raw = load(source=f"npz:{tmp_path / 'a.npz'}", test_source=f"npz:{tmp_path / 'b.npz'}")
    assert isinstance(raw.inputs, np.ndarray) and raw.inputs.shape == (14, 2, 8)
    with pytest.raises(DataError, match=r"c.npz: the test examples have shape \(2, 9\) but"):
        load(source=f"npz:{tmp_path / 'a.npz'}", test_source=f"npz:{tmp_path / 'c.npz'}")


def test_image_folders_as_test_set(tmp_path: Path) -> None:
    for root, classes in (("train", ("cat", "dog")), ("test", ("cat", "dog", "fox"))):
        for label in classes:
            (tmp_path / root / label).mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (6, 6), (i * 40, 0, 0)).save(tmp_path / root / label / f"{i}.png")
    raw = load(
        source=f"images:{tmp_path / 'train'}",
        test_source=f"images:{tmp_path / 'test'}",
        image_size=[4, 4],
    )
    assert raw.test_rows is not None and raw.test_rows.tolist() == list(range(6, 15))
    with pytest.raises(DataError, match=r"class\(es\) .* never show: 'fox' \(3 rows\)"):
        encode_target(raw)


def test_sklearn_and_unknown_prefixes_are_refused_as_test_source() -> None:
    with pytest.raises(ConfigError, match=r"data.test_source: got 'sklearn:iris'; .*no separate"):
        config(source="sklearn:iris", test_source="sklearn:iris")
    with pytest.raises(ConfigError, match=r"data.test_source: got 'cvs:t.csv'.*'csv:'"):
        config(source="csv:x.csv", test_source="cvs:t.csv")


# --- groups ---------------------------------------------------------------------------------


def _target(rows: int) -> Target:
    return Target(task="binary", values=np.arange(rows) % 2, classes=[0, 1])


@pytest.mark.parametrize("count", [1, 2])
def test_too_few_groups_are_a_clear_error(count: int) -> None:
    groups = np.array([f"g{i % count}" for i in range(30)])
    with pytest.raises(DataError) as info:
        make_split(
            _target(30), test_size=0.2, validation_size=0.2, seed=0, origin="d.csv", groups=groups
        )
    message = str(info.value)
    assert message.startswith(f"d.csv: data.group_column gives {count} group(s) ('g0'")
    assert "the train, validation and test parts need at least 3 groups" in message


def test_three_groups_split_and_two_do_with_a_fixed_test_set() -> None:
    groups = np.array([f"g{i % 3}" for i in range(30)])
    split = make_split(
        _target(30), test_size=0.2, validation_size=0.2, seed=0, origin="d", groups=groups
    )
    assert {len(set(groups[part])) for part in (split.train, split.validation, split.test)} == {1}
    fixed_groups = np.array(["a"] * 12 + ["b"] * 12 + ["t"] * 6)
    fixed = make_split(
        _target(30),
        test_size=0.2,
        validation_size=0.2,
        seed=0,
        origin="d",
        groups=fixed_groups,
        test_rows=np.arange(24, 30),
    )
    assert fixed.test.tolist() == list(range(24, 30))
    train, validation = set(fixed_groups[fixed.train]), set(fixed_groups[fixed.validation])
    assert sorted(train | validation) == ["a", "b"] and not train & validation
    with pytest.raises(DataError, match=r"gives 1 group\(s\) \('a'\); .*the train and validation"):
        make_split(
            _target(30),
            test_size=0.2,
            validation_size=0.2,
            seed=0,
            origin="d",
            groups=np.array(["a"] * 24 + ["t"] * 6),
            test_rows=np.arange(24, 30),
        )
