"""TabularEncoder: same numbers as scikit-learn, JSON round trip, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tunelab.data.encoding import encoder_from_dict, fit_encoder
from tunelab.data.tabular import TabularEncoder
from tunelab.errors import DataError


def _train_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [23.0, 31.0, np.nan, 45.0, 52.0, 38.0, 29.0, np.nan],
            "city": ["paris", "lyon", None, "paris", "nice", "lyon", "paris", "nice"],
            "income": [1200, 3400, 2200, 5100, 4000, 3900, 1800, 2500],
            "zip": [75, 69, 75, 6, 6, 69, 75, 75],
        }
    )


def _new_frame() -> pd.DataFrame:
    # Unseen city and zip, missing values in every column, columns in another order.
    return pd.DataFrame(
        {
            "zip": [69, 13, np.nan],
            "income": [np.nan, 2000.0, 1000.0],
            "city": ["lille", "nice", None],
            "age": [40.0, np.nan, 60.0],
            "unused": ["a", "b", "c"],
        }
    )


def _sklearn(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                categorical,
            ),
        ],
        sparse_threshold=0.0,
    ).fit(frame)


def test_transform_equals_the_fitted_sklearn_column_transformer() -> None:
    train = _train_frame()
    encoder = TabularEncoder.fit(train, categorical=["zip"])
    reference = _sklearn(train, ["age", "income"], ["city", "zip"])
    new = _new_frame()
    for frame in (train, new):
        (features,) = encoder.transform(frame)
        expected = reference.transform(frame[["age", "income", "city", "zip"]])
        assert features.dtype == torch.float32
        assert tuple(features.shape) == (len(frame), *encoder.input_shape)
        np.testing.assert_allclose(features.numpy(), expected, atol=1e-6)
    assert encoder.input_shape == (2 + 3 + 3,)
    assert encoder.feature_names_in == ["age", "city", "income", "zip"]
    assert encoder.feature_names_out[:5] == [
        "age",
        "income",
        "city=lyon",
        "city=nice",
        "city=paris",
    ]


def test_json_round_trip_gives_the_same_features(tmp_path: Path) -> None:
    encoder = TabularEncoder.fit(_train_frame(), categorical=["zip"])
    text = json.dumps(encoder.to_dict())  # plain JSON: no pickle anywhere
    restored = encoder_from_dict(json.loads(text), tmp_path)
    assert isinstance(restored, TabularEncoder)
    assert restored.to_dict() == encoder.to_dict()
    np.testing.assert_array_equal(
        restored.transform(_new_frame())[0].numpy(), encoder.transform(_new_frame())[0].numpy()
    )


def test_fit_encoder_picks_the_tabular_encoder() -> None:
    encoder = fit_encoder("tabular", _train_frame())
    assert isinstance(encoder, TabularEncoder)
    # Without data.categorical, the integer zip codes are scaled as numbers.
    assert [c.name for c in encoder.numeric] == ["age", "income", "zip"]


def test_unseen_category_encodes_as_all_zeros() -> None:
    encoder = TabularEncoder.fit(pd.DataFrame({"colour": ["red", "blue", "red"]}))
    (features,) = encoder.transform(pd.DataFrame({"colour": ["green", "blue"]}))
    np.testing.assert_array_equal(features.numpy(), [[0.0, 0.0], [1.0, 0.0]])


def test_categorical_argument_one_hots_a_numeric_column() -> None:
    frame = pd.DataFrame({"code": [3, 1, 2, 3], "x": [0.5, 1.5, 2.5, 3.5]})
    encoder = TabularEncoder.fit(frame, categorical=["code"])
    assert encoder.feature_names_out == ["x", "code=1", "code=2", "code=3"]
    # 2.0 is the same category as the training value 2.
    (features,) = encoder.transform(pd.DataFrame({"code": [2.0], "x": [1.0]}))
    np.testing.assert_array_equal(features.numpy()[0, 1:], [0.0, 1.0, 0.0])


def test_category_dtype_and_bool_columns_are_one_hot() -> None:
    frame = pd.DataFrame(
        {
            "flag": [True, False, True],
            "size": pd.Series(["s", "m", "s"], dtype="category"),
        }
    )
    encoder = TabularEncoder.fit(frame)
    assert encoder.feature_names_out == ["flag=False", "flag=True", "size=m", "size=s"]
    restored = TabularEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())), Path())
    (features,) = restored.transform(pd.DataFrame({"flag": [False], "size": ["m"]}))
    np.testing.assert_array_equal(features.numpy(), [[1.0, 0.0, 1.0, 0.0]])


def test_column_mixing_text_and_numbers_is_compared_as_text() -> None:
    frame = pd.DataFrame({"room": pd.Series(["A1", 12, "B2", 12], dtype=object)})
    encoder = TabularEncoder.fit(frame)
    assert encoder.categorical[0].as_text
    assert encoder.feature_names_out == ["room=12", "room=A1", "room=B2"]
    (features,) = encoder.transform(pd.DataFrame({"room": [12, "B2"]}))
    np.testing.assert_array_equal(features.numpy(), [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def test_column_empty_in_training_is_kept_and_imputed_with_zero() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "blank": [np.nan, np.nan, np.nan]})
    encoder = TabularEncoder.fit(frame)
    # scikit-learn's default imputer would drop "blank" and change the feature count.
    assert encoder.input_shape == (2,)
    (features,) = encoder.transform(pd.DataFrame({"x": [2.0], "blank": [np.nan]}))
    np.testing.assert_allclose(features.numpy(), [[0.0, 0.0]], atol=1e-6)


def test_missing_columns_are_all_named_with_what_the_model_expects() -> None:
    encoder = TabularEncoder.fit(_train_frame())
    with pytest.raises(DataError) as info:
        encoder.transform(pd.DataFrame({"Age": [30.0], "income": [100]}))
    message = str(info.value)
    assert "'age'" in message and "'city'" in message and "'zip'" in message
    assert "expects the columns age, city, income, zip" in message
    assert "Did you mean 'Age' for 'age'?" in message
    assert "Add the missing columns" in message


def test_numeric_column_holding_text_names_column_row_and_value() -> None:
    encoder = TabularEncoder.fit(_train_frame())
    frame = _new_frame().astype({"age": object})
    frame.loc[1, "age"] = "forty"
    with pytest.raises(DataError, match=r"column 'age' must hold numbers.*row 1 holds 'forty'"):
        encoder.transform(frame)


def test_numbers_given_as_text_and_blank_cells_are_accepted() -> None:
    encoder = TabularEncoder.fit(pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    (features,) = encoder.transform(pd.DataFrame({"x": ["3", " ", None]}))
    expected = encoder.transform(pd.DataFrame({"x": [3.0, 2.0, 2.0]}))[0]
    np.testing.assert_allclose(features.numpy(), expected.numpy())


def test_infinite_values_are_refused_with_the_row() -> None:
    encoder = TabularEncoder.fit(pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    with pytest.raises(DataError, match=r"column 'x' holds inf in row 2"):
        encoder.transform(pd.DataFrame({"x": [1.0, 2.0, np.inf]}))
    with pytest.raises(DataError, match=r"column 'x' holds -inf in row 0"):
        TabularEncoder.fit(pd.DataFrame({"x": [-np.inf, 2.0, 3.0]}))


def test_non_dataframe_inputs_are_refused_with_the_fix() -> None:
    encoder = TabularEncoder.fit(pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}))
    with pytest.raises(DataError, match=r"pandas DataFrame with the columns a, b.*ndarray"):
        encoder.transform(np.zeros((2, 2)))


def test_fit_refuses_unknown_categorical_names_and_date_columns() -> None:
    with pytest.raises(DataError, match=r"data.categorical names column\(s\) 'zipp'.*zip"):
        TabularEncoder.fit(_train_frame(), categorical=["zipp"])
    dates = pd.DataFrame({"when": pd.to_datetime(["2024-01-01", "2024-02-01"])})
    with pytest.raises(DataError, match=r"column 'when' has type datetime64.*data.categorical"):
        TabularEncoder.fit(dates)


def test_integer_column_names_round_trip_as_text() -> None:
    frame = pd.DataFrame(np.arange(6, dtype=float).reshape(3, 2))
    encoder = TabularEncoder.fit(frame)
    assert encoder.feature_names_in == ["0", "1"]
    assert encoder.transform(frame)[0].shape == (3, 2)


def _ages_with_a_typo() -> pd.DataFrame:
    ages = [str(20 + i) for i in range(30)]
    ages[7] = "oops"
    ages[12] = "?"
    return pd.DataFrame({"age": ages, "size": ["s", "m", "l"] * 10})


def test_numbers_with_a_few_text_cells_are_refused_not_one_hot_encoded() -> None:
    with pytest.raises(DataError) as info:
        TabularEncoder.fit(_ages_with_a_typo())
    message = str(info.value)
    assert message.startswith("column 'age' holds numbers in 28 of its 30 filled rows but text")
    assert "in 2: row 7 holds 'oops', row 12 holds '?'" in message
    assert "list 'age' in data.categorical" in message


def test_numbers_with_text_cells_pass_when_listed_as_categorical() -> None:
    encoder = TabularEncoder.fit(_ages_with_a_typo(), categorical=["age"])
    assert [c.name for c in encoder.categorical] == ["age", "size"]


def test_many_categories_for_the_rows_are_noted_few_are_not() -> None:
    rows = 40
    frame = pd.DataFrame(
        {
            "customer": [f"id{i}" for i in range(rows)],
            "size": ["s", "m", "l", "xl"] * (rows // 4),
            "x": np.arange(rows, dtype=float),
        }
    )
    encoder = TabularEncoder.fit(frame)
    assert encoder.notes == [
        "column 'customer' is categorical with 40 distinct values in 40 training rows "
        "(one-hot, 40 columns); consider dropping it (list the other columns in "
        "data.features) or grouping rare values, and if it holds free text, use "
        "data.text_column with a text model"
    ]
    assert TabularEncoder.fit(frame[["size", "x"]]).notes == []
    # notes belong to the fit; a saved encoder has none to repeat
    assert TabularEncoder.from_dict(encoder.to_dict(), Path()).notes == []
    assert fit_encoder("signal", np.zeros((4, 1, 3))).notes == []
