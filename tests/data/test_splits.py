from __future__ import annotations

import numpy as np
import pytest

from tunelab.data.splits import kfold_splits
from tunelab.errors import DataError


def test_folds_partition_the_rows_and_stratify() -> None:
    rows = np.arange(100, 200)
    labels = np.repeat([0, 1, 2, 3], 25)
    splits = kfold_splits(rows, labels, folds=5, seed=1)
    assert len(splits) == 5
    validation = np.concatenate([v for _, v in splits])
    assert sorted(validation) == list(rows)  # every row validated exactly once
    for train, val in splits:
        assert not set(train) & set(val)
        assert np.bincount(labels[val - 100]).tolist() == [5, 5, 5, 5]


def test_repeated_and_grouped() -> None:
    rows = np.arange(60)
    assert len(kfold_splits(rows, None, folds=3, repeats=2)) == 6
    groups = np.repeat(np.arange(12), 5)
    for train, val in kfold_splits(rows, None, folds=4, groups=groups):
        assert not set(groups[train]) & set(groups[val])


def test_a_class_smaller_than_the_folds_is_named() -> None:
    labels = np.array([0] * 20 + [1] * 3)
    with pytest.raises(DataError, match=r"class code\(s\) \[1\] have fewer rows than the 5"):
        kfold_splits(np.arange(23), labels, folds=5)
